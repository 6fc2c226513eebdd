// Eight tasks running inference at once on ONE backend (the CPU path and OpenCL) give bitwise the results
// of a single task: one shared Network (its workspace pool is shared) and one Network per task, on the
// book's weights and the 10,000 MNIST test images, at different batch sizes per task.

import Foundation
import ScratchNet
import ScratchNetIO
import ScratchNetOpenCL
import Testing

@Suite("Concurrent inference", .serialized)
struct ConcurrencyTests {
    static let tasks = 8
    static let batchSizes = [100, 37, 1000, 256, 10_000, 100, 500, 64]

    /// What one task computes: all probabilities and predictions, and classify's predictions.
    struct Outcome: Sendable {
        var probabilities: [Float]
        var predictions: [Int]
        var classified: [Int]
    }

    static func run(_ network: Network, images: [UInt8], count: Int, batchSize: Int) throws -> Outcome {
        let result = try network.infer(bytes: images, count: count, batchSize: batchSize)
        let classified = try network.classify(bytes: images, count: count, batchSize: batchSize)
        return Outcome(probabilities: result.probabilities, predictions: result.predictions, classified: classified)
    }

    func check(_ backend: any Backend) async throws {
        let test = try Book.testSet()
        let weights = try Book.weights()
        let images = test.images, count = test.count
        let single = try Self.run(
            Network(weights: weights, backend: backend), images: images, count: count, batchSize: 100)
        #expect(single.predictions == single.classified)
        let shared = try Network(weights: weights, backend: backend)
        for sharedNetwork in [true, false] {
            let outcomes = try await withThrowingTaskGroup(of: (Int, Outcome).self) { group in
                for t in 0..<Self.tasks {
                    group.addTask {
                        let network = sharedNetwork ? shared : try Network(weights: weights, backend: backend)
                        return (t, try Self.run(network, images: images, count: count, batchSize: Self.batchSizes[t]))
                    }
                }
                var all: [(Int, Outcome)] = []
                for try await outcome in group { all.append(outcome) }
                return all
            }
            #expect(outcomes.count == Self.tasks)
            for (t, outcome) in outcomes {
                let what = "\(backend.device.id), \(sharedNetwork ? "shared network" : "own network"), task \(t)"
                let cmp = Comparison(outcome.probabilities, single.probabilities)
                #expect(cmp.isBitwiseEqual, "\(what): \(cmp)")
                #expect(outcome.predictions == single.predictions, "\(what)")
                #expect(outcome.classified == single.predictions, "\(what)")
            }
        }
        let correct = zip(single.predictions, test.labels).filter { $0 == Int($1) }.count
        #expect(correct == 9352)
    }

    @Test("8 tasks on one CPU backend: bitwise the results of one task")
    func cpu() async throws {
        try await check(CPUBackend())
    }

    @Test("8 tasks on one OpenCL backend: bitwise the results of one task")
    func openCL() async throws {
        guard let backend = try Book.openCLBackend() else { return }
        try await check(backend)
    }
}
