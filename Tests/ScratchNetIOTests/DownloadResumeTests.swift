// Interrupted downloads: bytes are kept in `.NAME.partial` as they arrive, the next run resumes with an HTTP
// Range request (206), restarts when the server ignores the Range (200), keeps a partial file that is already
// whole (416), and never leaves anything under the final name unless its SHA-256 verified.

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

/// A loopback HTTP server for one file with Range support, whose behaviour is chosen per test:
/// `cut` sends half of the first full response and drops the connection; `norange` ignores Range headers.
final class RangeServer {
    let process = Process()
    let input = Pipe()
    let port: Int

    init(serving file: URL, mode: String) throws {
        let script = """
            import http.server, os, sys, threading
            path, mode = sys.argv[1], sys.argv[2]
            threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
            body = open(path, 'rb').read()
            state = {'cut': mode == 'cut'}
            class H(http.server.BaseHTTPRequestHandler):
                protocol_version = 'HTTP/1.1'
                def log_message(self, *a): pass
                def do_GET(self):
                    rng = self.headers.get('Range')
                    if rng and mode != 'norange':
                        start = int(rng.split('=')[1].split('-')[0])
                        if start >= len(body):
                            self.send_response(416); self.send_header('Content-Length', '0'); self.end_headers(); return
                        part = body[start:]
                        self.send_response(206)
                        self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, len(body) - 1, len(body)))
                        self.send_header('Content-Length', str(len(part))); self.end_headers()
                        self.wfile.write(part); return
                    self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()
                    if state['cut']:
                        state['cut'] = False
                        self.wfile.write(body[:len(body) // 2]); self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2); return
                    self.wfile.write(body)
            server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """
        port = try LoopbackServer.start(process, input: input, script: script, arguments: [file.path, mode])
    }

    func url(_ name: String) -> URL { URL(string: "http://127.0.0.1:\(port)/\(name)") ?? URL(fileURLWithPath: "/") }

    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

@Suite(.serialized, .enabled(if: LoopbackServer.python != nil))
struct DownloadResumeTests {
    let name = "tiny-images.idx3.gz"

    func setUp() throws -> (content: Data, file: URL, dir: URL, item: (URL) -> Downloads.Item) {
        let content = try Fixtures.data(name)
        let dir = try DownloadsTests.temporaryFolder()
        let file = dir.appendingPathComponent("served.bin")
        try content.write(to: file)
        let digest = SHA256.hex(content)
        let name = self.name
        return (content, file, dir, { url in Downloads.Item(name: name, url: url, sha256: digest, subfolder: "mnist") })
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

    func files(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("mnist").path)) ?? []).sorted()
    }

    @Test("a dropped connection keeps the bytes; the next run resumes with a Range request and verifies")
    func resumes() async throws {
        let (content, file, dir, item) = try setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try RangeServer(serving: file, mode: "cut")
        defer { server.stop() }
        let first = await fetchError([item(server.url(name))], into: dir)
        #expect(first != nil)
        // Nothing under the final name; half the bytes kept for the next run.
        #expect(files(dir) == [".\(name).partial"])
        let partial = try Data(contentsOf: dir.appendingPathComponent("mnist/.\(name).partial"))
        #expect(partial.count > 0 && partial.count < content.count && partial == content.prefix(partial.count))

        let log = LogLines()
        try await Downloads.fetch([item(server.url(name))], into: dir, log: log.add)
        #expect(log.lines.contains { $0.contains("resuming after \(partial.count) bytes") })
        #expect(try Data(contentsOf: dir.appendingPathComponent("mnist/\(name)")) == content)
        #expect(files(dir) == [name])
    }

    @Test("a server that ignores Range restarts the download from the start")
    func restarts() async throws {
        let (content, file, dir, item) = try setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try RangeServer(serving: file, mode: "norange")
        defer { server.stop() }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("mnist"), withIntermediateDirectories: true)
        try Data("stale garbage from an old run".utf8).write(to: dir.appendingPathComponent("mnist/.\(name).partial"))
        try await Downloads.fetch([item(server.url(name))], into: dir, log: { _ in })
        #expect(try Data(contentsOf: dir.appendingPathComponent("mnist/\(name)")) == content)
        #expect(files(dir) == [name])
    }

    @Test("a whole partial file (416) is verified and kept; a wrong one is discarded and fetched again")
    func wholePartial() async throws {
        let (content, file, dir, item) = try setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try RangeServer(serving: file, mode: "range")
        defer { server.stop() }
        let folder = dir.appendingPathComponent("mnist")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try content.write(to: folder.appendingPathComponent(".\(name).partial"))
        try await Downloads.fetch([item(server.url(name))], into: dir, log: { _ in })
        #expect(try Data(contentsOf: folder.appendingPathComponent(name)) == content)
        #expect(files(dir) == [name])

        // Same length but wrong bytes: 416, fails verification, restarts from scratch.
        try FileManager.default.removeItem(at: folder.appendingPathComponent(name))
        try Data(repeating: 7, count: content.count).write(to: folder.appendingPathComponent(".\(name).partial"))
        try await Downloads.fetch([item(server.url(name))], into: dir, log: { _ in })
        #expect(try Data(contentsOf: folder.appendingPathComponent(name)) == content)
        #expect(files(dir) == [name])
    }

    @Test("resumed bytes that do not verify are discarded: an error, nothing under the final name")
    func resumedMismatch() async throws {
        let (content, file, dir, item) = try setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try RangeServer(serving: file, mode: "range")
        defer { server.stop() }
        let folder = dir.appendingPathComponent("mnist")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // A partial file whose bytes differ from the server's: the resumed whole fails SHA-256.
        try Data(repeating: 1, count: content.count / 3).write(to: folder.appendingPathComponent(".\(name).partial"))
        let error = await fetchError([item(server.url(name))], into: dir)
        #expect(error?.description.contains("SHA-256") == true)
        #expect(files(dir).isEmpty)
    }
}
