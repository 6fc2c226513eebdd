// The `scratchnet` binary's pictures end to end: `show` in the terminal (ASCII when stdout is a pipe) and as a
// PNG grid (size from the grid layout, pixels equal to the MNIST bytes), and `infer --errors` (a grid holding
// exactly the misclassified images the accuracy implies: 648 for the book's weights on the CPU path; the same
// PNG bytes from OpenCL).

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

@Suite("scratchnet show and infer --errors", .serialized)
struct PicturesCLITests {
    /// True when no pixel of the `width`×`height` box at `origin` differs from white.
    static func isBlank(_ image: PNGImage, _ origin: (x: Int, y: Int), width: Int, height: Int) -> Bool {
        for y in origin.y..<(origin.y + height) {
            for x in origin.x..<(origin.x + width) where image.color(x: x, y: y) != .white { return false }
        }
        return true
    }

    @Test("show: an image per label as ASCII art when stdout is not a terminal")
    func showText() throws {
        let r = try CLI.run(["show", "--index", "0", "--count", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.first == "test #0  label 7")
        #expect(lines.count == 2 * 29 + 1 && lines[29] == "test #1  label 2")
        #expect(lines[1..<29].allSatisfy { $0.count == 56 && $0.allSatisfy(TerminalImage.ramp.contains) })
        #expect(lines[1..<29].contains { $0.contains("@") })
        #expect(!r.stdout.contains("\u{1B}"), "no color codes in a pipe")

        let fashion = try CLI.run(["show", "--data", "/usr/share/datasets/fashion-mnist", "--ascii"])
        if FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") {
            #expect(fashion.stdout.hasPrefix("test #0  label 9 (Ankle boot)\n"), "\(fashion.stdout.prefix(80)) \(fashion.stderr)")
        }
    }

    @Test("show --png: the grid's size follows the layout and its pixels are the MNIST bytes (dark ink on white)")
    func showPNG() throws {
        let dir = try temporaryDirectory("pix")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("show.png")
        let r = try CLI.run(["show", "--index", "2", "--count", "5", "--png", url.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("test #2  label 1") && r.stdout.contains("wrote 5 images to \(url.path)"))

        let test = try Book.testSet()
        let sheet = try PNGImage(contentsOf: url)
        let captions = (2..<7).map { Caption(String(test.labels[$0])) }
        let layout = ImageGrid(scale: 2).layout(count: 5, width: 28, height: 28, captions: captions)
        #expect(layout.columns == 3 && layout.rows == 2)
        #expect(sheet.width == layout.width && sheet.height == layout.height)
        #expect(r.stdout.contains("(\(layout.width)x\(layout.height))"))
        for (cell, index) in (2..<7).enumerated() {
            let o = layout.imageOrigin(cell)
            let pixels = test.pixels(of: index)
            var mismatches = 0
            for y in 0..<56 {
                for x in 0..<56 where sheet.color(x: o.x + x, y: o.y + y) != RGB(gray: 255 - pixels[(y / 2) * 28 + x / 2]) {
                    mismatches += 1
                }
            }
            #expect(mismatches == 0, "image \(index)")
        }
        #expect(Self.isBlank(sheet, layout.cellOrigin(5), width: layout.cellWidth, height: layout.cellHeight))
    }

    @Test("infer --errors: the grid holds every misclassified image (648 = 10000 × (1 - 0.9352))")
    func inferErrors() throws {
        let dir = try temporaryDirectory("pix")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("errors.png")
        let report = try CLI.json(["infer", "--device", "cpu", "--errors", url.path, "--errors-limit", "1000", "--json"])
        let images = try #require(report["images"] as? Int), correct = try #require(report["correct"] as? Int)
        let accuracy = try #require(report["accuracy"] as? Double)
        let misclassified = try #require(report["misclassified"] as? Int)
        #expect(accuracy == 0.9352 && images == 10_000)
        #expect(misclassified == images - correct && misclassified == 648)
        #expect(Double(images - misclassified) / Double(images) == accuracy)
        #expect(report["errorsDrawn"] as? Int == 648 && report["errorsFile"] as? String == url.path)

        // Same captions as the command: every digit caption "p→t" has the same width.
        let sheet = try PNGImage(contentsOf: url)
        let layout = ImageGrid(scale: 2).layout(
            count: misclassified, width: 28, height: 28,
            captions: Array(repeating: Caption.error(predicted: "0", true: "0"), count: misclassified))
        #expect(layout.columns == 26 && layout.rows == 25)
        #expect(sheet.width == layout.width && sheet.height == layout.height)
        // The first error is test image 8 (a 5 taken for a 6); the last grid cell holds ink, the slot after it is empty.
        let test = try Book.testSet()
        let first = layout.imageOrigin(0)
        #expect(sheet.color(x: first.x + 2 * 14, y: first.y + 2 * 14) == RGB(gray: 255 - test.pixels(of: 8)[14 * 28 + 14]))
        let last = layout.imageOrigin(misclassified - 1)
        #expect(!Self.isBlank(sheet, last, width: 56, height: 56))
        #expect(Self.isBlank(sheet, layout.cellOrigin(misclassified), width: layout.cellWidth, height: layout.cellHeight))
        let caption = layout.captionOrigin(0, captionWidth: BitmapFont.width(of: "6→5", scale: layout.textScale))
        #expect(sheet.color(x: caption.x + 2 * layout.textScale, y: caption.y) == .red)  // "6" row 0 is ..##.
        #expect(sheet.color(x: caption.x, y: caption.y) == .white)

        // Text mode, default limit: the first 100.
        let text = try CLI.run(["infer", "--device", "cpu", "--errors", url.path])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("errors:     648 misclassified; the first 100 drawn in \(url.path)"))
        let hundred = try PNGImage(contentsOf: url)
        let small = ImageGrid(scale: 2).layout(
            count: 100, width: 28, height: 28, captions: Array(repeating: Caption.error(predicted: "0", true: "0"), count: 100))
        #expect(hundred.width == small.width && hundred.height == small.height)
    }

