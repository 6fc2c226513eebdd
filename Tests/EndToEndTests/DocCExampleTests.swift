// The code of the DocC articles (Sources/ScratchNet/ScratchNet.docc), run for real. Each article's ```swift
// block is copied verbatim between a `// docc: begin NAME` and a `// docc: end` line below; the first test checks
// that every block of the articles is one of those regions and every region is in an article (import lines
// aside: they sit at the top of this file), so an article cannot show code that no longer compiles or no longer
// gives what it says (0.9352 on the book's weights, the same bits on every device).

import Foundation
import ScratchNet
import ScratchNetIO
import ScratchNetOpenCL
import Testing

@Suite("DocC articles", .serialized)
struct DocCExampleTests {
    @Test("every Swift block of the articles is a tested region below, and every region is in an article")
    func articlesMatchTheseTests() throws {
        let blocks = try DocCSources.articleBlocks()
        let regions = try DocCSources.testedRegions()
        #expect(blocks.count >= 8, "found only \(blocks.count) Swift blocks in \(DocCSources.catalog.path)")
        for (article, block) in blocks {
            let tested = regions.values.contains(block)
            #expect(tested, "a Swift block of \(article) is not tested verbatim in DocCExampleTests.swift:\n\(block)")
        }
        for (name, region) in regions {
            let shown = blocks.contains { $0.block == region }
            #expect(shown, "region \(name) of DocCExampleTests.swift is in no article")
        }
    }

