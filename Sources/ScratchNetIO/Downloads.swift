// Downloads: fetches the MNIST files and the book's sample_weight.pkl, verifying each against a known SHA-256
// before it is renamed into place (so a failed or tampered download never leaves a file under the final name),
// plus the default locations of data and weights. Works offline too: present, valid files are not downloaded
// again, and failures say which file to put where. Bytes are streamed to `.NAME.partial` as they arrive; an
// interrupted download resumes from there with an HTTP Range request (or restarts if the server ignores it).

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Fetching and locating the data ScratchNet needs.
public enum Downloads {
    /// One file to fetch.
    public struct Item: Sendable, Equatable {
        /// The file name, e.g. `t10k-images-idx3-ubyte.gz`.
        public let name: String
        /// Where to download it from.
        public let url: URL
        /// The expected lowercase hex SHA-256 of the file.
        public let sha256: String
        /// Further SHA-256 values that are also accepted (the same content published with other gzip headers).
        public let alsoAccepted: [String]
        /// The folder inside the target directory, e.g. `mnist` or `book`.
        public let subfolder: String

        /// Creates an item; `sha256` and `alsoAccepted` are compared case-insensitively.
        public init(name: String, url: URL, sha256: String, subfolder: String, alsoAccepted: [String] = []) {
            self.name = name
            self.url = url
            self.sha256 = sha256.lowercased()
            self.alsoAccepted = alsoAccepted.map { $0.lowercased() }
            self.subfolder = subfolder
        }

        /// True if `digest` is one of the accepted SHA-256 values.
        public func accepts(_ digest: String) -> Bool {
            digest.lowercased() == sha256 || alsoAccepted.contains(digest.lowercased())
        }
    }

    /// The MNIST mirror of the book's `dataset/mnist.py` (newer revisions of oreilly-japan/deep-learning-from-scratch;
    /// the original http://yann.lecun.com/exdb/mnist/ no longer serves the files).
    public static let mnistMirror = fixedURL("https://ossci-datasets.s3.amazonaws.com/mnist/")
    /// The book's pretrained chapter-3 weights.
    public static let weightsURL = fixedURL("https://github.com/oreilly-japan/deep-learning-from-scratch/raw/master/ch03/sample_weight.pkl")

    /// The four MNIST files and the book's sample_weight.pkl, from their usual locations, or from
    /// `$SCRATCHNET_MIRROR` (a base URL holding all five files) when that is set in the process environment.
    public static let book: [Item] = book(environment: ProcessInfo.processInfo.environment)

