// `scratchnet infer`: the book's chapter-3 batch inference (neuralnet_mnist_batch.py) on one device, with the
// evaluation around it: per-class accuracy and the confusion matrix (text, or --confusion as a PNG), --predictions
// as CSV, and --errors, a PNG grid of the misclassified test images captioned predicted→true.

import ArgumentParser
import Foundation
import ScratchNet
import ScratchNetIO

struct InferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Classify the MNIST test set with pretrained weights on one device; print accuracy and speed.")

    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var weightsOptions: WeightsOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(parsing: .unconditional, help: "Images per batch (the book uses 100).")
    var batchSize: Int = 100

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Option(help: ArgumentHelp(
        "Write a PNG grid of the misclassified test images, each captioned predicted→true (red→green).",
        valueName: "file.png"))
    var errors: String?

    @Option(parsing: .unconditional, help: "At most this many images in the --errors grid (the first misclassified ones by index).")
    var errorsLimit: Int = 100

    @Option(help: ArgumentHelp(
        "Write the confusion matrix as a PNG heat map (rows: true label, columns: predicted).", valueName: "file.png"))
    var confusion: String?

    @Option(help: ArgumentHelp(
        "Write one CSV line per image: index,label,prediction,probability (of the predicted class; the shortest decimal that gives its float32 bits).",
        valueName: "file.csv"))
    var predictions: String?

    @OptionGroup var classOptions: ClassNameOptions

    struct Report: Codable {
        var device: String
        var deviceName: String
        var images: Int
        var batchSize: Int
        var accuracy: Double
        var correct: Int
        var seconds: Double
        var imagesPerSecond: Double
        var setupSeconds: Double
        /// Peak resident memory of the whole process (getrusage ru_maxrss).
        var peakRSSMiB: Double
        /// Misclassified images (images - correct).
        var misclassified: Int
        /// With --errors: the PNG written and how many images it shows.
        var errorsFile: String?
        var errorsDrawn: Int?
        /// Accuracy of each class (nil for a class the data does not have), by label.
        var classAccuracy: [Double?]
        /// confusion[label][predicted]: how many images of each label got each prediction.
        var confusion: [[Int]]
        var confusionFile: String?
        var predictionsFile: String?
    }

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        guard errorsLimit > 0 else { throw ValidationError("--errors-limit must be at least 1, got \(errorsLimit)") }
    }

    func run() throws {
        for (path, option) in [(errors, "--errors"), (confusion, "--confusion"), (predictions, "--predictions")] {
            if let path { try checkOutputPath(path, option: option) }
        }
        let weights = try weightsOptions.load()
        let test = try dataOptions.testSet()
        let t0 = now()
        let backend = try deviceOptions.select()
        let network = try Network(weights: weights, activation: weightsOptions.activation, backend: backend)
        guard network.inputSize == test.rows * test.cols else {
            throw CLIError("the weights take \(network.inputSize) inputs but the images have \(test.rows)x\(test.cols) = \(test.rows * test.cols) pixels")
        }
        if let top = test.labels.max(), Int(top) >= network.outputSize {
            throw CLIError("the model has \(network.outputSize) classes but the data's labels go up to \(top) (\(Int(top) + 1) classes); use weights trained for this data")
        }
        let t1 = now()
        // The probabilities are downloaded only when the CSV needs them (the fused predict pass returns labels).
        var probabilities: [Float] = []
        let predictions: [Int]
        if self.predictions != nil {
            let result = try network.infer(bytes: test.images, count: test.count, batchSize: batchSize)
            predictions = result.predictions
            probabilities = result.probabilities
        } else {
            predictions = try network.classify(bytes: test.images, count: test.count, batchSize: batchSize)
        }
        let t2 = now()
        let matrix = try ConfusionMatrix(classes: network.outputSize, labels: test.labels, predictions: predictions)
        let correct = matrix.correct
        let accuracy = Double(correct) / Double(max(test.count, 1))
        var report = Report(
            device: backend.device.id, deviceName: backend.device.name, images: test.count, batchSize: batchSize,
            accuracy: accuracy, correct: correct, seconds: t2 - t1,
            imagesPerSecond: Double(test.count) / (t2 - t1), setupSeconds: t1 - t0, peakRSSMiB: peakRSSMiB(),
            misclassified: test.count - correct,
            classAccuracy: (0..<matrix.classes).map { matrix.accuracy(ofClass: $0) },
            confusion: (0..<matrix.classes).map { r in (0..<matrix.classes).map { matrix[r, $0] } })
        let names = try classOptions.names(dataDirectory: try dataOptions.directory())
        if let confusion {
            let url = URL(fileURLWithPath: confusion)
            try ConfusionPicture.render(matrix, names: names?.short).write(to: url)
            report.confusionFile = url.path
        }
        if let path = self.predictions {
            let url = URL(fileURLWithPath: path)
            try predictionsCSV(labels: test.labels, predictions: predictions, probabilities: probabilities,
                               classes: network.outputSize).write(to: url, atomically: true, encoding: .utf8)
            report.predictionsFile = url.path
        }
        if let errors {
            let url = URL(fileURLWithPath: errors)
            let drawn = try writeErrorGrid(test, predictions: predictions, to: url)
            report.errorsFile = url.path
            report.errorsDrawn = drawn
        }
        if json {
            try printJSON(report)
        } else {
            print("device:     \(backend.device)")
            print("images:     \(report.images) (batch size \(batchSize))")
            print("accuracy:   \(String(format: "%.4f", accuracy)) (\(report.correct) correct)")
            print("time:       \(format(report.seconds * 1000, 1)) ms (+ \(format(report.setupSeconds * 1000, 1)) ms device setup)")
            print("images/s:   \(format(report.imagesPerSecond, 0))")
            print("peak RSS:   \(format(report.peakRSSMiB)) MiB")
            if let file = report.errorsFile, let drawn = report.errorsDrawn {
                let which = drawn == report.misclassified ? "all \(drawn)" : "the first \(drawn)"
                print("errors:     \(report.misclassified) misclassified; \(which) drawn in \(file)")
            }
            if let file = report.confusionFile { print("confusion:  \(file)") }
            if let file = report.predictionsFile { print("predictions: \(file)") }
            print("")
            print("confusion matrix (rows: true label, columns: predicted; accuracy per class):")
            print(matrix.text(names: names?.short))
        }
    }

    /// "index,label,prediction,probability" lines; the probability is Float's shortest round-trip decimal, so
    /// the same bits give the same text on every device.
    func predictionsCSV(labels: [UInt8], predictions: [Int], probabilities: [Float], classes: Int) -> String {
        var csv = "index,label,prediction,probability\n"
        csv.reserveCapacity(predictions.count * 24)
        for (i, (label, predicted)) in zip(labels, predictions).enumerated() {
            csv += "\(i),\(label),\(predicted),\(probabilities[i * classes + predicted])\n"
        }
        return csv
    }

    /// Draws the first `errorsLimit` misclassified images (by index) as a grid captioned predicted→true;
    /// returns how many it drew.
    func writeErrorGrid(_ test: MNISTSet, predictions: [Int], to url: URL) throws -> Int {
        let labels = LabelNames(names: try classOptions.names(dataDirectory: try dataOptions.directory()))
        var cells: [ImageGrid.Cell] = []
        for (i, (predicted, label)) in zip(predictions, test.labels).enumerated() where predicted != Int(label) {
            guard cells.count < errorsLimit else { break }
            cells.append(ImageGrid.Cell(
                pixels: test.pixels(of: i), width: test.cols, height: test.rows,
                caption: .error(predicted: labels.caption(predicted), true: labels.caption(Int(label)))))
        }
        try ImageGrid(scale: 2).render(cells).write(to: url)
        return cells.count
    }
}

/// The process's peak resident set size so far, in MiB: VmHWM from /proc/self/status on Linux (getrusage's
/// ru_maxrss is not reset by exec, so a child started by a large parent would report the parent's peak).
func peakRSSMiB() -> Double {
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kib = Double(line.split(separator: " ").dropFirst().first ?? "")
    {
        return kib / 1024
    }
    var usage = rusage()
    guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return .nan }
    return Double(usage.ru_maxrss) / 1024  // KiB on Linux
}
