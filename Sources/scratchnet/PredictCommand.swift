// `scratchnet predict IMAGE...`: classifies pictures of digits (PNG files of any size and polarity), each made
// into a 28x28 MNIST-style input by DigitImage (ScratchNetIO), with the model loading and device selection of
// `infer`. Prints the top 3 classes per image, or JSON; --show draws the network's input.

import ArgumentParser
import Foundation
import ScratchNet
import ScratchNetIO

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Classify PNG pictures of digits: each is made into a 28x28 MNIST-style input, then classified.",
        discussion: """
            Each PNG (8-bit gray, RGB or palette, with or without alpha; any size; dark-on-light or light-on-dark) \
            is converted as MNIST was made: to gray, inverted if its border is light, cropped to its ink, scaled so \
            the ink's larger side is 20 pixels, and centred by mass in a 28x28 frame. One line per image: the three \
            most probable classes with their probabilities.
            """)

    @Argument(help: ArgumentHelp("PNG files to classify.", valueName: "image.png"))
    var images: [String]

    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var weightsOptions: WeightsOptions

    @Flag(help: "Print the result as JSON: an array of {file, top3: [{class, probability}]}.")
    var json = false

    @Flag(help: "Also draw each 28x28 input the network sees (on stdout, or on stderr with --json).")
    var show = false

    @Flag(help: "With --show: plain ASCII art even on a color terminal.")
    var ascii = false

    struct Guess: Codable {
        var `class`: Int
        /// The network's float32 output, written in JSON as its shortest round-trip decimal (as infer's CSV).
        var probability: Float
    }

    struct Prediction: Codable {
        var file: String
        var top3: [Guess]
    }

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one PNG file to classify") }
    }

    func run() throws {
        // Every image first, so a bad file fails before any device is set up.
        let inputs = try images.map { path in try DigitImage(contentsOf: URL(fileURLWithPath: path)) }
        let weights = try weightsOptions.load()
        let backend = try deviceOptions.select()
        let network = try Network(weights: weights, activation: weightsOptions.activation, backend: backend)
        let side = DigitImage.side
        guard network.inputSize == side * side else {
            throw CLIError("the weights take \(network.inputSize) inputs, but predict makes \(side)x\(side) = \(side * side)-pixel images; pass MNIST-shaped weights with --weights")
        }
        let bytes = inputs.flatMap(\.pixels)
        let result = try network.infer(bytes: bytes, count: inputs.count, batchSize: min(inputs.count, 100))

        let predictions = images.indices.map { i in
            let row = result.probabilities[(i * result.classes)..<((i + 1) * result.classes)]
            return Prediction(file: images[i], top3: Self.top(3, of: Array(row)))
        }

        let drawTo: Int32 = json ? STDERR_FILENO : STDOUT_FILENO
        let color = !ascii && TerminalImage.wantsColor(
            isTerminal: isatty(drawTo) == 1, environment: ProcessInfo.processInfo.environment)
        for (prediction, input) in zip(predictions, inputs) {
            let line = Self.line(prediction)
            if show {
                let picture = TerminalImage.render(input.pixels, width: side, height: side, color: color)
                if json {
                    Console.error(line)
                    FileHandle.standardError.write(Data(picture.utf8))
                } else {
                    print(line)
                    print(picture, terminator: "")
                }
            } else if !json {
                print(line)
            }
        }
        if json { try printJSON(predictions) }
    }

    /// "digit.png: 7 (0.9871), 2 (0.0071), 3 (0.0040)".
    static func line(_ p: Prediction) -> String {
        "\(p.file): " + p.top3.map { "\($0.class) (\(String(format: "%.4f", $0.probability)))" }.joined(separator: ", ")
    }

    /// The `k` largest outputs, largest first; ties keep the lower class first (as argmax picks the first maximum),
    /// and NaN sorts first, as argmax lets NaN win.
    static func top(_ k: Int, of outputs: [Float]) -> [Guess] {
        let order = outputs.indices.sorted { a, b in
            let x = outputs[a], y = outputs[b]
            if x.isNaN || y.isNaN { return x.isNaN && (!y.isNaN || a < b) }
            return x != y ? x > y : a < b
        }
        return order.prefix(k).map { Guess(class: $0, probability: outputs[$0]) }
    }
}
