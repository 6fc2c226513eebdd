// `scratchnet parity`: the main job. Runs the book network on the MNIST test set on the CPU path and on every
// OpenCL device, through both paths a device has (the fused whole-network pass and layer by layer), at
// several batch sizes, and checks that every probability is bitwise identical to the CPU path's. A run that
// differs is diagnosed on one image: the layer-by-layer outputs against the CPU path's name the first
// divergent layer; if they all agree, the fused kernel is named. Parity is the diagnosis, so devices run
// unchecked here (their self-check verdict is printed beside the table).
//
// A slow device gets a deterministic sample (every k-th image) sized to a time budget, and says so; `--quick`
// samples every device, `--full` never samples. On a terminal a progress line shows which run is going.

import ArgumentParser
import Foundation
import ScratchNet
import ScratchNetIO
import ScratchNetOpenCL

struct ParityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity",
        abstract: "Run the same inference on the CPU path and each OpenCL device and compare every output bit.",
        discussion: """
            Every device runs its fused whole-network path and its layer-by-layer path at each batch size. \
            A device too slow for the time budget checks an evenly spread sample of the images (and says so). \
            Exit status 0 when every output of every run is bitwise equal to the CPU path's, 1 otherwise, 2 on errors.
            """)

    @OptionGroup var deviceList: DeviceListOptions
    @OptionGroup var weightsOptions: WeightsOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Comma-separated batch sizes to run on every device.")
    var batchSizes: String = "1,37,100,10000"

    @Option(parsing: .unconditional, help: "Classify only the first N test images (default: all).")
    var limit: Int?

    @Flag(help: "Check a sample of \(Self.quickSample) evenly spread images on every device.")
    var quick = false

    @Flag(help: "Check every image on every device, however slow.")
    var full = false

    @Option(parsing: .unconditional, help: "Seconds a device may take for all its runs before it checks a sample instead.")
    var timeBudget: Double = 20

    @Flag(help: "Print the result as JSON.")
    var json = false

    static let quickSample = 500

    struct Row: Codable {
        var device: String
        var deviceName: String
        var parityCapability: String
        /// "fused" (the whole-network pass) or "layers" (layer by layer).
        var path: String
        var batchSize: Int
        var images: Int
        var accuracy: Double
        var seconds: Double
        var differingPredictions: Int
        var maxAbsDifference: Float
        var bitwiseEqual: Int
        var outputs: Int
        var firstDivergentLayer: String?
    }

    struct DeviceNote: Codable {
        var device: String
        /// Images checked on this device (all, or a sample).
        var images: Int
        var sampled: Bool
        var selfCheck: String?
    }

    struct Report: Codable {
        var images: Int
        var reference: String
        var devices: [DeviceNote]
        var rows: [Row]
        var bitwiseIdentical: Bool
    }

    func validate() throws {
        guard !(quick && full) else { throw ValidationError("--quick and --full exclude each other") }
        guard timeBudget > 0 else { throw ValidationError("--time-budget must be more than 0 seconds, got \(timeBudget)") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
    }

    func run() throws {
        let sizes = try parseSizes(batchSizes, flag: "--batch-sizes", example: "1,100,10000")
        let weights = try weightsOptions.load()
        let test = try dataOptions.testSet()
        let count = min(limit ?? test.count, test.count)
        guard count > 0 else { throw CLIError("--limit must be at least 1") }
        var backends = try deviceList.backends(checked: false, quiet: true)
        let cpu: any Backend
        if let found = backends.first(where: { $0.device.kind == .cpu }) {
            cpu = found
        } else {
            cpu = try DeviceSelector.select(.cpu).backend
            backends.insert(cpu, at: 0)
        }
        let activation = weightsOptions.activation
        let referenceNetwork = try Network(weights: weights, activation: activation, backend: cpu, fusedPath: false)
        let reference = try referenceNetwork.infer(bytes: test.images, count: count, batchSize: sizes[0])
        let pixels = referenceNetwork.inputSize
        let classes = reference.classes

        var rows: [Row] = []
        var notes: [DeviceNote] = []
        let progress = ProgressReporter(total: backends.count * 2 * sizes.count, label: "parity", isTerminal: !json && ProgressBar.standardErrorIsTerminal())
        var done = 0
        for backend in backends {
            let networks = try ["fused", "layers"].map { path in
                (path, try Network(weights: weights, activation: activation, backend: backend, fusedPath: path == "fused"))
            }
            // Which images: all, or an evenly spread sample when asked (--quick) or when the device is slow.
            var indices = Array(0..<count)
            var sampled = false
            if quick && count > Self.quickSample {
                indices = Self.sample(count, Self.quickSample)
                sampled = true
            } else if !full && backend.device.kind != .cpu {
                let rate = try probeRate(networks.map(\.1), sizes: sizes, test: test, count: count)
                let runs = Double(networks.count * sizes.count)
                let affordable = Int(timeBudget * rate / runs)
                if affordable < count {
                    let n = max(min(count, 20), affordable)
                    indices = Self.sample(count, n)
                    sampled = true
                    Console.error("note: \(backend.device.id) runs about \(Int(rate)) images/s: checking an evenly spread sample of \(n) of \(count) images to stay within --time-budget \(Int(timeBudget)) s (use --full for all)")
                }
            }
            let bytes = sampled ? Self.gather(test.images, indices, pixels) : Array(test.images.prefix(count * pixels))
            let want = sampled ? Self.gather(reference.probabilities, indices, classes) : reference.probabilities
            let wantPredictions = sampled ? indices.map { reference.predictions[$0] } : reference.predictions
            let labels = indices.map { Int(test.labels[$0]) }
            notes.append(DeviceNote(device: backend.device.id, images: indices.count, sampled: sampled, selfCheck: try selfCheckLine(backend)))

            for (path, network) in networks {
                for size in sizes {
                    progress.update(done: done, extra: "\(backend.device.id) \(path) batch \(size)")
                    let t0 = now()
                    let result = try network.infer(bytes: bytes, count: indices.count, batchSize: size)
                    let seconds = now() - t0
                    done += 1
                    let cmp = Comparison(result.probabilities, want)
                    let differing = zip(result.predictions, wantPredictions).filter { $0 != $1 }.count
                    var divergent: String? = nil
                    if let first = cmp.firstMismatch {
                        let image = indices[min(first / classes, indices.count - 1)]
                        divergent = try firstDivergentLayer(
                            image: image, path: path, network, referenceNetwork, test, backend: backend)
                    }
                    rows.append(Row(
                        device: backend.device.id, deviceName: backend.device.name,
                        parityCapability: backend.device.parity.description, path: path, batchSize: size,
                        images: indices.count, accuracy: result.accuracy(labels: labels), seconds: seconds,
                        differingPredictions: differing, maxAbsDifference: cmp.maxAbsDifference,
                        bitwiseEqual: cmp.bitwiseEqual, outputs: cmp.count, firstDivergentLayer: divergent))
                }
            }
        }
        progress.finish(line: "")
        let identical = rows.allSatisfy { $0.bitwiseEqual == $0.outputs }
        if json {
            try printJSON(Report(
                images: count, reference: "cpu, layer by layer, batch \(sizes[0])", devices: notes, rows: rows,
                bitwiseIdentical: identical))
        } else {
            print("MNIST test images: \(count); reference: the CPU path, layer by layer, at batch size \(sizes[0])")
            for (backend, note) in zip(backends, notes) {
                print("  \(backend.device): \(backend.device.parity)")
                if note.sampled { print("      checked a sample of \(note.images) of \(count) images") }
                if let line = note.selfCheck { print("      self-check: \(line)") }
            }
            var table = Table(
                "device", "path", "batch", "images", "accuracy", "time ms", "diff preds", "max |Δ|", "bitwise equal",
                "first divergent layer")
            for r in rows {
                table.add(
                    r.device, r.path, "\(r.batchSize)", "\(r.images)", String(format: "%.4f", r.accuracy),
                    format(r.seconds * 1000), "\(r.differingPredictions)", "\(r.maxAbsDifference)",
                    "\(r.bitwiseEqual)/\(r.outputs)", r.firstDivergentLayer ?? "-")
            }
            print(table.render())
            if identical {
                print("parity: PASS: all \(rows.count) runs bitwise identical to the CPU path")
            } else {
                print("parity: FAIL: \(rows.filter { $0.bitwiseEqual != $0.outputs }.count) of \(rows.count) runs differ from the CPU path")
                for backend in backends {
                    let mine = rows.filter { $0.device == backend.device.id }
                    let fusedBad = mine.filter { $0.path == "fused" && $0.bitwiseEqual != $0.outputs }
                    let layersBad = mine.filter { $0.path == "layers" && $0.bitwiseEqual != $0.outputs }
                    guard !fusedBad.isEmpty || !layersBad.isEmpty else { continue }
                    let where_ = (layersBad.first ?? fusedBad.first)?.firstDivergentLayer ?? "?"
                    if layersBad.isEmpty {
                        let kernel = backend.kernelName(for: .fusedForward) ?? "the fused pass"
                        print("  \(backend.device.id): the fused kernel \(kernel) differs in \(fusedBad.count) of \(fusedBad.count) fused runs (\(where_)); layer by layer is bitwise identical")
                    } else {
                        print("  \(backend.device.id): layer by layer differs in \(layersBad.count) runs, first at \(where_)")
                    }
                }
            }
        }
        if !identical { throw ExitCode(1) }
    }

    /// Images per second of the slowest path at the smallest batch size, measured on a few images.
    private func probeRate(_ networks: [Network], sizes: [Int], test: MNISTSet, count: Int) throws -> Double {
        let size = sizes.min() ?? 1
        let n = min(count, max(size, 16))
        var slowest = Double.infinity
        for network in networks {
            // The first call pays one-off costs (lazy kernel compiles, buffers); the second is the rate.
            _ = try network.infer(bytes: test.images, count: min(n, size), batchSize: size)
            let t0 = now()
            _ = try network.infer(bytes: test.images, count: n, batchSize: size)
            slowest = min(slowest, Double(n) / max(now() - t0, 1e-9))
        }
        return slowest
    }

    /// `n` indices spread evenly over 0..<count (always including 0).
    static func sample(_ count: Int, _ n: Int) -> [Int] {
        (0..<n).map { $0 * count / n }
    }

    /// The rows `indices` (each `width` values) of `values`, concatenated.
    static func gather<T>(_ values: [T], _ indices: [Int], _ width: Int) -> [T] {
        indices.flatMap { values[($0 * width)..<(($0 + 1) * width)] }
    }

    /// The device's self-check verdict in one line (OpenCL devices only).
    private func selfCheckLine(_ backend: any Backend) throws -> String? {
        guard let opencl = backend as? OpenCLBackend else { return nil }
        switch try DeviceSelector.verify(opencl, job: .inference) {
        case .passed(let report): return "passed (\(report.results.count) checks)"
        case .fusedFailed(_, let bad): return "the fused kernel failed: \(DeviceSelector.describe(bad, on: backend))"
        case .failed(_, let bad): return "failed: \(DeviceSelector.describe(bad, on: backend))"
        }
    }

    /// Diagnoses one image: the layer-by-layer outputs against the CPU path name the first divergent layer;
    /// when they all agree but the fused pass differs, the fused kernel is named.
    private func firstDivergentLayer(
        image: Int, path: String, _ network: Network, _ reference: Network, _ test: MNISTSet, backend: any Backend
    ) throws -> String {
        let x = test.images(image..<(image + 1))
        let a = try network.trace(x)
        let b = try reference.trace(x)
        for (la, lb) in zip(a, b) where !Comparison(la.output.scalars, lb.output.scalars).isBitwiseEqual {
            return "\(la.layer) (image \(image))"
        }
        if path == "fused" {
            let fused = try network.predict(x)
            if let last = b.last, !Comparison(fused.scalars, last.output.scalars).isBitwiseEqual {
                return "fused kernel \(backend.kernelName(for: .fusedForward) ?? "pass") (image \(image)); layers agree"
            }
        }
        return "none at batch 1 (image \(image))"
    }
}
