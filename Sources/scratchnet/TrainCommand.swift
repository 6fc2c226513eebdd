// `scratchnet train`: mini-batch training of the book's networks (chapters 4–6) on one device, with per-epoch
// statistics, a progress bar, learning curves (SVG + CSV) and the weights as safetensors. Ctrl-C stops after
// the current batch and still saves everything.

import ArgumentParser
import Foundation
import ScratchNet
import ScratchNetIO
import Synchronization

/// Set by the SIGINT handler; the training loop checks it after each batch.
private let stopRequested = Atomic<Bool>(false)

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a network on an MNIST-format dataset (e.g. Fashion-MNIST) and save its weights.",
        discussion: """
            The data folder holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and \
            t10k-labels-idx1-ubyte (each may be .gz). Debian's dataset-fashion-mnist package installs Fashion-MNIST \
            in /usr/share/datasets/fashion-mnist. The same --seed gives the same weights on every device with \
            bitwise parity. Press Ctrl-C once to stop after the current batch and save; twice to quit at once.
            """)

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(help: "Folder with the training and test IDX files. Default: $MNIST_DIR, else ../shared/mnist (Data/ in the box has only the test set).")
    var data: String?

    @Option(help: "Layer sizes, inputs first and classes last (the book's TwoLayerNet: 784,50,10).")
    var layers: String = "784,50,10"

    @Option(help: "Hidden-layer activation: sigmoid or relu.")
    var activation: Activation = .sigmoid

    @Option(help: "sgd, momentum, adagrad or adam.")
    var optimizer: OptimizerKind = .sgd

    @Option(parsing: .unconditional, help: "Learning rate. Default: 0.1 for sgd (the book's train_neuralnet.py), else the book's default (0.01; adam 0.001).")
    var lr: Double?

    @Option(parsing: .unconditional, help: "Passes over the training set.")
    var epochs: Int = 10

    @Option(parsing: .unconditional, help: "Images per step.")
    var batchSize: Int = 100

    @Option(parsing: .unconditional, help: "Seed of the initial weights and the shuffle.")
    var seed: UInt64 = 0

    @Option(help: "Initial weights: auto (He for relu, Xavier for sigmoid), he, xavier, or a standard deviation such as 0.01 (the book's TwoLayerNet).")
    var initialization: String = "auto"

    @Option(help: "Where to write the weights (safetensors; W1..Wn, b1..bn as the book names them).")
    var out: String = "weights.safetensors"

    @Option(help: "Learning-curve plot (.svg). Default: next to --out with .svg; 'none' to skip.")
    var plot: String?

    @Option(help: "Learning curves as CSV. Default: next to --out with .csv; 'none' to skip.")
    var csv: String?

    @Option(parsing: .unconditional, help: "Train on the first N training images only.")
    var limit: Int?

    @Flag(help: "Skip the accuracy passes after each epoch (timing runs).")
    var noEval = false

    @Flag(help: "Print one JSON object per epoch on stdout instead of text.")
    var json = false

    struct EpochReport: Codable {
        var epoch: Int
        var steps: Int
        var trainLoss: Double
        var trainAccuracy: Double?
        var testAccuracy: Double?
        var seconds: Double
        var trainSeconds: Double
        var imagesPerSecond: Double
        var device: String
        var stopped: Bool
    }

    func validate() throws {
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if let lr { guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be a positive number, got \(lr)") } }
        if let limit { guard limit >= 1 else { throw ValidationError("--limit must be at least 1, got \(limit)") } }
        _ = try layerSizes()
        _ = try weightInit()
    }

    func layerSizes() throws -> [Int] {
        let sizes = try parseSizes(layers, flag: "--layers", example: "784,50,10")
        guard sizes.count >= 2 else {
            throw ValidationError("--layers needs at least two sizes (inputs and classes), e.g. 784,50,10; got '\(layers)'")
        }
        return sizes
    }

    func weightInit() throws -> WeightInit {
        switch initialization.lowercased() {
        case "auto": return .auto
        case "he": return .he
        case "xavier": return .xavier
        default:
            guard let s = Double(initialization), s > 0, s.isFinite else {
                throw ValidationError("--initialization must be auto, he, xavier or a positive standard deviation, got '\(initialization)'")
            }
            return .standardDeviation(s)
        }
    }

    func run() throws {
        // Every output path is checked before the data is read, so a bad one never costs a training run.
        let outURL = URL(fileURLWithPath: out)
        let plotURL = sibling(plot, of: outURL, ext: "svg")
        let csvURL = sibling(csv, of: outURL, ext: "csv")
        try checkOutputPath(out, option: "--out")
        if let plotURL { try checkOutputPath(plotURL.path, option: plot == nil ? "--plot (next to --out)" : "--plot") }
        if let csvURL { try checkOutputPath(csvURL.path, option: csv == nil ? "--csv (next to --out)" : "--csv") }
        let directory: URL
        if let data { directory = URL(fileURLWithPath: data) } else if let dir = MNIST.defaultDirectory(environment: ProcessInfo.processInfo.environment) {
            directory = dir
        } else {
            throw CLIError("no data folder: pass --data DIR (e.g. /usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist)")
        }
        let trainSet: MNISTSet
        do {
            trainSet = try MNIST.load(directory: directory, split: .train)
        } catch {
            throw CLIError("\(error) — training needs train-images-idx3-ubyte(.gz) and train-labels-idx1-ubyte(.gz) in \(directory.path); for Fashion-MNIST install Debian's dataset-fashion-mnist and pass --data /usr/share/datasets/fashion-mnist")
        }
        let testSet = try MNIST.load(directory: directory, split: .test)
        var train = try LabeledBytes(
            images: trainSet.images, labels: trainSet.labels, count: trainSet.count, features: trainSet.rows * trainSet.cols)
        if let limit { train = train.prefix(limit) }
        let test = try LabeledBytes(
            images: testSet.images, labels: testSet.labels, count: testSet.count, features: testSet.rows * testSet.cols)
        let sizes = try layerSizes()
        guard sizes[0] == train.features else {
            throw CLIError("--layers starts with \(sizes[0]) inputs but the images have \(trainSet.rows)x\(trainSet.cols) = \(train.features) pixels")
        }
        let classes = Int((trainSet.labels + testSet.labels).max() ?? 0) + 1
        guard sizes[sizes.count - 1] == classes else {
            throw CLIError("--layers ends with \(sizes[sizes.count - 1]) outputs but the data has \(classes) classes (labels 0...\(classes - 1)): the last size must be \(classes), e.g. --layers \(train.features),50,\(classes)")
        }

        let backend = try deviceOptions.select(job: .training)
        let learningRate = lr ?? (optimizer == .sgd ? 0.1 : optimizer.defaultLearningRate)
        let trainer = try Trainer(
            layerSizes: sizes, activation: activation, initialization: weightInit(), optimizer: optimizer,
            learningRate: learningRate, batchSize: batchSize, seed: seed, backend: backend)

        let log = StandardError()
        if !json {
            log.line("training \(sizes.map(String.init).joined(separator: "-")) \(activation.rawValue), \(optimizer.rawValue) lr \(learningRate), batch \(batchSize), seed \(seed) on \(backend.device)")
            log.line("data: \(train.count) training and \(test.count) test images from \(directory.path)")
        }

        stopRequested.store(false, ordering: .relaxed)
        signal(SIGINT) { _ in
            stopRequested.store(true, ordering: .relaxed)
            signal(SIGINT, SIG_DFL)  // a second Ctrl-C quits at once
        }
        // A parent may have started us with SIGINT blocked (a child inherits the spawning thread's mask, and
        // Dispatch's worker threads block signals): unblock it, or Ctrl-C would never arrive.
        var interrupt = sigset_t()
        sigemptyset(&interrupt)
        sigaddset(&interrupt, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &interrupt, nil)
        defer { signal(SIGINT, SIG_DFL) }

        var history: [EpochReport] = []
        let stepsPerEpoch = (train.count + batchSize - 1) / batchSize
        for e in 1...epochs {
            // The bar is drawn on stderr; the epoch's result line goes to stdout (`train > log` keeps it).
            let progress = ProgressReporter(
                total: stepsPerEpoch, label: "epoch \(e)/\(epochs)", isTerminal: !json && isatty(STDERR_FILENO) == 1)
            let t0 = now()
            let result = try trainer.trainEpoch(
                train, shouldStop: { stopRequested.load(ordering: .relaxed) },
                progress: { done, _ in progress.update(done: done, extra: "") })
            let trainAccuracy = noEval ? nil : try trainer.accuracy(train)
            let testAccuracy = noEval ? nil : try trainer.accuracy(test)
            let report = EpochReport(
                epoch: e, steps: result.steps, trainLoss: result.meanLoss, trainAccuracy: trainAccuracy,
                testAccuracy: testAccuracy, seconds: now() - t0, trainSeconds: result.seconds,
                imagesPerSecond: Double(result.samples) / result.seconds, device: backend.device.id,
                stopped: result.stopped)
            history.append(report)
            let line = describe(report, of: epochs)
            progress.finish(line: "")
            if json { try printJSONLine(report) } else { printLine(line) }
            if result.stopped || stopRequested.load(ordering: .relaxed) {
                log.line("stopped by Ctrl-C after step \(result.steps) of epoch \(e); saving")
                break
            }
        }

        let weights = try trainer.weights()
        let metadata = [
            "format": "scratchnet", "activation": activation.rawValue, "layers": sizes.map(String.init).joined(separator: ","),
            "optimizer": optimizer.rawValue, "lr": "\(learningRate)", "seed": "\(seed)", "epochs": "\(history.count)",
            "device": backend.device.id,
        ]
        try SafeTensors.write(weights, metadata: metadata, to: outURL)
        if let csvURL { try writeCSV(history, to: csvURL) }
        if let plotURL { try writePlot(history, to: plotURL, title: "\(sizes.map(String.init).joined(separator: "-")) \(activation.rawValue), \(optimizer.rawValue)") }
        if !json {
            printLine("wrote \(outURL.path)" + (plotURL.map { ", \($0.path)" } ?? "") + (csvURL.map { ", \($0.path)" } ?? ""))
            log.line("run `scratchnet infer --weights \(outURL.path) --data \(directory.path)` to evaluate it")
        }
    }

    /// "epoch 3/10  loss 0.4123  train 0.8512  test 0.8401  2.41 s  24,896 img/s".
    func describe(_ r: EpochReport, of total: Int) -> String {
        var s = "epoch \(r.epoch)/\(total)  loss \(String(format: "%.4f", r.trainLoss))"
        if let a = r.trainAccuracy { s += "  train acc \(String(format: "%.4f", a))" }
        if let a = r.testAccuracy { s += "  test acc \(String(format: "%.4f", a))" }
        s += "  \(format(r.seconds, 2)) s  \(format(r.imagesPerSecond, 0)) img/s"
        if r.stopped { s += "  (stopped after \(r.steps) steps)" }
        return s
    }

    func sibling(_ option: String?, of url: URL, ext: String) -> URL? {
        if let option { return option == "none" ? nil : URL(fileURLWithPath: option) }
        return url.deletingPathExtension().appendingPathExtension(ext)
    }

    func writeCSV(_ history: [EpochReport], to url: URL) throws {
        try CSVTable(columns: [
            ("epoch", history.map { Double($0.epoch) }), ("steps", history.map { Double($0.steps) }),
            ("train_loss", history.map(\.trainLoss)), ("train_accuracy", history.map { $0.trainAccuracy ?? .nan }),
            ("test_accuracy", history.map { $0.testAccuracy ?? .nan }), ("train_seconds", history.map(\.trainSeconds)),
            ("images_per_second", history.map(\.imagesPerSecond)),
        ]).write(to: url)
    }

    func writePlot(_ history: [EpochReport], to url: URL, title: String) throws {
        let x = history.map { Double($0.epoch) }
        var panels = [LinePlot.Panel(yLabel: "loss", series: [.init("train loss", history.map(\.trainLoss))])]
        if !noEval {
            panels.append(LinePlot.Panel(
                yLabel: "accuracy",
                series: [.init("train", history.map { $0.trainAccuracy ?? .nan }), .init("test", history.map { $0.testAccuracy ?? .nan })]))
        }
        try LinePlot(title: title, xLabel: "epoch", x: x, panels: panels).write(to: url)
    }
}

/// A result line on stdout, written at once (a reader of a pipe sees each epoch as it ends).
func printLine(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// Lines to stderr (status, so stdout stays clean for --json).
struct StandardError {
    func line(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

/// One compact JSON object per line (JSON Lines).
func printJSONLine<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    // Unbuffered, so a reader sees each epoch as it ends.
    FileHandle.standardOutput.write(try encoder.encode(value) + Data("\n".utf8))
}

extension OptimizerKind: ExpressibleByArgument {}