    /// The book's files; with `SCRATCHNET_MIRROR` set in `environment`, every item is fetched from
    /// `<mirror>/<name>` instead.
    ///
    /// SHA-256 values: the first of each MNIST file is that of the copies in the project's shared data folder
    /// (`/work/shared/mnist`, gzip headers dated 2021); `alsoAccepted` holds the digest published for the same
    /// file by TensorFlow Datasets and torch.rb (`tensorflow_datasets/url_checksums/mnist.txt`,
    /// ankane/torch.rb `lib/torch/.../mnist.rb`, for the storage.googleapis.com/cvdf-datasets and
    /// ossci-datasets mirrors). train-images-idx3-ubyte.gz is not in the shared folder, so only its published
    /// digest is used (9,912,422 bytes, SHA-256 440fcabf...3609, same sources).
    public static func book(environment: [String: String]) -> [Item] {
        let mirror = environment["SCRATCHNET_MIRROR"].flatMap { $0.isEmpty ? nil : $0 }
        func at(_ base: URL, _ name: String) -> URL {
            if let mirror { return fixedURL(mirror.hasSuffix("/") ? mirror + name : mirror + "/" + name) }
            return base.appendingPathComponent(name)
        }
        let weights: URL
        if let mirror {
            weights = fixedURL(mirror.hasSuffix("/") ? mirror + "sample_weight.pkl" : mirror + "/sample_weight.pkl")
        } else {
            weights = weightsURL
        }
        return [
            Item(name: "train-images-idx3-ubyte.gz", url: at(mnistMirror, "train-images-idx3-ubyte.gz"),
                 sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", subfolder: "mnist"),
            Item(name: "train-labels-idx1-ubyte.gz", url: at(mnistMirror, "train-labels-idx1-ubyte.gz"),
                 sha256: "ec02e7948609e5754d47881c09b8afdd8dfa60600b9e5388c8c54a67069ec772", subfolder: "mnist",
                 alsoAccepted: ["3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"]),
            Item(name: "t10k-images-idx3-ubyte.gz", url: at(mnistMirror, "t10k-images-idx3-ubyte.gz"),
                 sha256: "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b", subfolder: "mnist",
                 alsoAccepted: ["8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"]),
            Item(name: "t10k-labels-idx1-ubyte.gz", url: at(mnistMirror, "t10k-labels-idx1-ubyte.gz"),
                 sha256: "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c", subfolder: "mnist",
                 alsoAccepted: ["f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"]),
            Item(name: "sample_weight.pkl", url: weights,
                 sha256: "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13", subfolder: "book"),
        ]
    }

    /// The largest file `fetch` accepts (MNIST's biggest file is under 10 MB).
    public static let maxDownloadSize = 256 << 20

    /// Fetches every item that is missing from `dir/<subfolder>/<name>` or does not match its SHA-256. Each
    /// download goes to a temporary file in the same folder, is verified, and only then renamed into place; a
    /// failed or mismatching download leaves nothing behind. Progress and results go to `log`, one line each.
    ///
    /// All items are attempted; if any fails, the error lists every failure and what to do (place the file
    /// manually, set `MNIST_DIR`, or set `SCRATCHNET_MIRROR`).
    public static func fetch(_ items: [Item], into dir: URL, log: @Sendable (String) -> Void) async throws(LoadError) {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 30
        configuration.timeoutIntervalForResource = 600
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }

        // Folders this call creates are removed again if a failure leaves them empty.
        let fm = FileManager.default
        let created = ([dir] + Set(items.map(\.subfolder)).sorted().map { dir.appendingPathComponent($0) })
            .filter { !fm.fileExists(atPath: $0.path) }
        var failures: [LoadError] = []
        defer {
            if !failures.isEmpty {
                for folder in created.reversed() where (try? fm.contentsOfDirectory(atPath: folder.path))?.isEmpty == true {
                    try? fm.removeItem(at: folder)
                }
            }
        }
        for item in items {
            do {
                try await fetch(item, into: dir, session: session, log: log)
            } catch {
                log("\(item.name): failed")
                failures.append(error)
            }
        }
        guard !failures.isEmpty else { return }
        if failures.count == 1, let only = failures.first { throw only }
        throw LoadError(dir.path, "\(failures.count) of \(items.count) files could not be fetched: " + failures.map(\.description).joined(separator: "; "))
    }

