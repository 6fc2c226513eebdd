// How the `scratchnet` commands behave toward a user (issue 11 item 6): results on stdout and progress/notes on
// stderr, output paths checked before any work, every error's full text on one line, negative numbers answered
// with "must be at least", a folder given as --weights named as such, and size lists with a fitting example.

import Foundation
import ScratchNet
import Testing

@Suite("scratchnet CLI behaviour", .serialized)
struct CLIBehaviourTests {
    let fashion = Fashion.directory.path

    @Test("train: the epoch results and the files written go to stdout, the set-up notes to stderr")
    func trainStreams() throws {
        let dir = try temporaryDirectory("cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("w.safetensors")
        let r = try CLI.run(["train", "--data", fashion, "--limit", "300", "--epochs", "2", "--device", "cpu",
                             "--out", out.path])
        #expect(r.status == 0, "\(r.stderr)")
        let stdout = r.stdout.split(separator: "\n").map(String.init)
        #expect(stdout.filter { $0.hasPrefix("epoch ") }.count == 2, "\(r.stdout)")
        #expect(stdout.contains { $0.hasPrefix("wrote \(out.path)") })
        #expect(r.stderr.contains("training 784-50-10"))
        #expect(!r.stderr.contains("epoch 1/2  loss"), "an epoch result went to stderr: \(r.stderr)")
    }

    @Test("train: an unwritable --out, --plot or --csv fails at once, before the data is read",
          arguments: ["--out", "--plot", "--csv"])
    func trainOutputsCheckedFirst(option: String) throws {
        let dir = try temporaryDirectory("cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("missing/folder/x").path
        var args = ["train", "--data", "/nonexistent-folder", "--device", "cpu"]
        args += option == "--out" ? ["--out", bad] : ["--out", dir.appendingPathComponent("w.safetensors").path, option, bad]
        let r = try CLI.run(args)
        #expect(r.status == 2)
        #expect(r.stderr.contains(option) && r.stderr.contains("does not exist"), "\(r.stderr)")
        #expect(!r.stderr.contains("nonexistent-folder"), "the data was read before the output was checked")
        // --out given as a folder
        let folder = try CLI.run(["train", "--data", "/nonexistent-folder", "--device", "cpu", "--out", dir.path])
        #expect(folder.status == 2 && folder.stderr.contains("is a folder"), "\(folder.stderr)")
    }

    @Test("negative and zero numbers give a 'must be at least' message", arguments: [
        ["infer", "--batch-size", "-1"], ["train", "--batch-size", "-1"], ["train", "--epochs", "-3"],
        ["infer", "--errors-limit", "-2"], ["show", "--count", "-1"], ["parity", "--limit", "-5"],
        ["bench", "--repeats", "0"], ["train", "--limit", "-1"],
    ])
    func negativeNumbers(arguments: [String]) throws {
        let r = try CLI.run(arguments)
        #expect(r.status != 0)
        #expect(r.stderr.contains("must be at least"), "\(arguments): \(r.stderr)")
        #expect(!r.stderr.contains("Missing value"), "\(arguments): \(r.stderr)")
    }

    @Test("a folder passed as --weights is named as a folder, in one line")
    func weightsFolder() throws {
        let dir = try temporaryDirectory("cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["infer", "--device", "cpu", "--weights", dir.path])
        #expect(r.status == 2)
        #expect(r.stderr.contains("is a folder") && !r.stderr.contains("NSCocoaErrorDomain"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    @Test("a bad size list gives an example that fits the flag")
    func sizeExamples() throws {
        let layers = try CLI.run(["train", "--data", fashion, "--layers", "784,0,10", "--device", "cpu"])
        #expect(layers.status == 2 && layers.stderr.contains("e.g. 784,50,10"), "\(layers.stderr)")
        #expect(!layers.stderr.contains("1,100,10000"))
        let batches = try CLI.run(["parity", "--batch-sizes", "1,,7"])
        #expect(batches.status == 2 && batches.stderr.contains("e.g. 1,100,10000"), "\(batches.stderr)")
    }
}
