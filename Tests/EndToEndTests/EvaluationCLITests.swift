// `scratchnet infer`'s evaluation end to end: per-class accuracy and the confusion matrix (JSON and text) agree
// with counts made here from the labels and the library's predictions; --predictions CSV is byte-identical on the
// CPU path and OpenCL and holds the library's probabilities bit for bit; --confusion writes a PNG; a model with
// fewer classes than the labels is refused naming both counts; output paths are checked before any work.

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

@Suite("scratchnet infer: evaluation", .serialized)
struct EvaluationCLITests {
    @Test("infer --json: the confusion matrix and per-class accuracy match counts made from the labels")
    func confusionMatchesTheLabels() throws {
        let test = try Book.testSet()
        let network = try Network(weights: try Book.weights(), backend: CPUBackend())
        let predictions = try network.classify(bytes: test.images, count: test.count, batchSize: 100)
        let report = try CLI.json(["infer", "--device", "cpu", "--json"])
        let confusion = try #require(report["confusion"] as? [[Int]])
        #expect(confusion.count == 10 && confusion.allSatisfy { $0.count == 10 })
        var expected = [[Int]](repeating: [Int](repeating: 0, count: 10), count: 10)
        for (label, predicted) in zip(test.labels, predictions) { expected[Int(label)][predicted] += 1 }
        #expect(confusion == expected)
        #expect((0..<10).reduce(0) { $0 + confusion[$1][$1] } == 9352)
        let perClass = try #require(report["classAccuracy"] as? [Double])
        for c in 0..<10 {
            // Foundation's JSON on Linux may change a Double's last digit: compare to 1e-12.
            #expect(abs(perClass[c] - Double(expected[c][c]) / Double(expected[c].reduce(0, +))) < 1e-12)
        }
    }

    @Test("infer prints the confusion matrix as text with a row per class")
    func confusionText() throws {
        let r = try CLI.run(["infer", "--device", "cpu"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let header = try #require(lines.firstIndex { $0.hasPrefix("true") && $0.hasSuffix("accuracy") })
        #expect(lines.count >= header + 11)
        // Row 0: 962 of the 980 zeros are right (0.9816).
        #expect(lines[header + 1].split(separator: " ").first == "0" && lines[header + 1].hasSuffix("0.9816"))
    }

    @Test("--predictions: the same CSV bytes from the CPU path and OpenCL, the library's probabilities bit for bit")
    func predictionsCSV() throws {
        let dir = try temporaryDirectory("eval")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cpuFile = dir.appendingPathComponent("cpu.csv"), clFile = dir.appendingPathComponent("opencl.csv")
        let png = dir.appendingPathComponent("confusion.png")
        let r = try CLI.run(["infer", "--device", "cpu", "--predictions", cpuFile.path, "--confusion", png.path])
        #expect(r.status == 0, "\(r.stderr)")
        let csv = try String(contentsOf: cpuFile, encoding: .utf8)
        let rows = csv.split(separator: "\n").map { $0.split(separator: ",").map(String.init) }
        #expect(rows.first == ["index", "label", "prediction", "probability"])
        #expect(rows.count == 10_001)
        let test = try Book.testSet()
        let result = try Network(weights: try Book.weights(), backend: CPUBackend())
            .infer(bytes: test.images, count: test.count, batchSize: 100)
        var correct = 0
        for (i, row) in rows.dropFirst().enumerated() {
            guard row.count == 4, let p = Float(row[3]), let predicted = Int(row[2]) else {
                Issue.record("bad CSV row \(i): \(row)")
                break
            }
            #expect(row[0] == String(i) && row[1] == String(test.labels[i]))
            #expect(predicted == result.predictions[i])
            #expect(p.bitPattern == result.probabilities[i * 10 + predicted].bitPattern)
            if predicted == Int(test.labels[i]) { correct += 1 }
        }
        #expect(correct == 9352)
        let image = try PNGImage(contentsOf: png)
        #expect(image.width > 10 * 28 && image.height > 10 * 28)

        if try Book.openCLBackend() != nil {
            let o = try CLI.run(["infer", "--device", "opencl:0", "--predictions", clFile.path])
            #expect(o.status == 0, "\(o.stderr)")
            #expect(try Data(contentsOf: clFile) == Data(contentsOf: cpuFile))
        }
    }

    @Test("a model with 5 classes on 10-class data is refused, naming both counts")
    func fewerClassesThanLabels() throws {
        let dir = try temporaryDirectory("eval")
        defer { try? FileManager.default.removeItem(at: dir) }
        var weights = try Book.weights()
        let w3 = try #require(weights["W3"]), b3 = try #require(weights["b3"])
        let rows = w3.shape[0]
        let w3Five = (0..<rows).flatMap { r in w3.scalars[(r * 10)..<(r * 10 + 5)] }
        weights["W3"] = try Tensor(shape: [rows, 5], scalars: w3Five)
        weights["b3"] = try Tensor(shape: [5], scalars: Array(b3.scalars[0..<5]))
        let file = dir.appendingPathComponent("five.safetensors")
        try SafeTensors.write(weights, to: file)
        let r = try CLI.run(["infer", "--device", "cpu", "--weights", file.path])
        #expect(r.status == 2)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(r.stderr.contains("5 classes") && r.stderr.contains("10 classes"), "\(r.stderr)")
    }

    @Test("output paths are checked before any work", arguments: ["--confusion", "--predictions", "--errors"])
    func outputPathsCheckedFirst(option: String) throws {
        let dir = try temporaryDirectory("eval")
        defer { try? FileManager.default.removeItem(at: dir) }
        // A missing folder, and a folder given as the file. A missing --weights proves nothing ran before.
        for (path, words) in [(dir.appendingPathComponent("no/such/x").path, "does not exist"), (dir.path, "is a folder")] {
            let r = try CLI.run(["infer", "--device", "cpu", option, path, "--weights", dir.appendingPathComponent("none.pkl").path])
            #expect(r.status == 2)
            #expect(r.stderr.contains(option) && r.stderr.contains(words), "\(r.stderr)")
            #expect(!r.stderr.contains("none.pkl"), "the weights were read before the output was checked: \(r.stderr)")
        }
    }
}
