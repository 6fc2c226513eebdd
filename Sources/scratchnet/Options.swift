// Option groups shared by the subcommands (device, data, weights, output) and how each resolves its
// default: flag, then environment variable, then ../shared (as on the project's machines), else an error
// that says which flag to pass or to run `scratchnet download`.

import ArgumentParser
import Foundation
import ScratchNet
import ScratchNetIO
import ScratchNetOpenCL

struct DeviceOptions: ParsableArguments {
    @Option(help: "auto (first OpenCL GPU, else the CPU path), cpu, gpu, opencl or opencl:N. Default: $SCRATCHNET_DEVICE, else auto.")
    var device: String?

    @Flag(help: "Use the OpenCL device without its self-check (every kernel the job runs, bitwise against the CPU path). For deliberate runs on a device that fails it.")
    var unchecked = false

    /// The requested backend, self-checked for `job`; prints auto's fallback reason and any notes as one
    /// line each on stderr.
    func select(job: SelfCheckJob = .inference) throws -> any Backend {
        let spec = try DeviceSpec.resolve(flag: device, environment: ProcessInfo.processInfo.environment)
        return try selectAndNote(spec, job: job, checked: !unchecked)
    }
}

/// Selects `spec` and prints the selection's fallback reason and notes as `note:` lines on stderr.
func selectAndNote(_ spec: DeviceSpec, job: SelfCheckJob, checked: Bool) throws -> any Backend {
    let selection = try DeviceSelector.select(spec, job: job, checked: checked)
    if let why = selection.fallbackReason { Console.error("note: \(why)") }
    for note in selection.notes { Console.error("note: \(note)") }
    return selection.backend
}

struct DataOptions: ParsableArguments {
    @Option(help: "Folder with the MNIST IDX files (t10k-images-idx3-ubyte[.gz], ...). Default: $MNIST_DIR, else ../shared/mnist, else the test set in the box (Data/mnist).")
    var data: String?

    func directory() throws -> URL {
        if let data { return URL(fileURLWithPath: data) }
        if let dir = MNIST.defaultDirectory(environment: ProcessInfo.processInfo.environment) { return dir }
        throw CLIError("no MNIST data found: pass --data DIR, set MNIST_DIR, or run `scratchnet download` first")
    }

    func testSet() throws -> MNISTSet {
        try MNIST.load(directory: directory(), split: .test)
    }
}

struct WeightsOptions: ParsableArguments {
    @Option(help: "Weights file: the book's sample_weight.pkl, .safetensors, .npz. Default: $SCRATCHNET_WEIGHTS, else ../shared/book/sample_weight.pkl, else the copy in the box (Data/book).")
    var weights: String?

    @Option(name: .customLong("activation"), help: "Hidden-layer activation: sigmoid or relu. Default: what a file written by `scratchnet train` records, else sigmoid (the book's).")
    var activationOption: Activation?

    /// --activation, else the "activation" a safetensors file from `scratchnet train` records, else sigmoid.
    var activation: Activation {
        if let activationOption { return activationOption }
        if let url = try? url(), let name = WeightsFile.metadata(url)["activation"], let act = Activation(rawValue: name) {
            return act
        }
        return .sigmoid
    }

    func url() throws -> URL {
        if let weights { return URL(fileURLWithPath: weights) }
        if let url = Downloads.defaultWeights(environment: ProcessInfo.processInfo.environment) { return url }
        throw CLIError("no weights found: pass --weights FILE, set SCRATCHNET_WEIGHTS, or run `scratchnet download` first")
    }

    func load() throws -> [String: Tensor] {
        try WeightsFile.load(url())
    }
}

extension Activation: ExpressibleByArgument {}

/// A comma-separated list of devices ("cpu,opencl:0"); empty = the CPU path and every OpenCL device.
struct DeviceListOptions: ParsableArguments {
    @Option(help: "Comma-separated devices to run (e.g. cpu,opencl:0). Default: cpu and every OpenCL device.")
    var devices: String?

    /// The backends, self-checked for `job` unless `checked` is false; `quiet` drops the selection notes.
    func backends(job: SelfCheckJob = .inference, checked: Bool = true, quiet: Bool = false) throws -> [any Backend] {
        var specs: [DeviceSpec] = []
        if let devices {
            for item in devices.split(separator: ",") {
                specs.append(try DeviceSpec(parsing: String(item)))
            }
        } else {
            specs = [.cpu]
            let found = OpenCLDevices.enumerate()
            if found.devices.isEmpty, let why = found.reason { Console.error("note: \(why)") }
            specs += found.devices.map { .opencl($0.index) }
        }
        var backends: [any Backend] = []
        for spec in specs {
            backends.append(
                quiet
                    ? try DeviceSelector.select(spec, job: job, checked: checked).backend
                    : try selectAndNote(spec, job: job, checked: checked))
        }
        return backends
    }
}

/// Parses "1,37,100" into positive integers, naming the flag on error.
func parseSizes(_ text: String, flag: String, example: String) throws -> [Int] {
    let sizes = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw CLIError("\(flag) '\(text)': every size must be a whole number of at least 1, separated by commas, e.g. \(example)")
    }
    return sizes.compactMap { $0 }
}

/// Fixed-width text tables for the human-readable output.
struct Table {
    var header: [String]
    var rows: [[String]] = []

    init(_ header: String...) { self.header = header }

    mutating func add(_ cells: String...) { rows.append(cells) }

    func render() -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, c) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        return ([line(header), line(widths.map { String(repeating: "-", count: $0) })] + rows.map(line))
            .joined(separator: "\n")
    }
}

/// Monotonic seconds.
func now() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}

func format(_ value: Double, _ digits: Int = 1) -> String {
    String(format: "%.\(digits)f", value)
}

/// Writes a value as pretty JSON on stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Fails before any work starts when `path` (the value of `option`) cannot be written: a folder by that name, a
/// missing or unwritable folder, or a read-only file. The run would otherwise be lost at its end.
func checkOutputPath(_ path: String, option: String) throws {
    let fm = FileManager.default
    let url = URL(fileURLWithPath: path)
    var isDir: ObjCBool = false
    if fm.fileExists(atPath: url.path, isDirectory: &isDir) {
        if isDir.boolValue { throw CLIError("\(option) \(path) is a folder; give a file name in it") }
        guard fm.isWritableFile(atPath: url.path) else {
            throw CLIError("\(option) \(path) cannot be written (permission denied); choose another file or fix its permissions")
        }
        return
    }
    let folder = url.deletingLastPathComponent()
    guard fm.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
        throw CLIError("\(option) \(path): the folder \(folder.path) does not exist; create it or choose another path")
    }
    guard fm.isWritableFile(atPath: folder.path) else {
        throw CLIError("\(option) \(path): the folder \(folder.path) cannot be written (permission denied); choose another path")
    }
}