    private static func fetch(_ item: Item, into dir: URL, session: URLSession, log: @Sendable (String) -> Void) async throws(LoadError) {
        let folder = dir.appendingPathComponent(item.subfolder)
        let destination = folder.appendingPathComponent(item.name)
        let fm = FileManager.default
        if fm.fileExists(atPath: destination.path) {
            let digest = (try? Data(contentsOf: destination)).map(SHA256.hex) ?? "(unreadable)"
            if item.accepts(digest) {
                log("\(item.name): present, SHA-256 ok (\(destination.path))")
                return
            }
            log("\(item.name): present but its SHA-256 is \(digest), expected \(item.sha256); downloading it again")
        }
        let manualFix = "this machine may be offline or the server unreachable: download \(item.url.absoluteString) elsewhere and place it in \(folder.path)"
            + (item.subfolder == "mnist" ? " (or set MNIST_DIR to a folder that has the MNIST files)" : "")
            + ", or set SCRATCHNET_MIRROR to a reachable mirror"
        do {
            try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw LoadError(folder.path, "cannot create the folder (\(error.localizedDescription))", fix: "choose a writable directory")
        }
        let partial = folder.appendingPathComponent(".\(item.name).partial")
        let resumeFrom = (try? fm.attributesOfItem(atPath: partial.path)[.size] as? Int) ?? 0
        log("\(item.name): downloading \(item.url.absoluteString)" + (resumeFrom > 0 ? " (resuming after \(resumeFrom) bytes)" : ""))
        var request = URLRequest(url: item.url)
        if resumeFrom > 0 { request.setValue("bytes=\(resumeFrom)-", forHTTPHeaderField: "Range") }
        let status: Int
        do {
            status = try await StreamToFile.run(request, to: partial, resumeFrom: resumeFrom, limit: maxDownloadSize, session: session)
        } catch let error as LoadError {
            throw error
        } catch {
            throw LoadError(item.url.absoluteString, "download of \(item.name) failed (\(error.localizedDescription)); the bytes so far are kept in \(partial.path) and the next run resumes from them", fix: manualFix)
        }
        if status == 416, resumeFrom > 0 {
            // Nothing after our bytes: the partial file may already be whole. Keep it if it verifies, else restart.
            if let data = try? Data(contentsOf: partial), item.accepts(SHA256.hex(data)) {
                try FileOps.replace(destination, with: partial)
                log("\(item.name): downloaded \(data.count) bytes, SHA-256 ok -> \(destination.path)")
                return
            }
            try? fm.removeItem(at: partial)
            log("\(item.name): the server cannot resume this file; downloading it again from the start")
            return try await fetch(item, into: dir, session: session, log: log)
        }
        guard status == 200 || status == 206 else {
            throw LoadError(item.url.absoluteString, "download of \(item.name) failed: HTTP status \(status)", fix: manualFix)
        }
        // Verify the whole file, then rename it into place.
        let data = (try? Data(contentsOf: partial)) ?? Data()
        let digest = SHA256.hex(data)
        guard item.accepts(digest) else {
            try? fm.removeItem(at: partial)
            throw LoadError(item.url.absoluteString, "downloaded \(item.name) (\(data.count) bytes) has SHA-256 \(digest), expected \(item.sha256); it was discarded",
                            fix: "the server sent a different or damaged file: try again later, or " + manualFix.replacingOccurrences(of: "this machine may be offline or the server unreachable: ", with: ""))
        }
        try FileOps.replace(destination, with: partial)
        log("\(item.name): downloaded \(data.count) bytes, SHA-256 ok -> \(destination.path)")
    }

    /// Where `scratchnet download` puts files: `$SCRATCHNET_DATA` if set, else `../shared` or `./shared` if that
    /// folder exists, else `./shared`. MNIST goes to `<dir>/mnist`, the weights to `<dir>/book`, which is where
    /// ``MNIST/defaultDirectory(environment:)`` and ``defaultWeights(environment:)`` look.
    public static func defaultDirectory(environment: [String: String]) -> URL {
        if let dir = environment["SCRATCHNET_DATA"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        return existing(["../shared", "./shared"], isDirectory: true) ?? URL(fileURLWithPath: "./shared").standardizedFileURL
    }

    /// The book's weights: `$SCRATCHNET_WEIGHTS` if set; else `../shared/book/sample_weight.pkl` or
    /// `./shared/book/sample_weight.pkl` (relative to the current directory) if present; else the copy in the box
    /// (``bundledData``, `Data/book/sample_weight.pkl`); else nil.
    public static func defaultWeights(environment: [String: String]) -> URL? {
        if let path = environment["SCRATCHNET_WEIGHTS"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return existing(["../shared/book/sample_weight.pkl", "./shared/book/sample_weight.pkl"], isDirectory: false)
            ?? bundled("book/sample_weight.pkl", isDirectory: false)
    }

    /// The package's `Data/` folder (the MNIST test set and the book's `sample_weight.pkl`, with their licences),
    /// found from where this source file was compiled, so it works from any current directory, for `swift run`,
    /// `swift test` and a package that depends on ScratchNet (its checkout keeps the folder). Nil if it is gone
    /// (a binary copied to another machine).
    public static let bundledData: URL? = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()  // Sources/ScratchNetIO
            .deletingLastPathComponent().deletingLastPathComponent()           // the package
        let data = root.appendingPathComponent("Data")
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: data.path, isDirectory: &isDir) && isDir.boolValue ? data : nil
    }()

