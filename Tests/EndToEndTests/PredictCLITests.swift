// `scratchnet predict` end to end: PNGs written from MNIST test images (as they are, and 3x bigger, inverted, as
// RGB) get the class `infer --predictions` gives those images, with the book's pickle and with a relu safetensors
// model; a digit drawn here with thick anti-aliased strokes on a big canvas is classified right; --json parses
// and its top-1 probability is the CSV's float bit for bit; --show draws 28 rows of 28 pixels; a bad file, a
// blank picture and a model of the wrong input size each give one error line and exit status 2.

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

/// A picture of strokes along `polyline` (canvas pixels), `radius` thick, in `ink` on `paper` (RGB), anti-aliased by
/// 4x4 supersampling: what a drawing program exports.
func strokePicture(width: Int, height: Int, polyline: [(Double, Double)], radius: Double,
                   ink: [UInt8], paper: [UInt8]) throws -> PNGImage {
    func distance(_ px: Double, _ py: Double) -> Double {
        var best = Double.infinity
        for (a, b) in zip(polyline, polyline.dropFirst()) {
            let dx = b.0 - a.0, dy = b.1 - a.1
            let t = max(0, min(1, ((px - a.0) * dx + (py - a.1) * dy) / (dx * dx + dy * dy)))
            best = min(best, ((px - a.0 - t * dx) * (px - a.0 - t * dx) + (py - a.1 - t * dy) * (py - a.1 - t * dy)).squareRoot())
        }
        return best
    }
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height {
        for x in 0..<width {
            var hits = 0
            for s in 0..<16 where distance(Double(x) + (Double(s % 4) + 0.5) / 4, Double(y) + (Double(s / 4) + 0.5) / 4) <= radius {
                hits += 1
            }
            for c in 0..<3 {
                pixels[(y * width + x) * 3 + c] = UInt8((Int(ink[c]) * hits + Int(paper[c]) * (16 - hits) + 8) / 16)
            }
        }
    }
    return try PNGImage(width: width, height: height, colorType: .rgb, pixels: pixels)
}

@Suite("scratchnet predict", .serialized)
struct PredictCLITests {
    /// index → (prediction, probability text) from `infer --predictions` with `extra` arguments.
    func inferPredictions(_ extra: [String], in dir: URL) throws -> [Int: (Int, String)] {
        let csv = dir.appendingPathComponent("predictions-\(UUID().uuidString).csv")
        let r = try CLI.run(["infer", "--device", "cpu", "--predictions", csv.path] + extra)
        #expect(r.status == 0, "\(r.stderr)")
        var out: [Int: (Int, String)] = [:]
        for line in try String(contentsOf: csv, encoding: .utf8).split(separator: "\n").dropFirst() {
            let f = line.split(separator: ",").map(String.init)
            if f.count == 4, let i = Int(f[0]), let p = Int(f[2]) { out[i] = (p, f[3]) }
        }
        #expect(out.count == 10_000)
        return out
    }

