// Tests of Downloads: the success path against a loopback HTTP server (python3 -m http.server style, started by
// the test on a free port), SHA-256 mismatch (error, nothing left behind), HTTP errors, re-download of an invalid
// file, unreachable servers failing fast with an actionable message, the SCRATCHNET_MIRROR override, and the
// book items' digests against the shared copies.

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

/// A throwaway HTTP server for one folder, bound to 127.0.0.1 on a port the OS picks.
final class LoopbackServer {
    let process = Process()
    let input = Pipe()
    let port: Int

    static var python: String? {
        ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
            ?? ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":")
            .map { "\($0)/python3" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    init(serving folder: URL) throws {
        let script = """
            import http.server, os, sys, threading
            os.chdir(sys.argv[1])
            # Exit when the test closes stdin (or dies): signals may be blocked in processes the test runner starts.
            threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
            class Quiet(http.server.SimpleHTTPRequestHandler):
                def log_message(self, *args): pass
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """
        port = try Self.start(process, input: input, script: script, arguments: [folder.path])
    }

    /// Starts `python3 -c script arguments...`, which must print its port on the first line and exit when
    /// stdin closes; returns the port.
    static func start(_ process: Process, input: Pipe, script: String, arguments: [String]) throws -> Int {
        process.executableURL = URL(fileURLWithPath: try #require(python))
        process.arguments = ["-c", script] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardInput = input
        process.standardError = FileHandle.nullDevice
        try process.run()
        // First line: the port.
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        guard let text = String(data: line, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), let port = Int(text) else {
            try? input.fileHandleForWriting.close()
            kill(process.processIdentifier, SIGKILL)
            throw LoadError("loopback server", "did not report its port")
        }
        return port
    }

    func url(_ path: String) -> URL { URL(string: "http://127.0.0.1:\(port)/\(path)") ?? URL(fileURLWithPath: "/") }

    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// Collects log lines from `fetch`.
final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func add(_ line: String) { lock.lock(); storage.append(line); lock.unlock() }
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return storage }
}

@Suite(.serialized) struct DownloadsTests {
    static func temporaryFolder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-dl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test(.enabled(if: LoopbackServer.python != nil)) func loopbackSuccessMismatchAndHTTPError() async throws {
        let server = try LoopbackServer(serving: Fixtures.directory)
        defer { server.stop() }
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let name = "tiny-labels.idx1.gz"
        let content = try Fixtures.data(name)
        let good = Downloads.Item(name: name, url: server.url(name), sha256: SHA256.hex(content).uppercased(), subfolder: "mnist")
        let log = LogLines()

        // Success: the file arrives, verified, under its final name only.
        try await Downloads.fetch([good], into: dir, log: log.add)
        let destination = dir.appendingPathComponent("mnist").appendingPathComponent(name)
        #expect(try Data(contentsOf: destination) == content)
        #expect(try FileManager.default.contentsOfDirectory(atPath: destination.deletingLastPathComponent().path) == [name])
        #expect(log.lines.contains { $0.contains("downloaded") && $0.contains("SHA-256 ok") })

        // Present and valid: not downloaded again.
        let log2 = LogLines()
        try await Downloads.fetch([good], into: dir, log: log2.add)
        #expect(log2.lines.count == 1 && log2.lines[0].contains("present, SHA-256 ok"))

        // Present but invalid: replaced.
        try Data("garbage".utf8).write(to: destination)
        try await Downloads.fetch([good], into: dir, log: { _ in })
        #expect(try Data(contentsOf: destination) == content)

        // SHA-256 mismatch: an error, and nothing left behind.
        let otherName = "tiny-images.idx3.gz"
        let wrong = Downloads.Item(name: otherName, url: server.url(otherName), sha256: String(repeating: "0", count: 64), subfolder: "mnist")
        let mismatch = await fetchError([wrong], into: dir)
        #expect(mismatch?.description.contains("SHA-256") == true)
        #expect(mismatch?.description.contains(otherName) == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: destination.deletingLastPathComponent().path) == [name])

        // HTTP 404, with a second good item still fetched, and an error naming the failure.
        let missing = Downloads.Item(name: "nope.gz", url: server.url("nope.gz"), sha256: String(repeating: "1", count: 64), subfolder: "other")
        let alsoGood = Downloads.Item(name: otherName, url: server.url(otherName), sha256: SHA256.hex(try Fixtures.data(otherName)), subfolder: "other")
        let notFound = await fetchError([missing, alsoGood], into: dir)
        #expect(notFound?.description.contains("404") == true)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("other/\(otherName)").path))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("other/nope.gz").path))
    }

