// `scratchnet download`: fetches the four MNIST files from the book's mirror and the book's
// sample_weight.pkl, verifying SHA-256. Offline it fails with a clear message and exit status 2.

import ArgumentParser
import Foundation
import ScratchNetIO

struct DownloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "download",
        abstract: "Download MNIST and the book's pretrained weights (sample_weight.pkl), checking SHA-256.")

    @Option(help: "Where to put the files (mnist/ and book/ inside it).")
    var dir: String = Downloads.defaultDirectory(environment: ProcessInfo.processInfo.environment).path

    func run() async throws {
        let target = URL(fileURLWithPath: dir)
        try await Downloads.fetch(Downloads.book(environment: ProcessInfo.processInfo.environment), into: target) { line in print(line) }
        print("done: MNIST in \(target.appendingPathComponent("mnist").path), weights in \(target.appendingPathComponent("book").path)")
        print("run: scratchnet infer --data \(target.appendingPathComponent("mnist").path) --weights \(target.appendingPathComponent("book/sample_weight.pkl").path)")
    }
}