    @Test("the landing page: the book's network from the package's Data folder")
    func overview() throws {
        // docc: begin overview
        let data = Downloads.bundledData ?? URL(fileURLWithPath: "Data")
        let test = try MNIST.load(directory: data.appendingPathComponent("mnist"), split: .test)
        let weights = try WeightsFile.load(data.appendingPathComponent("book/sample_weight.pkl"))
        // W1 (784, 50), b1 (50), W2 (50, 100), b2 (100), W3 (100, 10), b3 (10)
        let network = try Network(weights: weights, backend: CPUBackend())
        // network.layers: Affine1, Sigmoid1, Affine2, Sigmoid2, Affine3, Softmax
        // docc: end
        #expect(test.count == 10_000)
        #expect(network.layers.map(\.name) == ["Affine1", "Sigmoid1", "Affine2", "Sigmoid2", "Affine3", "Softmax"])
        #expect(weights.mapValues(\.shape) == [
            "W1": [784, 50], "b1": [50], "W2": [50, 100], "b2": [100], "W3": [100, 10], "b3": [10],
        ])
    }

    @Test("Chapter 3 in Swift: activation functions and softmax")
    func activationsAndSoftmax() throws {
        // docc: begin activations
        func step(_ x: Float) -> Float { x > 0 ? 1 : 0 }

        let xs: [Float] = [-1.0, 1.0, 2.0]
        let steps = xs.map(step)                  // [0.0, 1.0, 1.0]
        let sigmoids = xs.map(Numerics.sigmoid)   // [0.26894143, 0.7310586, 0.880797]
        let relus = xs.map(Numerics.relu)         // [0.0, 1.0, 2.0]
        // docc: end
        #expect(steps == [0, 1, 1])
        #expect(sigmoids.description == "[0.26894143, 0.7310586, 0.880797]")
        #expect(zip(sigmoids, [0.26894142, 0.73105858, 0.88079708] as [Float]).allSatisfy { abs($0 - $1) < 1e-7 })
        #expect(relus == [0, 1, 2])

        // docc: begin activations-on-a-backend
        let backend = CPUBackend()
        let x = try backend.upload(Tensor(rows: [[-1.0, 1.0, 2.0]]))
        let y = try backend.makeMatrix(rows: 1, cols: 3)
        try backend.apply(.sigmoid, x, into: y)
        let onBackend = try backend.download(y).scalars   // the same bits as `sigmoids`
        // docc: end
        #expect(Comparison(onBackend, sigmoids).isBitwiseEqual)

        // docc: begin softmax
        let big: [Float] = [1010, 1000, 990]
        let naive = big.map(Numerics.exp)   // [inf, inf, inf]: the book's naive softmax gives inf / inf = NaN

        var scores: [Float] = [1010, 1000, 990]
        scores.withUnsafeMutableBufferPointer { Numerics.softmax($0) }
        // scores ≈ [0.9999546, 4.539787e-05, 2.0610600e-09]: each row's maximum is subtracted first

        var book: [Float] = [0.3, 2.9, 4.0]
        book.withUnsafeMutableBufferPointer { Numerics.softmax($0) }
        // book ≈ [0.01821127, 0.24519181, 0.73659691], summing to 1
        // docc: end
        #expect(naive.allSatisfy { $0 == .infinity })
        #expect(zip(scores, [9.99954600e-01, 4.53978686e-05, 2.06106005e-09] as [Float]).allSatisfy { abs($0 - $1) <= 1e-6 * $1 })
        #expect(zip(book, [0.01821127, 0.24519181, 0.73659691] as [Float]).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(abs(book.reduce(0, +) - 1) < 1e-6)
    }

    @Test("Chapter 3 in Swift: the section 3.4 toy network")
    func toyNetwork() throws {
        // docc: begin toy-network
        let toy: [String: Tensor] = [
            "W1": try Tensor(rows: [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]]),
            "b1": try Tensor(shape: [3], scalars: [0.1, 0.2, 0.3]),
            "W2": try Tensor(rows: [[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]]),
            "b2": try Tensor(shape: [2], scalars: [0.1, 0.2]),
            "W3": try Tensor(rows: [[0.1, 0.3], [0.2, 0.4]]),
            "b3": try Tensor(shape: [2], scalars: [0.1, 0.2]),
        ]
        let toyNetwork = try Network(weights: toy, output: .identity, backend: CPUBackend())
        let toyOutput = try toyNetwork.predict(Tensor(rows: [[1.0, 0.5]]))   // [0.31682708, 0.69627909]
        // docc: end
        #expect(toyOutput.shape == [1, 2])
        #expect(abs(toyOutput.scalars[0] - 0.31682708) < 1e-6)
        #expect(abs(toyOutput.scalars[1] - 0.69627909) < 1e-6)
    }

    @Test("Chapter 3 in Swift: MNIST and the book's weights score 0.9352, one image at a time and in batches")
    func mnistInference() throws {
        // docc: begin load-mnist
        let data = Downloads.bundledData ?? URL(fileURLWithPath: "Data")
        let test = try MNIST.load(directory: data.appendingPathComponent("mnist"), split: .test)
        let images = test.images(0..<test.count)   // (10000, 784), Float(byte) / 255, in [0, 1]
        let labels = test.labels                   // 10,000 bytes, each 0...9
        // docc: end
        #expect(images.shape == [10_000, 784])
        #expect(images.scalars.min() == 0 && images.scalars.max() == 1)
        #expect(zip(images.scalars, test.images).allSatisfy { $0 == Float($1) / 255 })
        #expect(labels.count == 10_000 && labels.prefix(3) == [7, 2, 1])

        // docc: begin load-weights
        let weights = try WeightsFile.load(data.appendingPathComponent("book/sample_weight.pkl"))
        // W1 (784, 50), b1 (50), W2 (50, 100), b2 (100), W3 (100, 10), b3 (10)
        let network = try Network(weights: weights, backend: CPUBackend())
        // network.layers: Affine1, Sigmoid1, Affine2, Sigmoid2, Affine3, Softmax
        // docc: end
        #expect(weights.mapValues(\.shape) == [
            "W1": [784, 50], "b1": [50], "W2": [50, 100], "b2": [100], "W3": [100, 10], "b3": [10],
        ])
        #expect(network.layers.map(\.name) == ["Affine1", "Sigmoid1", "Affine2", "Sigmoid2", "Affine3", "Softmax"])
        #expect(network.inputSize == 784 && network.outputSize == 10)

        // docc: begin one-at-a-time
        var correct = 0
        var predicted: [Int] = []
        for i in 0..<test.count {
            let y = try network.predict(test.images(i..<(i + 1)))   // (1, 10) probabilities
            let p = y.scalars.withUnsafeBufferPointer { Numerics.argmax($0) }   // np.argmax
            predicted.append(p)
            if p == Int(test.labels[i]) { correct += 1 }
        }
        let accuracy = Double(correct) / Double(test.count)   // 0.9352
        // docc: end
        #expect(correct == 9352)
        #expect(accuracy == 0.9352)

        // docc: begin batches
        let result = try network.infer(count: test.count, batchSize: 100) { rows in test.images(rows) }
        let batchAccuracy = result.accuracy(labels: test.labels)   // 0.9352
        // docc: end
        #expect(batchAccuracy == 0.9352)
        #expect(result.predictions == predicted)
        #expect(result.probabilities.count == 100_000)

        // docc: begin batches-from-bytes
        let fromBytes = try network.infer(bytes: test.images, count: test.count, batchSize: 100)
        // fromBytes.probabilities has the same bits as result.probabilities
        // docc: end
        #expect(Comparison(fromBytes.probabilities, result.probabilities).isBitwiseEqual)
    }

    @Test("Chapter 3 and the parity promise on an OpenCL device: the same bits as the CPU path")
    func onOpenCL() throws {
        guard !OpenCLDevices.enumerate().devices.isEmpty || !DocCSources.noOpenCLAllowed else { return }
        let data = Downloads.bundledData ?? URL(fileURLWithPath: "Data")
        let test = try MNIST.load(directory: data.appendingPathComponent("mnist"), split: .test)
        let weights = try WeightsFile.load(data.appendingPathComponent("book/sample_weight.pkl"))
        let result = try Network(weights: weights, backend: CPUBackend())
            .infer(count: test.count, batchSize: 100) { rows in test.images(rows) }

        // docc: begin on-a-device
        let selection = try DeviceSelector.select(.opencl(nil))   // or .auto, .gpu, .opencl(n), .cpu
        let onDevice = try Network(weights: weights, backend: selection.backend)
            .infer(bytes: test.images, count: test.count, batchSize: 100)
        let same = Comparison(onDevice.probabilities, result.probabilities).isBitwiseEqual   // true
        // docc: end
        #expect(same)
        #expect(onDevice.accuracy(labels: test.labels) == 0.9352)
        #expect(selection.backend.device.id.hasPrefix("opencl:"))

        // docc: begin parity-check
        let reference = try Network(weights: weights, backend: CPUBackend())
        let candidates = [
            try Network(weights: weights, backend: selection.backend),                    // fused kernel
            try Network(weights: weights, backend: selection.backend, fusedPath: false),  // layer by layer
        ]
        var allEqual = true
        for batchSize in [1, 37, 100] {
            let want = try reference.infer(bytes: test.images, count: 1000, batchSize: batchSize)
            for candidate in candidates {
                let got = try candidate.infer(bytes: test.images, count: 1000, batchSize: batchSize)
                let comparison = Comparison(got.probabilities, want.probabilities)
                // comparison.description: "10000/10000 bitwise equal, max |Δ| 0.0"
                allEqual = allEqual && comparison.isBitwiseEqual
            }
        }
        // docc: end
        #expect(allEqual)
        let one = try candidates[0].infer(bytes: test.images, count: 1000, batchSize: 100)
        let want = try reference.infer(bytes: test.images, count: 1000, batchSize: 100)
        #expect(Comparison(one.probabilities, want.probabilities).description == "10000/10000 bitwise equal, max |Δ| 0.0")

        // docc: begin self-check
        let device = try OpenCLBackend(deviceIndex: 0)
        let message: String
        switch try DeviceSelector.verify(device, job: .inference) {
        case .passed(let report):
            message = "all \(report.results.count) checks bitwise equal to the CPU path"
        case .fusedFailed(_, let failure):
            message = "only the fused kernel failed, run layer by layer: " + DeviceSelector.describe(failure, on: device)
        case .failed(_, let failure):
            message = "do not use this device: " + DeviceSelector.describe(failure, on: device)
        }
        // docc: end
        let verdict = try DeviceSelector.verify(device, job: .inference)
        #expect(!verdict.report.results.isEmpty)
        if case .passed = verdict {
            #expect(message == "all \(verdict.report.results.count) checks bitwise equal to the CPU path")
        } else {
            #expect(message.contains(": "))
        }
    }
}

