// `scratchnet show`: looks at MNIST-format images (MNIST, Fashion-MNIST) with their labels, in the terminal (half
// blocks with 24-bit color, or an ASCII ramp when NO_COLOR is set, stdout is not a terminal, or --ascii) or as a
// PNG grid with the labels as captions. Also the class-name option shared with `infer --errors`.

import ArgumentParser
import Foundation
import ScratchNetIO

/// Class names for labels 0...9: `--classes auto|digits|fashion|NAME,NAME,...`.
struct ClassNameOptions: ParsableArguments {
    @Option(help: """
        Label names: digits (MNIST), fashion (Fashion-MNIST), or 10 comma-separated names. Default: auto \
        (fashion when the data folder's path contains "fashion", else digits).
        """)
    var classes: String = "auto"

    static let fashion = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    /// Short enough for a caption under a 56-pixel image.
    static let fashionShort = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]

    /// (full names for text, short names for captions), or nil for plain digits.
    func names(dataDirectory: URL) throws -> (full: [String], short: [String])? {
        switch classes.lowercased() {
        case "auto":
            return dataDirectory.path.lowercased().contains("fashion") ? (Self.fashion, Self.fashionShort) : nil
        case "digits", "mnist":
            return nil
        case "fashion", "fashion-mnist":
            return (Self.fashion, Self.fashionShort)
        default:
            let list = classes.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard list.count == 10, list.allSatisfy({ !$0.isEmpty }) else {
                throw CLIError("--classes '\(classes)': give auto, digits, fashion, or 10 non-empty names separated by commas")
            }
            return (list, list)
        }
    }
}

/// How labels are written: "7", or "9 (Ankle boot)" in text and "Boot" in captions.
struct LabelNames {
    var names: (full: [String], short: [String])?

    func text(_ label: Int) -> String {
        guard let names, label >= 0, label < names.full.count else { return String(label) }
        return "\(label) (\(names.full[label]))"
    }

    func caption(_ label: Int) -> String {
        guard let names, label >= 0, label < names.short.count else { return String(label) }
        return names.short[label]
    }
}

extension MNIST.Split: ExpressibleByArgument {}

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show MNIST-format images with their labels in the terminal, or save them as a PNG grid.",
        discussion: """
            Without --png, each image is printed to stdout after a line with its index and label: with 24-bit \
            color half blocks on a terminal, else (NO_COLOR set, output not a terminal, or --ascii) as ASCII art. \
            With --png, the images go into one PNG grid captioned with their labels, and stdout gets one line per image.
            """)

    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Which split: test or train (train needs train-images-idx3-ubyte[.gz] in the data folder).")
    var set: MNIST.Split = .test

    @Option(parsing: .unconditional, help: "Index of the first image.")
    var index: Int = 0

    @Option(parsing: .unconditional, help: "How many images (up to the end of the set).")
    var count: Int = 1

    @Option(help: "Write the images as a PNG grid to this file instead of drawing them in the terminal.")
    var png: String?

    @Option(parsing: .unconditional, help: "PNG: each image pixel becomes a SCALE x SCALE square (1...16).")
    var scale: Int = 2

    @Option(parsing: .unconditional, help: "PNG: images per row. Default: about square.")
    var columns: Int?

    @Flag(help: "Plain ASCII art even on a color terminal.")
    var ascii = false

    @OptionGroup var classOptions: ClassNameOptions

    func validate() throws {
        guard index >= 0 else { throw ValidationError("--index must be 0 or more, got \(index)") }
        guard count >= 1 else { throw ValidationError("--count must be at least 1, got \(count)") }
        guard (1...16).contains(scale) else { throw ValidationError("--scale must be 1...16, got \(scale)") }
        if let columns, columns < 1 { throw ValidationError("--columns must be at least 1, got \(columns)") }
    }

    func run() throws {
        let directory = try dataOptions.directory()
        let data = try MNIST.load(directory: directory, split: set)
        let labels = LabelNames(names: try classOptions.names(dataDirectory: directory))
        guard index < data.count else {
            throw CLIError("--index \(index) is past the end of the \(set.rawValue) set (\(data.count) images, 0...\(data.count - 1))")
        }
        let range = index..<min(index + count, data.count)

        if let png {
            let url = URL(fileURLWithPath: png)
            let cells = range.map {
                ImageGrid.Cell(pixels: data.pixels(of: $0), width: data.cols, height: data.rows,
                               caption: Caption(labels.caption(Int(data.labels[$0]))))
            }
            let sheet = try ImageGrid(scale: scale, columns: columns).render(cells)
            try sheet.write(to: url)
            for i in range { print("\(set.rawValue) #\(i)  label \(labels.text(Int(data.labels[i])))") }
            print("wrote \(range.count) image\(range.count == 1 ? "" : "s") to \(url.path) (\(sheet.width)x\(sheet.height))")
            return
        }

        let color = !ascii && TerminalImage.wantsColor(
            isTerminal: isatty(STDOUT_FILENO) == 1, environment: ProcessInfo.processInfo.environment)
        for i in range {
            print("\(set.rawValue) #\(i)  label \(labels.text(Int(data.labels[i])))")
            print(TerminalImage.render(data.pixels(of: i), width: data.cols, height: data.rows, color: color), terminator: "")
        }
    }
}