    @Test(.enabled(if: LoopbackServer.python != nil && FileManager.default.fileExists(atPath: SharedData.mnistDirectory.path)))
    func mirrorOverrideFetchesTheRealFilesWithTheirDigests() async throws {
        // The shared MNIST folder served as a mirror: the book items' SHA-256 values must accept those files.
        let server = try LoopbackServer(serving: SharedData.mnistDirectory)
        defer { server.stop() }
        let items = Downloads.book(environment: ["SCRATCHNET_MIRROR": server.url("").absoluteString])
        #expect(items.count == 5)
        #expect(items.allSatisfy { $0.url.absoluteString == server.url($0.name).absoluteString })
        let present = items.filter { FileManager.default.fileExists(atPath: SharedData.mnistDirectory.appendingPathComponent($0.name).path) }
        #expect(!present.isEmpty)
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await Downloads.fetch(present, into: dir, log: { _ in })
        let set = try MNIST.load(directory: dir.appendingPathComponent("mnist"), split: .test)
        #expect(set.count == 10_000)
    }

    @Test func bookItems() throws {
        let items = Downloads.book(environment: [:])
        #expect(items.map(\.name) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                                      "t10k-labels-idx1-ubyte.gz", "sample_weight.pkl"])
        #expect(items.allSatisfy { $0.sha256.count == 64 && $0.url.scheme == "https" })
        #expect(items[0].url.absoluteString == "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz")
        #expect(items[4].url.absoluteString == "https://github.com/oreilly-japan/deep-learning-from-scratch/raw/master/ch03/sample_weight.pkl")
        // Every shared copy that exists matches its item.
        let shared = URL(fileURLWithPath: "/work/shared")
        for item in items {
            let file = shared.appendingPathComponent(item.subfolder).appendingPathComponent(item.name)
            guard let data = try? Data(contentsOf: file) else { continue }
            #expect(item.accepts(SHA256.hex(data)), "\(item.name)")
        }
    }

    @Test func unreachableServerFailsFastWithAFix() async throws {
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Port 1 on loopback refuses connections at once; a .invalid name never resolves.
        let refused = try #require(URL(string: "http://127.0.0.1:1/t10k-labels-idx1-ubyte.gz"))
        let unresolvable = try #require(URL(string: "http://scratchnet-test.invalid/sample_weight.pkl"))
        let items = [
            Downloads.Item(name: "t10k-labels-idx1-ubyte.gz", url: refused, sha256: String(repeating: "a", count: 64), subfolder: "mnist"),
            Downloads.Item(name: "sample_weight.pkl", url: unresolvable, sha256: String(repeating: "b", count: 64), subfolder: "book"),
        ]
        let start = Date()
        let error = await fetchError(items, into: dir)
        #expect(Date().timeIntervalSince(start) < 60)
        let message = error?.description ?? ""
        #expect(message.contains("t10k-labels-idx1-ubyte.gz") && message.contains("sample_weight.pkl"))
        #expect(message.contains("MNIST_DIR"))
        #expect(message.contains(dir.appendingPathComponent("mnist").path), "says where to place the file")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("mnist/t10k-labels-idx1-ubyte.gz").path))
    }

    func fetchError(_ items: [Downloads.Item], into dir: URL) async -> LoadError? {
        do {
            try await Downloads.fetch(items, into: dir, log: { _ in })
            Issue.record("fetch should have failed")
            return nil
        } catch {
            return error
        }
    }
}