/// Finds the articles' Swift blocks and this file's tested regions.
enum DocCSources {
    static let here = URL(fileURLWithPath: #filePath)
    static let catalog = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/ScratchNet/ScratchNet.docc")
    static var noOpenCLAllowed: Bool { ProcessInfo.processInfo.environment["SCRATCHNET_ALLOW_NO_OPENCL"] == "1" }

    /// Every ```swift block of every article, without its import lines, dedented.
    static func articleBlocks() throws -> [(article: String, block: String)] {
        let files = try FileManager.default.contentsOfDirectory(at: catalog, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "md" }.sorted { $0.path < $1.path }
        var blocks: [(String, String)] = []
        for file in files {
            var current: [Substring]? = nil
            for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if current == nil, trimmed == "```swift" {
                    current = []
                } else if current != nil, trimmed == "```" {
                    blocks.append((file.lastPathComponent, normalized(current ?? [])))
                    current = nil
                } else if current != nil, !trimmed.hasPrefix("import ") {
                    current?.append(line)
                }
            }
        }
        return blocks
    }

    /// The code between `// docc: begin NAME` and `// docc: end` in this file, dedented, by name.
    static func testedRegions() throws -> [String: String] {
        var regions: [String: String] = [:]
        var name: String? = nil
        var lines: [Substring] = []
        for line in try String(contentsOf: here, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("// docc: begin ") {
                name = String(trimmed.dropFirst("// docc: begin ".count))
                lines = []
            } else if trimmed == "// docc: end", let n = name {
                regions[n] = normalized(lines)
                name = nil
            } else if name != nil {
                lines.append(line)
            }
        }
        return regions
    }

    /// Lines without their common indentation and without leading or trailing blank lines.
    static func normalized(_ lines: [Substring]) -> String {
        var lines = lines
        while let first = lines.first, first.allSatisfy(\.isWhitespace) { lines.removeFirst() }
        while let last = lines.last, last.allSatisfy(\.isWhitespace) { lines.removeLast() }
        let indent = lines.filter { !$0.allSatisfy(\.isWhitespace) }.map { $0.prefix { $0 == " " }.count }.min() ?? 0
        return lines.map { $0.allSatisfy(\.isWhitespace) ? "" : String($0.dropFirst(indent)) }.joined(separator: "\n")
    }
}
