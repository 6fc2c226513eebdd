// `scratchnet bench`: per device, MNIST inference throughput per batch size (predictions only, and with
// all probabilities downloaded), best of N after a warm-up with the spread; time to first result with cold
// and warm caches and peak memory, both measured in child processes (each a real process start); and, with
// --gemm, SGEMM GFLOP/s. Tests/Benchmarks/bench_vs_numpy.py runs this, NumPy and CLBlast in the same run and
// prints the ratios.

import ArgumentParser
import Foundation
import ScratchNet
import ScratchNetIO

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark MNIST inference (images/s per batch size), start-up, memory and SGEMM on each device.")

    @OptionGroup var deviceList: DeviceListOptions
    @OptionGroup var weightsOptions: WeightsOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Comma-separated batch sizes.")
    var batchSizes: String = "1,100,10000"

    @Option(parsing: .unconditional, help: "Timed repetitions per measurement (after one warm-up); the best is reported with the spread.")
    var repeats: Int = 5

    @Flag(help: "Skip the child-process measurements (time to first result, peak memory).")
    var noStartup = false

    @Flag(help: "Also measure SGEMM GFLOP/s (square sizes and the MNIST layer shapes).")
    var gemm = false

    @Option(help: "Square SGEMM sizes for --gemm.")
    var gemmSizes: String = "128,256,512,1024,2048"

    @Flag(help: "Only SGEMM (implies --gemm; no MNIST inference).")
    var gemmOnly = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    struct Spread: Codable {
        var best: Double
        var median: Double
        var worst: Double

        init(_ samples: [Double]) {
            let s = samples.sorted()
            best = s.last ?? 0
            median = s.isEmpty ? 0 : s[s.count / 2]
            worst = s.first ?? 0
        }
    }

    struct Throughput: Codable {
        var device: String
        var batchSize: Int
        /// images/s, predictions only (what `infer` does).
        var predictions: Spread
        /// images/s with every probability downloaded (what `parity` does, and the book's predict()).
        var probabilities: Spread
        var accuracy: Double
    }

    struct Startup: Codable {
        var device: String
        var coldMs: Double
        var warmMs: Double
        var coldProcessMs: Double
        var warmProcessMs: Double
        var peakRSSMiB: Double
    }

    struct GEMMResult: Codable {
        var device: String
        var m: Int
        var k: Int
        var n: Int
        var gflops: Spread
    }

    struct Report: Codable {
        var images: Int
        var repeats: Int
        var throughput: [Throughput]
        var startup: [Startup]
        var gemm: [GEMMResult]
    }

    func validate() throws {
        guard repeats > 0 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        let sizes = try parseSizes(batchSizes, flag: "--batch-sizes", example: "1,100,10000")
        let squares = try parseSizes(gemmSizes, flag: "--gemm-sizes", example: "256,512,1024")
        let backends = try deviceList.backends()
        var throughput: [Throughput] = []
        var startup: [Startup] = []
        var imageCount = 0
        if !gemmOnly {
            let weights = try weightsOptions.load()
            let test = try dataOptions.testSet()
            imageCount = test.count
            for backend in backends {
                let network = try Network(weights: weights, activation: weightsOptions.activation, backend: backend)
                for size in sizes {
                    var correct = 0
                    let predictions = try samples { () throws -> Double in
                        let t0 = now()
                        let p = try network.classify(bytes: test.images, count: test.count, batchSize: size)
                        let rate = Double(test.count) / (now() - t0)
                        correct = zip(p, test.labels).filter { $0 == Int($1) }.count
                        return rate
                    }
                    let probabilities = try samples { () throws -> Double in
                        let t0 = now()
                        _ = try network.infer(bytes: test.images, count: test.count, batchSize: size)
                        return Double(test.count) / (now() - t0)
                    }
                    throughput.append(Throughput(
                        device: backend.device.id, batchSize: size, predictions: Spread(predictions),
                        probabilities: Spread(probabilities), accuracy: Double(correct) / Double(max(test.count, 1))))
                    if !json {
                        Console.error("bench: \(backend.device.id) batch \(size): \(format(Spread(predictions).best, 0)) images/s")
                    }
                }
            }
            if !noStartup {
                for backend in backends { startup.append(try measureStartup(device: backend.device.id)) }
            }
        }
        var gemmResults: [GEMMResult] = []
        if gemm || gemmOnly {
            let shapes = squares.map { ($0, $0, $0) } + [(10_000, 784, 50), (10_000, 50, 100), (100, 784, 50)]
            for backend in backends {
                for (m, k, n) in shapes {
                    let result = try measureGEMM(backend, m: m, k: k, n: n)
                    gemmResults.append(result)
                    if !json {
                        Console.error("bench: \(backend.device.id) sgemm \(m)x\(k)x\(n): \(format(result.gflops.best)) GFLOP/s")
                    }
                }
            }
        }
        let report = Report(images: imageCount, repeats: repeats, throughput: throughput, startup: startup, gemm: gemmResults)
        if json { try printJSON(report); return }
        printTables(report)
    }

    /// One warm-up, then `repeats` timed samples.
    private func samples(_ body: () throws -> Double) throws -> [Double] {
        _ = try body()
        return try (0..<repeats).map { _ in try body() }
    }

    private func printTables(_ report: Report) {
        if !report.throughput.isEmpty {
            print("MNIST inference, \(report.images) test images, images/s, best of \(repeats) after a warm-up (median, worst)")
            var table = Table("device", "batch", "predictions", "median", "worst", "with probabilities", "accuracy")
            for t in report.throughput {
                table.add(
                    t.device, "\(t.batchSize)", format(t.predictions.best, 0), format(t.predictions.median, 0),
                    format(t.predictions.worst, 0), format(t.probabilities.best, 0), String(format: "%.4f", t.accuracy))
            }
            print(table.render())
        }
        if !report.startup.isEmpty {
            print("\nTime to first result (device setup + kernel build + first batch of 100) and peak memory, in fresh processes:")
            var st = Table("device", "cold ms", "warm ms", "cold process ms", "warm process ms", "infer peak RSS MiB")
            for s in report.startup {
                st.add(s.device, format(s.coldMs), format(s.warmMs), format(s.coldProcessMs), format(s.warmProcessMs), format(s.peakRSSMiB))
            }
            print(st.render())
            print("cold: empty caches (POCL_CACHE_DIR, XDG_CACHE_HOME); warm: the same caches again. Process ms include loading weights and data.")
        }
        if !report.gemm.isEmpty {
            print("\nSGEMM C (M,N) = A (M,K) · B (K,N), float32, GFLOP/s, best of \(repeats) (median, worst)")
            var gt = Table("device", "M x K x N", "GFLOP/s", "median", "worst")
            for g in report.gemm {
                gt.add(g.device, "\(g.m)x\(g.k)x\(g.n)", format(g.gflops.best), format(g.gflops.median), format(g.gflops.worst))
            }
            print(gt.render())
        }
    }

    /// SGEMM on one backend: enough repetitions per sample to last ~0.1 s, synchronised by one read.
    private func measureGEMM(_ backend: any Backend, m: Int, k: Int, n: Int) throws -> GEMMResult {
        var rng = SplitMix64(seed: UInt64(m * 31 + k * 7 + n))
        let a = try backend.upload(Tensor(shape: [m, k], scalars: (0..<(m * k)).map { _ in rng.nextFloat(in: -1...1) }))
        let b = try backend.upload(Tensor(shape: [k, n], scalars: (0..<(k * n)).map { _ in rng.nextFloat(in: -1...1) }))
        let c = try backend.makeMatrix(rows: m, cols: n)
        var host = [Float](repeating: 0, count: m * n)
        func timed(_ reps: Int) throws -> Double {
            let t0 = now()
            for _ in 0..<reps { try backend.matmul(a, b, into: c) }
            try host.withUnsafeMutableBufferPointer { try backend.read(c, into: $0) }
            return now() - t0
        }
        let once = try timed(1)  // warm-up (packing, kernel compilation for this shape)
        let reps = max(1, min(1000, Int(0.1 / max(once, 1e-6))))
        let flops = 2 * Double(m) * Double(k) * Double(n)
        let rates = try (0..<repeats).map { _ in flops * Double(reps) / (try timed(reps)) / 1e9 }
        return GEMMResult(device: backend.device.id, m: m, k: k, n: n, gflops: Spread(rates))
    }

    /// Runs `scratchnet first-result` twice in child processes sharing fresh cache folders (cold, then warm),
    /// and `scratchnet infer --json` once for its peak RSS.
    private func measureStartup(device: String) throws -> Startup {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: cache.appendingPathComponent("pocl"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: cache) }
        var env = ProcessInfo.processInfo.environment
        env["POCL_CACHE_DIR"] = cache.appendingPathComponent("pocl").path
        env["XDG_CACHE_HOME"] = cache.path
        var common = ["--device", device, "--activation", weightsOptions.activation.rawValue]
        if let w = weightsOptions.weights { common += ["--weights", w] }
        if let d = dataOptions.data { common += ["--data", d] }
        let cold = try runChild(["first-result"] + common, env)
        let warm = try runChild(["first-result"] + common, env)
        let infer = try runChild(["infer", "--json"] + common, env)
        let rss = (try? JSONSerialization.jsonObject(with: Data(infer.output.utf8)) as? [String: Any])?["peakRSSMiB"] as? Double
        return Startup(
            device: device, coldMs: Double(cold.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? .nan,
            warmMs: Double(warm.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? .nan,
            coldProcessMs: cold.processMs, warmProcessMs: warm.processMs, peakRSSMiB: rss ?? .nan)
    }

    private func runChild(_ args: [String], _ env: [String: String]) throws -> (output: String, processMs: Double) {
        let process = Process()
        process.executableURL = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = args
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        let t0 = now()
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let processMs = (now() - t0) * 1000
        guard process.terminationStatus == 0 else {
            throw CLIError("bench: `scratchnet \(args.joined(separator: " "))` failed (status \(process.terminationStatus))")
        }
        return (String(decoding: data, as: UTF8.self), processMs)
    }
}

/// Hidden helper for `bench`: loads weights and data, then times device setup, kernel build and the first
/// batch of 100 images; prints milliseconds.
struct FirstResultCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "first-result", abstract: "Time to the first batch result (used by bench).", shouldDisplay: false)

    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var weightsOptions: WeightsOptions
    @OptionGroup var dataOptions: DataOptions

    func run() throws {
        let weights = try weightsOptions.load()
        let test = try dataOptions.testSet()
        let t0 = now()
        let backend = try deviceOptions.select()
        let network = try Network(weights: weights, activation: weightsOptions.activation, backend: backend)
        _ = try network.classify(bytes: test.images, count: min(100, test.count), batchSize: 100)
        print(format((now() - t0) * 1000, 2))
    }
}