    @Test("infer --errors on OpenCL writes the same PNG bytes as the CPU path")
    func inferErrorsOpenCL() throws {
        guard try Book.openCLBackend() != nil else { return }
        let dir = try temporaryDirectory("pix")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cpu = dir.appendingPathComponent("cpu.png"), gpu = dir.appendingPathComponent("opencl.png")
        #expect(try CLI.run(["infer", "--device", "cpu", "--errors", cpu.path]).status == 0)
        let r = try CLI.run(["infer", "--device", "opencl", "--batch-size", "37", "--errors", gpu.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Data(contentsOf: cpu) == Data(contentsOf: gpu))
    }

    @Test("show: bad flags fail with one line naming the problem, exit 2", arguments: [
        (["show", "--index", "10000"], "--index"),
        (["show", "--count", "0"], "--count"),
        (["show", "--scale", "0"], "--scale"),
        (["show", "--classes", "a,b"], "--classes"),
        (["show", "--png", "/nonexistent/dir/x.png"], "/nonexistent/dir/x.png"),
        (["infer", "--errors", "x.png", "--errors-limit", "0"], "--errors-limit"),
    ])
    func badInput(arguments: [String], mention: String) throws {
        let r = try CLI.run(arguments)
        #expect(r.status == 2, "\(arguments): \(r.stderr)")
        #expect(r.stderr.hasPrefix("error:") && r.stderr.contains(mention), "\(arguments): \(r.stderr)")
        #expect(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
    }

    @Test("show --set train names the missing file when the training images are absent")
    func missingTrainSet() throws {
        let dir = try #require(MNIST.defaultDirectory(environment: Book.environment))
        guard !FileManager.default.fileExists(atPath: dir.appendingPathComponent("train-images-idx3-ubyte.gz").path),
              !FileManager.default.fileExists(atPath: dir.appendingPathComponent("train-images-idx3-ubyte").path) else {
            let r = try CLI.run(["show", "--set", "train", "--ascii"])
            #expect(r.status == 0 && r.stdout.hasPrefix("train #0  label 5"), "\(r.stderr)")
            return
        }
        let r = try CLI.run(["show", "--set", "train"])
        #expect(r.status == 2 && r.stderr.contains("train-images-idx3-ubyte"), "\(r.stderr)")
    }
}
