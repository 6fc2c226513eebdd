// `scratchnet train` as a user runs it: JSON lines per epoch, weights + SVG + CSV written, `infer` loading the
// result (activation from the file's metadata), Ctrl-C stopping after a batch and still saving, clear errors.

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

@Suite("scratchnet train", .serialized)
struct TrainCLITests {
    let fashion = Fashion.directory.path

    func temporaryFolder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    func jsonLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { line in
            try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
    }

    @Test("train writes weights, curves and CSV; infer loads the weights and agrees with the last epoch")
    func trainThenInfer() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("w.safetensors")
        let r = try CLI.run([
            "train", "--data", fashion, "--layers", "784,40,10", "--activation", "relu", "--optimizer", "adam",
            "--epochs", "2", "--limit", "3000", "--seed", "7", "--device", "cpu", "--json", "--out", out.path,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let epochs = try jsonLines(r.stdout)
        #expect(epochs.count == 2)
        #expect(epochs.map { $0["steps"] as? Int } == [30, 30])
        let loss1 = try #require(epochs.first?["trainLoss"] as? Double)
        let loss2 = try #require(epochs.last?["trainLoss"] as? Double)
        #expect(loss2 < loss1)
        let testAccuracy = try #require(epochs.last?["testAccuracy"] as? Double)
        #expect(testAccuracy > 0.6)

        let weights = try WeightsFile.load(out)
        #expect(weights["W1"]?.shape == [784, 40] && weights["b2"]?.shape == [10])
        #expect(WeightsFile.metadata(out)["activation"] == "relu")
        let csv = try String(contentsOf: dir.appendingPathComponent("w.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 3 && csv.hasPrefix("epoch,"))
        let svg = try String(contentsOf: dir.appendingPathComponent("w.svg"), encoding: .utf8)
        #expect(svg.contains("<svg") && svg.contains("train loss"))

        // infer reads the activation from the file and reproduces the last epoch's test accuracy.
        let report = try CLI.json(["infer", "--weights", out.path, "--data", fashion, "--device", "cpu", "--json"])
        #expect(report["accuracy"] as? Double == testAccuracy)
    }

    @Test("Ctrl-C stops after the current batch and still saves")
    func interrupt() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("w.safetensors")
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = ["train", "--data", fashion, "--epochs", "100000", "--limit", "2000", "--no-eval",
                             "--device", "cpu", "--json", "--out", out.path]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = Pipe()
        try process.run()
        // Wait for the first epoch line: by then the handler is installed and training runs.
        var seen = Data()
        while !seen.contains(UInt8(ascii: "\n")) {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += chunk
        }
        process.interrupt()  // SIGINT, as Ctrl-C
        // It must stop within a minute (one batch and the saving); never hang the test run.
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            Issue.record("train did not stop within 60 s of SIGINT")
            kill(process.processIdentifier, SIGKILL)
        }
        let rest = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let lines = try jsonLines(String(decoding: seen + rest, as: UTF8.self))
        #expect(!lines.isEmpty && lines.count < 100000)
        let weights = try WeightsFile.load(out)
        #expect(weights["W1"]?.shape == [784, 50])
        let csv = try String(contentsOf: dir.appendingPathComponent("w.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == lines.count + 1)
        // Nothing half-written is left behind.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains("partial") }
        #expect(leftovers.isEmpty)
    }

    @Test("missing training files and bad flags give one clear line and exit 2")
    func errors() throws {
        let noTrain = try CLI.run(["train", "--data", "/nonexistent-folder", "--device", "cpu"])
        #expect(noTrain.status == 2)
        #expect(noTrain.stderr.contains("dataset-fashion-mnist"))
        let badLayers = try CLI.run(["train", "--data", fashion, "--layers", "784", "--device", "cpu"])
        #expect(badLayers.status != 0 && badLayers.stderr.contains("--layers"))
        let wrongInput = try CLI.run(["train", "--data", fashion, "--layers", "100,10", "--device", "cpu"])
        #expect(wrongInput.status == 2 && wrongInput.stderr.contains("784"))
        let fewClasses = try CLI.run(["train", "--data", fashion, "--layers", "784,5", "--device", "cpu"])
        #expect(fewClasses.status == 2 && fewClasses.stderr.contains("must be 10"), "\(fewClasses.stderr)")
        // More outputs than classes is refused too: the book's last layer has one output per class.
        let manyOutputs = try CLI.run(["train", "--data", fashion, "--layers", "784,50", "--device", "cpu"])
        #expect(manyOutputs.status == 2 && manyOutputs.stderr.contains("50 outputs") && manyOutputs.stderr.contains("10 classes"))
    }
}
