// The flagship job, in process: the book's chapter-3 network on the 10,000 MNIST test images scores exactly
// 0.9352 on the CPU path and on OpenCL, with bitwise-identical probabilities at batch sizes 1, 37, 100, 10000;
// and the toy network of section 3.4.

import Foundation
import ScratchNet
import ScratchNetIO
import ScratchNetOpenCL
import Testing

@Suite("Book network", .serialized)
struct BookNetworkTests {
    @Test("chapter 3: accuracy is exactly 0.9352 on the CPU path")
    func accuracyCPU() throws {
        let test = try Book.testSet()
        #expect(test.count == 10_000)
        let network = try Network(weights: Book.weights(), backend: CPUBackend())
        let result = try network.infer(count: test.count, batchSize: 100) { test.images($0) }
        let correct = zip(result.predictions, test.labels).filter { $0 == Int($1) }.count
        #expect(correct == 9352)
    }

    @Test("chapter 3: accuracy is exactly 0.9352 on OpenCL")
    func accuracyOpenCL() throws {
        guard let backend = try Book.openCLBackend() else { return }
        let test = try Book.testSet()
        let network = try Network(weights: Book.weights(), backend: backend)
        let result = try network.infer(bytes: test.images, count: test.count, batchSize: 100)
        let correct = zip(result.predictions, test.labels).filter { $0 == Int($1) }.count
        #expect(correct == 9352)
    }

    @Test("bitwise parity: CPU and OpenCL at batch sizes 1, 37, 100, 10000 (bytes normalised on the device vs floats from the host)")
    func bitwiseParity() throws {
        let test = try Book.testSet()
        let weights = try Book.weights()
        var backends: [any Backend] = [CPUBackend()]
        if let ocl = try Book.openCLBackend() { backends.append(ocl) }
        let reference = try Network(weights: weights, backend: CPUBackend(threads: 1))
            .infer(count: test.count, batchSize: 100) { test.images($0) }
        for backend in backends {
            let network = try Network(weights: weights, backend: backend)
            for batch in [1, 37, 100, 10_000] {
                let result = try network.infer(bytes: test.images, count: test.count, batchSize: batch)
                let cmp = Comparison(result.probabilities, reference.probabilities)
                #expect(cmp.isBitwiseEqual, "\(backend.device.id) at batch \(batch): \(cmp)")
                #expect(result.predictions == reference.predictions)
            }
        }
    }

    @Test("classify (predictions only) equals infer's predictions on every device and batch size")
    func classifyMatchesInfer() throws {
        let test = try Book.testSet()
        for backend in [CPUBackend()] + [try Book.openCLBackend()].compactMap({ $0 }) {
            let network = try Network(weights: Book.weights(), backend: backend)
            let full = try network.infer(bytes: test.images, count: 3000, batchSize: 100)
            for batch in [1, 37, 100, 3000] {
                let predictions = try network.classify(bytes: test.images, count: 3000, batchSize: batch)
                #expect(predictions == full.predictions, "\(backend.device.id) batch \(batch)")
            }
        }
    }

    @Test("a layer-by-layer trace equals the fused run, bit for bit")
    func traceMatchesFused() throws {
        let test = try Book.testSet()
        let x = test.images(0..<7)
        for backend in [CPUBackend()] + [try Book.openCLBackend()].compactMap({ $0 }) {
            let network = try Network(weights: Book.weights(), backend: backend)
            let fused = try network.predict(x)
            let trace = try network.trace(x)
            #expect(trace.map(\.layer) == ["Affine1", "Sigmoid1", "Affine2", "Sigmoid2", "Affine3", "Softmax"])
            #expect(Comparison(trace.last!.output.scalars, fused.scalars).isBitwiseEqual)
        }
    }

    @Test("section 3.4: the toy 3-layer network gives [0.31682708, 0.69627909]")
    func toyNetwork() throws {
        let weights: [String: Tensor] = [
            "W1": try Tensor(rows: [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]]),
            "b1": try Tensor(shape: [3], scalars: [0.1, 0.2, 0.3]),
            "W2": try Tensor(rows: [[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]]),
            "b2": try Tensor(shape: [2], scalars: [0.1, 0.2]),
            "W3": try Tensor(rows: [[0.1, 0.3], [0.2, 0.4]]),
            "b3": try Tensor(shape: [2], scalars: [0.1, 0.2]),
        ]
        var outputs: [[Float]] = []
        for backend in [CPUBackend()] + [try Book.openCLBackend()].compactMap({ $0 }) {
            let network = try Network(weights: weights, output: .identity, backend: backend)
            let y = try network.predict(Tensor(shape: [1, 2], scalars: [1.0, 0.5]))
            #expect(abs(y.scalars[0] - 0.31682708) < 1e-6)
            #expect(abs(y.scalars[1] - 0.69627909) < 1e-6)
            outputs.append(y.scalars)
        }
        #expect(outputs.dropFirst().allSatisfy { Comparison($0, outputs[0]).isBitwiseEqual })
    }

    @Test("weights that do not chain are refused with the tensors' names and shapes")
    func shapeChecks() throws {
        var weights = try Book.weights()
        weights["W2"] = Tensor(zeros: [60, 100])
        #expect {
            try Network(weights: weights, backend: CPUBackend())
        } throws: { error in
            "\(error)".contains("W2") && "\(error)".contains("[60, 100]") && "\(error)".contains("50")
        }
        weights = try Book.weights()
        weights.removeValue(forKey: "b3")
        #expect { try Network(weights: weights, backend: CPUBackend()) } throws: { "\($0)".contains("b3") }
    }
}
