// Shared fixtures for the end-to-end tests: the book's weights and the MNIST test set from ../shared (or
// $SCRATCHNET_WEIGHTS / $MNIST_DIR), the OpenCL device under test, and a runner for the `scratchnet` binary.

import Foundation
import ScratchNet
import ScratchNetIO
import ScratchNetOpenCL
import Testing

enum Book {
    static let environment = ProcessInfo.processInfo.environment

    static func weights() throws -> [String: Tensor] {
        let url = try #require(
            Downloads.defaultWeights(environment: environment),
            "the book's sample_weight.pkl was not found: set SCRATCHNET_WEIGHTS or put it in ../shared/book")
        return try WeightsFile.load(url)
    }

    static func testSet() throws -> MNISTSet {
        let dir = try #require(
            MNIST.defaultDirectory(environment: environment),
            "MNIST was not found: set MNIST_DIR or put the IDX files in ../shared/mnist")
        return try MNIST.load(directory: dir, split: .test)
    }

    /// The first OpenCL device. Fails (never skips) when there is none, unless SCRATCHNET_ALLOW_NO_OPENCL=1.
    static func openCLBackend() throws -> (any Backend)? {
        let found = OpenCLDevices.enumerate()
        guard let first = found.devices.first else {
            if environment["SCRATCHNET_ALLOW_NO_OPENCL"] == "1" { return nil }
            Issue.record("no OpenCL device: \(found.reason ?? "?"); install pocl-opencl-icd (or set SCRATCHNET_ALLOW_NO_OPENCL=1)")
            return nil
        }
        return try DeviceSelector.select(.opencl(first.index)).backend
    }
}

/// A new empty folder under the system's temporary folder, named `scratchnet-<tag>-<UUID>`; the caller removes it.
func temporaryDirectory(_ tag: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// Runs the `scratchnet` binary built next to the test bundle.
enum CLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static var binary: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("scratchnet")
    }

    /// Runs the binary with `extra` added to this process's environment, the variables in `removing` taken out,
    /// and `directory` (if given) as its current directory.
    static func run(
        _ arguments: [String], environment extra: [String: String] = [:], removing: [String] = [],
        directory: URL? = nil
    ) throws -> Result {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        for k in removing { env[k] = nil }
        process.environment = env
        if let directory { process.currentDirectoryURL = directory }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes concurrently so a chatty child cannot block on a full pipe.
        let errData = LockedData()
        let reader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errData.isSet { Thread.sleep(forTimeInterval: 0.005) }
        return Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.get(), as: UTF8.self))
    }

    /// Runs and decodes JSON from stdout.
    static func json(_ arguments: [String], environment: [String: String] = [:]) throws -> [String: Any] {
        let r = try run(arguments, environment: environment)
        #expect(r.status == 0, "scratchnet \(arguments.joined(separator: " ")) failed: \(r.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        return try #require(object as? [String: Any])
    }
}

final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var done = false
    func set(_ d: Data) { lock.lock(); data = d; done = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return done }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}

/// An empty folder for OCL_ICD_VENDORS: the ICD loader then finds no OpenCL platform.
func emptyVendorsFolder() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-no-icd-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.path
}
