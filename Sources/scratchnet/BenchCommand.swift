// `scratchnet bench`: MNIST inference throughput per device and batch size (best of N after a warm-up,
// with the spread), and time to first result with a cold and a warm OpenCL compiler cache (measured in
// child processes, so each start is a real process start). Tests/Benchmarks/bench_vs_numpy.py runs this
// and the book's NumPy code in the same run and prints the ratios.

import ArgumentParser
import Foundation
import ScratchNet
import ScratchNetIO

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark MNIST inference (images/s per batch size) and time to first result on each device.")

    @OptionGroup var deviceList: DeviceListOptions
    @OptionGroup var weightsOptions: WeightsOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Comma-separated batch sizes.")
    var batchSizes: String = "1,100,10000"

    @Option(help: "Timed repetitions per batch size (after one warm-up); the best is reported with the spread.")
    var repeats: Int = 5

    @Flag(help: "Skip the time-to-first-result measurement (child processes).")
    var noStartup = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    struct Throughput: Codable {
        var device: String
        var batchSize: Int
        var bestImagesPerSecond: Double
        var worstImagesPerSecond: Double
        var medianImagesPerSecond: Double
        var accuracy: Double
    }

    struct Startup: Codable {
        var device: String
        var coldMs: Double
        var warmMs: Double
        var coldProcessMs: Double
        var warmProcessMs: Double
    }

    struct Report: Codable {
        var images: Int
        var repeats: Int
        var throughput: [Throughput]
        var startup: [Startup]
    }

    func validate() throws {
        guard repeats > 0 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        let sizes = try parseSizes(batchSizes, flag: "--batch-sizes")
        let weights = try weightsOptions.load()
        let test = try dataOptions.testSet()
        let backends = try deviceList.backends()
        var throughput: [Throughput] = []
        for backend in backends {
            let network = try Network(weights: weights, activation: weightsOptions.activation, backend: backend)
            for size in sizes {
                var rates: [Double] = []
                var accuracy = 0.0
                for rep in 0...repeats {
                    let t0 = now()
                    let result = try network.infer(bytes: test.images, count: test.count, batchSize: size)
                    let rate = Double(test.count) / (now() - t0)
                    accuracy = result.accuracy(labels: test.labels)
                    if rep > 0 { rates.append(rate) }  // rep 0 is the warm-up
                }
                rates.sort()
                throughput.append(Throughput(
                    device: backend.device.id, batchSize: size, bestImagesPerSecond: rates.last ?? 0,
                    worstImagesPerSecond: rates.first ?? 0, medianImagesPerSecond: rates[rates.count / 2],
                    accuracy: accuracy))
                if !json {
                    Console.error("bench: \(backend.device.id) batch \(size): \(format(rates.last ?? 0, 0)) images/s")
                }
            }
        }
        var startup: [Startup] = []
        if !noStartup {
            for backend in backends {
                startup.append(try measureStartup(device: backend.device.id))
            }
        }
        let report = Report(images: test.count, repeats: repeats, throughput: throughput, startup: startup)
        if json { try printJSON(report); return }

        print("MNIST inference, \(test.count) test images, best of \(repeats) after a warm-up (spread: worst..best)")
        var table = Table("device", "batch", "images/s (best)", "median", "worst", "accuracy")
        for t in throughput {
            table.add(
                t.device, "\(t.batchSize)", format(t.bestImagesPerSecond, 0), format(t.medianImagesPerSecond, 0),
                format(t.worstImagesPerSecond, 0), String(format: "%.4f", t.accuracy))
        }
        print(table.render())
        if !startup.isEmpty {
            print("\nTime to first result (device setup + kernel build + first batch of 100), in a fresh process:")
            var st = Table("device", "cold ms", "warm ms", "cold process ms", "warm process ms")
            for s in startup {
                st.add(s.device, format(s.coldMs), format(s.warmMs), format(s.coldProcessMs), format(s.warmProcessMs))
            }
            print(st.render())
            print("cold: empty OpenCL compiler cache (POCL_CACHE_DIR); warm: the same cache again. Process ms include loading weights and data.")
        }
    }

    /// Runs `scratchnet first-result` twice in child processes sharing a fresh compiler cache folder.
    private func measureStartup(device: String) throws -> Startup {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: cache) }
        var env = ProcessInfo.processInfo.environment
        env["POCL_CACHE_DIR"] = cache.path
        var args = ["first-result", "--device", device, "--activation", weightsOptions.activation.rawValue]
        if let w = weightsOptions.weights { args += ["--weights", w] }
        if let d = dataOptions.data { args += ["--data", d] }
        let cold = try runChild(args, env)
        let warm = try runChild(args, env)
        return Startup(device: device, coldMs: cold.ms, warmMs: warm.ms, coldProcessMs: cold.processMs, warmProcessMs: warm.processMs)
    }

    private func runChild(_ args: [String], _ env: [String: String]) throws -> (ms: Double, processMs: Double) {
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
        guard process.terminationStatus == 0,
              let ms = Double(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw CLIError("bench: `scratchnet \(args.joined(separator: " "))` failed (status \(process.terminationStatus))")
        }
        return (ms, processMs)
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
        let batch = test.images(0..<min(100, test.count))
        let t0 = now()
        let backend = try deviceOptions.select()
        let network = try Network(weights: weights, activation: weightsOptions.activation, backend: backend)
        _ = try network.predict(batch)
        print(format((now() - t0) * 1000, 2))
    }
}