    /// The parsed `--json` output: per file, the top 3 (class, probability).
    func predictJSON(_ arguments: [String]) throws -> [String: [(Int, Double)]] {
        let r = try CLI.run(["predict", "--device", "cpu", "--json"] + arguments)
        #expect(r.status == 0, "\(r.stderr)")
        let array = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        var out: [String: [(Int, Double)]] = [:]
        for entry in array {
            let file = try #require(entry["file"] as? String)
            let top = try #require(entry["top3"] as? [[String: Any]])
            out[file] = try top.map { (try #require($0["class"] as? Int), try #require($0["probability"] as? Double)) }
        }
        return out
    }

    @Test("PNGs of MNIST test images, as they are and 3x bigger inverted RGB, get infer's predictions")
    func sameAsInfer() throws {
        let dir = try temporaryDirectory("predict")
        defer { try? FileManager.default.removeItem(at: dir) }
        let test = try Book.testSet()
        let reference = try inferPredictions([], in: dir)
        // The first 12 images and the first 4 after them the network gets wrong (so the match is with infer, not the labels).
        let wrong = (12..<test.count).filter { reference[$0]?.0 != Int(test.labels[$0]) }.prefix(4)
        let indices = Array(0..<12) + wrong
        #expect(wrong.count == 4)
        var files: [String] = [], expected: [String: Int] = [:], probability: [String: String] = [:]
        for i in indices {
            let original = Array(test.pixels(of: i))
            let plain = dir.appendingPathComponent("test-\(i).png")
            try PNGImage(width: 28, height: 28, pixels: original).write(to: plain)
            var rgb = [UInt8](repeating: 0, count: 84 * 84 * 3)
            for p in 0..<(84 * 84) {
                let v = 255 - original[(p / 84 / 3) * 28 + (p % 84) / 3]
                rgb[3 * p] = v; rgb[3 * p + 1] = v; rgb[3 * p + 2] = v
            }
            let big = dir.appendingPathComponent("big-inverted-\(i).png")
            try PNGImage(width: 84, height: 84, colorType: .rgb, pixels: rgb).write(to: big)
            let (prediction, p) = try #require(reference[i])
            for file in [plain.path, big.path] {
                files.append(file)
                expected[file] = prediction
                // The input is the MNIST image itself when DigitImage leaves it unchanged: then the probability is too.
                if try DigitImage(image: PNGImage(width: 28, height: 28, pixels: original)).pixels == original {
                    probability[file] = p
                }
            }
        }
        #expect(probability.count >= files.count - 4)

        let results = try predictJSON(files)
        #expect(results.count == files.count)
        for file in files {
            let top = try #require(results[file], "no result for \(file)")
            #expect(top.count == 3 && Set(top.map(\.0)).count == 3)
            #expect(top[0].1 >= top[1].1 && top[1].1 >= top[2].1 && top.map(\.1).reduce(0, +) <= 1 + 1e-6)
            #expect(top[0].0 == expected[file], "\(file): predict says \(top[0].0), infer \(String(describing: expected[file]))")
            if let p = probability[file], let csv = Float(p) {
                #expect(Float(top[0].1).bitPattern == csv.bitPattern, "\(file): \(top[0].1) vs the CSV's \(p)")
            }
        }

        // The text output says the same, one line per file in order.
        let text = try CLI.run(["predict", "--device", "cpu"] + files)
        #expect(text.status == 0, "\(text.stderr)")
        let lines = text.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == files.count)
        for (line, file) in zip(lines, files) {
            #expect(line.hasPrefix("\(file): \(expected[file] ?? -1) ("), "\(line)")
        }

        // Any model infer loads: the same weights as safetensors that ask for relu change the outputs, and predict
        // still agrees with infer on that model.
        let relu = dir.appendingPathComponent("relu.safetensors")
        try SafeTensors.write(try Book.weights(), metadata: ["activation": "relu"], to: relu)
        let reluReference = try inferPredictions(["--weights", relu.path], in: dir)
        #expect(indices.contains { reluReference[$0]?.1 != reference[$0]?.1 }, "relu should change the probabilities")
        let reluResults = try predictJSON(["--weights", relu.path] + files)
        for (n, i) in indices.enumerated() {
            for file in files[(2 * n)...(2 * n + 1)] {
                #expect(reluResults[file]?.first?.0 == reluReference[i]?.0, "\(file) with relu")
            }
        }
    }

    @Test("a thick anti-aliased 7 and 1 drawn on big canvases are classified right, with --show drawing the input")
    func handDrawn() throws {
        let dir = try temporaryDirectory("predict")
        defer { try? FileManager.default.removeItem(at: dir) }
        // Dark blue ink on cream paper, 400x300: a 7 (a bar and a slanted stem) and a slightly slanted 1.
        let seven = try strokePicture(width: 400, height: 300, polyline: [(140, 50), (270, 50), (185, 250)], radius: 13,
                                      ink: [20, 30, 90], paper: [250, 248, 235])
        let one = try strokePicture(width: 300, height: 400, polyline: [(160, 60), (140, 340)], radius: 15,
                                    ink: [10, 10, 10], paper: [255, 255, 255])
        let sevenFile = dir.appendingPathComponent("seven.png"), oneFile = dir.appendingPathComponent("one.png")
        try seven.write(to: sevenFile)
        try one.write(to: oneFile)
        let results = try predictJSON([sevenFile.path, oneFile.path])
        #expect(results[sevenFile.path]?.first?.0 == 7, "\(String(describing: results[sevenFile.path]))")
        #expect(results[oneFile.path]?.first?.0 == 1, "\(String(describing: results[oneFile.path]))")

        // --show (stdout is a pipe, so ASCII): the result line, then 28 rows of 28 pixels, 2 characters each.
        let r = try CLI.run(["predict", "--device", "cpu", "--show", sevenFile.path])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.count == 1 + 28 + 1 && lines.last == "", "\(lines.count) lines")
        #expect(lines[0].hasPrefix("\(sevenFile.path): 7 ("))
        #expect(lines[1...28].allSatisfy { $0.count == 56 && $0.allSatisfy(TerminalImage.ramp.contains) })
        let expectedArt = TerminalImage.render(try DigitImage(image: seven).pixels, width: 28, height: 28, color: false)
        #expect(lines[1...28].joined(separator: "\n") + "\n" == expectedArt)
        // With --json the picture goes to stderr and stdout stays JSON.
        let j = try CLI.run(["predict", "--device", "cpu", "--show", "--json", sevenFile.path])
        #expect(j.status == 0)
        #expect((try? JSONSerialization.jsonObject(with: Data(j.stdout.utf8))) is [[String: Any]])
        #expect(j.stderr.contains(expectedArt))
    }

