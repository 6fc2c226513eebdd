// `scratchnet parity`: the main job. Runs the book network on the MNIST test set on the CPU path and on every
// OpenCL device at several batch sizes, and checks that every probability is bitwise identical.

import ArgumentParser
import Foundation
import ScratchNet
import ScratchNetIO
import ScratchNetOpenCL

struct ParityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity",
        abstract: "Run the same inference on the CPU path and each OpenCL device and compare every output bit.",
        discussion: "Exit status 0 when every output of every device and batch size is bitwise equal to the CPU path's, 1 otherwise, 2 on errors.")

    @OptionGroup var deviceList: DeviceListOptions
    @OptionGroup var weightsOptions: WeightsOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Comma-separated batch sizes to run on every device.")
    var batchSizes: String = "1,37,100,10000"

    @Option(help: "Classify only the first N test images (default: all).")
    var limit: Int?

    @Flag(help: "Print the result as JSON.")
    var json = false

    struct Row: Codable {
        var device: String
        var deviceName: String
        var parityCapability: String
        var batchSize: Int
        var accuracy: Double
        var seconds: Double
        var differingPredictions: Int
        var maxAbsDifference: Float
        var bitwiseEqual: Int
        var outputs: Int
        var firstDivergentLayer: String?
    }

    struct Report: Codable {
        var images: Int
        var reference: String
        var rows: [Row]
        var bitwiseIdentical: Bool
    }

    func run() throws {
        let sizes = try parseSizes(batchSizes, flag: "--batch-sizes")
        let weights = try weightsOptions.load()
        let test = try dataOptions.testSet()
        let count = min(limit ?? test.count, test.count)
        guard count > 0 else { throw CLIError("--limit must be at least 1") }
        var backends = try deviceList.backends()
        let cpu: any Backend
        if let found = backends.first(where: { $0.device.kind == .cpu }) {
            cpu = found
        } else {
            cpu = try DeviceSelector.select(.cpu).backend
            backends.insert(cpu, at: 0)
        }
        let referenceNetwork = try Network(weights: weights, activation: weightsOptions.activation, backend: cpu)
        let reference = try referenceNetwork.infer(bytes: test.images, count: count, batchSize: sizes[0])
        let labels = test.labels.prefix(count)

        var rows: [Row] = []
        for backend in backends {
            let network = try Network(weights: weights, activation: weightsOptions.activation, backend: backend)
            for size in sizes {
                let t0 = now()
                let result = try network.infer(bytes: test.images, count: count, batchSize: size)
                let seconds = now() - t0
                let cmp = Comparison(result.probabilities, reference.probabilities)
                let differing = zip(result.predictions, reference.predictions).filter { $0 != $1 }.count
                var divergent: String? = nil
                if let first = cmp.firstMismatch {
                    divergent = try firstDivergentLayer(
                        sample: first / reference.classes, network, referenceNetwork, test)
                }
                rows.append(Row(
                    device: backend.device.id, deviceName: backend.device.name,
                    parityCapability: backend.device.parity.description, batchSize: size,
                    accuracy: result.accuracy(labels: labels), seconds: seconds,
                    differingPredictions: differing, maxAbsDifference: cmp.maxAbsDifference,
                    bitwiseEqual: cmp.bitwiseEqual, outputs: cmp.count, firstDivergentLayer: divergent))
            }
        }
        let identical = rows.allSatisfy { $0.bitwiseEqual == $0.outputs }
        if json {
            try printJSON(Report(images: count, reference: "cpu, batch \(sizes[0])", rows: rows, bitwiseIdentical: identical))
        } else {
            print("MNIST test images: \(count); reference: the CPU path at batch size \(sizes[0])")
            for backend in backends {
                print("  \(backend.device): \(backend.device.parity)")
            }
            var table = Table("device", "batch", "accuracy", "time ms", "diff preds", "max |Δ|", "bitwise equal", "first divergent layer")
            for r in rows {
                table.add(
                    r.device, "\(r.batchSize)", String(format: "%.4f", r.accuracy), format(r.seconds * 1000),
                    "\(r.differingPredictions)", "\(r.maxAbsDifference)", "\(r.bitwiseEqual)/\(r.outputs)",
                    r.firstDivergentLayer ?? "-")
            }
            print(table.render())
            let runs = rows.count
            print(identical
                ? "parity: PASS: all \(runs) runs bitwise identical to the CPU path (\(count * reference.classes) probabilities each)"
                : "parity: FAIL: \(rows.filter { $0.bitwiseEqual != $0.outputs }.count) of \(runs) runs differ from the CPU path")
        }
        if !identical { throw ExitCode(1) }
    }

    /// Runs one sample layer by layer (unfused) on both networks and names the first layer whose outputs differ.
    private func firstDivergentLayer(sample: Int, _ network: Network, _ reference: Network, _ test: MNISTSet) throws -> String {
        let x = test.images(sample..<(sample + 1))
        let a = try network.trace(x)
        let b = try reference.trace(x)
        for (la, lb) in zip(a, b) where !Comparison(la.output.scalars, lb.output.scalars).isBitwiseEqual {
            return "\(la.layer) (image \(sample))"
        }
        return "none at batch 1 (image \(sample))"
    }
}