    /// `path` inside ``bundledData`` if it exists there as a folder (or file).
    static func bundled(_ path: String, isDirectory: Bool) -> URL? {
        guard let url = bundledData?.appendingPathComponent(path) else { return nil }
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) && isDir.boolValue == isDirectory ? url : nil
    }

    /// The first of `paths` (relative to the current directory) that exists as a folder (or file).
    static func existing(_ paths: [String], isDirectory: Bool) -> URL? {
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        for path in paths {
            let url = cwd.appendingPathComponent(path).standardizedFileURL
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue == isDirectory { return url }
        }
        return nil
    }

    /// A URL from a string known to be well formed (constants and the mirror setting).
    static func fixedURL(_ s: String) -> URL {
        URL(string: s) ?? URL(fileURLWithPath: s)
    }
}

/// Streams one HTTP response body into a file as it arrives (so an interrupted download keeps its bytes):
/// appended after `resumeFrom` bytes when the server answers 206 to our Range request, from the start when it
/// answers 200 (it ignored the Range), nothing written for other statuses. Returns the HTTP status.
private final class StreamToFile: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // Mutable state is touched only from the session's serial delegate queue, then read after completion.
    private let destination: URL
    private let resumeFrom: Int
    private let limit: Int
    private var handle: FileHandle?
    private var status = 0
    private var written = 0
    private var failure: (any Error)?
    private var continuation: CheckedContinuation<Int, any Error>?

    private init(destination: URL, resumeFrom: Int, limit: Int) {
        self.destination = destination
        self.resumeFrom = resumeFrom
        self.limit = limit
    }

    static func run(_ request: URLRequest, to destination: URL, resumeFrom: Int, limit: Int, session: URLSession) async throws -> Int {
        let stream = StreamToFile(destination: destination, resumeFrom: resumeFrom, limit: limit)
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let delegated = URLSession(configuration: session.configuration, delegate: stream, delegateQueue: queue)
        defer { delegated.finishTasksAndInvalidate() }
        return try await withCheckedThrowingContinuation { continuation in
            queue.addOperation {
                stream.continuation = continuation
                delegated.dataTask(with: request).resume()
            }
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void) {
        status = (response as? HTTPURLResponse)?.statusCode ?? 200
        guard status == 200 || status == 206 else { return completionHandler(.allow) }
        let fm = FileManager.default
        if status == 200 || !fm.fileExists(atPath: destination.path) {
            // A full body: start the partial file afresh.
            _ = fm.createFile(atPath: destination.path, contents: nil)
            written = 0
        } else {
            written = resumeFrom
        }
        do {
            let h = try FileHandle(forWritingTo: destination)
            if status == 206 { try h.seekToEnd() } else { try h.truncate(atOffset: 0) }
            handle = h
            completionHandler(.allow)
        } catch {
            failure = error
            completionHandler(.cancel)
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard let handle, failure == nil else { return }
        written += data.count
        guard written <= limit else {
            failure = LoadError(destination.path, "the download is larger than the \(limit)-byte limit", fix: "check the URL (SCRATCHNET_MIRROR)")
            try? handle.close()
            self.handle = nil
            try? FileManager.default.removeItem(at: destination)
            dataTask.cancel()
            return
        }
        do { try handle.write(contentsOf: data) } catch {
            failure = error
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        try? handle?.close()
        handle = nil
        guard let continuation else { return }
        self.continuation = nil
        if let failure { continuation.resume(throwing: failure) } else if let error { continuation.resume(throwing: error) } else {
            continuation.resume(returning: status)
        }
    }
}