    @Test("a bad file, a blank picture, a missing file, a model of the wrong size: one error line, exit 2, no output")
    func errors() throws {
        let dir = try temporaryDirectory("predict")
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.png")
        try strokePicture(width: 60, height: 80, polyline: [(30, 10), (30, 70)], radius: 4, ink: [0, 0, 0], paper: [255, 255, 255])
            .write(to: good)
        let text = dir.appendingPathComponent("notes.png")
        try Data("these are notes, not a picture\n".utf8).write(to: text)
        let blank = dir.appendingPathComponent("blank.png")
        try PNGImage(width: 50, height: 40, colorType: .rgb, fill: [255, 255, 255]).write(to: blank)
        let missing = dir.appendingPathComponent("missing.png")
        for (file, words) in [(text, "not a PNG"), (blank, "no ink found"), (missing, "no such file")] {
            // The good file first: the bad one still stops the run before any classification is printed.
            let r = try CLI.run(["predict", "--device", "cpu", good.path, file.path])
            #expect(r.status == 2)
            #expect(r.stdout.isEmpty, "\(r.stdout)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("error: \(file.path): \(words)"), "\(r.stderr)")
        }

        // A model that does not take 28x28 inputs.
        var weights = try Book.weights()
        let w1 = try #require(weights["W1"])
        weights["W1"] = try Tensor(shape: [100, w1.shape[1]], scalars: Array(w1.scalars[0..<(100 * w1.shape[1])]))
        let small = dir.appendingPathComponent("small.safetensors")
        try SafeTensors.write(weights, to: small)
        let r = try CLI.run(["predict", "--device", "cpu", "--weights", small.path, good.path])
        #expect(r.status == 2 && r.stdout.isEmpty)
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("100 inputs"), "\(r.stderr)")

        let none = try CLI.run(["predict"])
        #expect(none.status != 0 && none.stderr.contains("image"), "\(none.stderr)")
    }
}
