// The training loop on the CPU path: each step equals a plain re-implementation of the book's step with the
// naive Reference ops (bitwise), optimizers follow the book's formulas, the shuffle and initial weights are
// seeded, and a stop request ends an epoch after a whole step.

import Foundation
import ScratchNet
import Testing

/// A small labelled byte dataset: `count` samples of `features` bytes, labels in 0..<classes.
private func syntheticData(count: Int, features: Int, classes: Int, seed: UInt64) throws -> LabeledBytes {
    var g = SplitMix64(seed: seed)
    var labels: [UInt8] = []
    var images: [UInt8] = []
    for _ in 0..<count {
        let label = Int(g.next() % UInt64(classes))
        labels.append(UInt8(label))
        // Class-dependent brightness pattern plus noise, so the data is learnable.
        for f in 0..<features {
            let base = (f % classes == label) ? 200 : 30
            images.append(UInt8(clamping: base + Int(g.next() % 50)))
        }
    }
    return try LabeledBytes(images: images, labels: labels, count: count, features: features)
}

/// The book's training step written out with the naive Reference ops on host tensors.
private struct ReferenceNet {
    var W: [Tensor]
    var b: [Tensor]  // (1, out)
    var state: [[Tensor]]  // per parameter (W1, b1, W2, b2, ...)
    let activation: Activation

    init(weights: [String: Tensor], activation: Activation, layers: Int) throws {
        W = (1...layers).map { weights["W\($0)"]! }
        b = try (1...layers).map { try weights["b\($0)"]!.reshaped([1, weights["b\($0)"]!.count]) }
        state = []
        self.activation = activation
    }

    /// One step; returns the loss.
    mutating func step(x: Tensor, labels: Tensor, rule: UpdateRule) throws -> Float {
        let n = W.count
        var h: [Tensor] = []
        var input = x
        for i in 0..<n {
            let out = try Reference.affine(input, W[i], bias: b[i], activation: i < n - 1 ? activation : .identity)
            h.append(out)
            input = out
        }
        let y = try Reference.softmaxRows(h[n - 1])
        let loss = try Reference.crossEntropy(y, targets: labels)
        var d = try Reference.softmaxCrossEntropyBackward(y, targets: labels)
        var dW = [Tensor](repeating: Tensor(zeros: [0]), count: n)
        var db = [Tensor](repeating: Tensor(zeros: [0]), count: n)
        for i in stride(from: n - 1, through: 0, by: -1) {
            let xin = i == 0 ? x : h[i - 1]
            dW[i] = try Reference.matmulTransposedA(xin, d)
            db[i] = try Reference.sumColumns(d)
            if i > 0 {
                let dx = try Reference.matmulTransposedB(d, W[i])
                d = try Reference.activationBackward(activation, output: h[i - 1], gradient: dx)
            }
        }
        if state.isEmpty {
            state = (0..<(2 * n)).map { k in
                let p = k % 2 == 0 ? W[k / 2] : b[k / 2]
                return (0..<rule.stateCount).map { _ in Tensor(zeros: p.shape) }
            }
        }
        for i in 0..<n {
            try Reference.update(rule, parameter: &W[i], gradient: dW[i], state: &state[2 * i])
            try Reference.update(rule, parameter: &b[i], gradient: db[i], state: &state[2 * i + 1])
        }
        return loss
    }
}

@Suite("Trainer (CPU path)")
struct TrainerTests {
    @Test("each step equals the book's step written with the Reference ops, bitwise",
          arguments: [(Activation.sigmoid, OptimizerKind.sgd), (.relu, .momentum), (.sigmoid, .adagrad), (.relu, .adam)])
    func matchesReference(activation: Activation, kind: OptimizerKind) throws {
        let data = try syntheticData(count: 53, features: 37, classes: 5, seed: 7)
        let sizes = [37, 13, 9, 5]
        let weights = try WeightInit.auto.weights(layerSizes: sizes, activation: activation, seed: 11)
        let backend = CPUBackend(threads: 2)
        let optimizer = Optimizer(kind, learningRate: kind == .sgd ? 0.1 : nil, backend: backend)
        let trainer = try Trainer(
            weights: weights, activation: activation, optimizer: optimizer, batchSize: 16, seed: 3, backend: backend)
        var reference = try ReferenceNet(weights: weights, activation: activation, layers: 3)

        // Two epochs of ⌈53/16⌉ = 4 steps (the last one has 5 samples); the same shuffle on the host side.
        var shuffle = TrainingRandom(seed: 3 ^ 0x5348_5546_464C_4531)
        var step = 0
        for _ in 0..<2 {
            let result = try trainer.trainEpoch(data)
            let order = shuffle.permutation(data.count)
            var losses: [Float] = []
            for start in stride(from: 0, to: data.count, by: 16) {
                let rows = Array(order[start..<min(start + 16, data.count)])
                let x = try Tensor(shape: [rows.count, 37], scalars: rows.flatMap { r in
                    data.images[(r * 37)..<((r + 1) * 37)].map { Float($0) / 255 }
                })
                let t = try Tensor(shape: [rows.count, 1], scalars: rows.map { Float(data.labels[$0]) })
                step += 1
                losses.append(try reference.step(x: x, labels: t, rule: optimizer.rule(step: step)))
            }
            #expect(result.steps == 4)
            #expect(Comparison(result.losses, losses).isBitwiseEqual, "losses \(result.losses) vs \(losses)")
        }
        let trained = try trainer.weights()
        for i in 0..<3 {
            let w = Comparison(trained["W\(i + 1)"]!.scalars, reference.W[i].scalars)
            let b = Comparison(trained["b\(i + 1)"]!.scalars, reference.b[i].scalars)
            #expect(w.isBitwiseEqual, "W\(i + 1): \(w)")
            #expect(b.isBitwiseEqual, "b\(i + 1): \(b)")
        }
    }

    @Test("training lowers the loss and learns a separable problem")
    func learns() throws {
        let data = try syntheticData(count: 400, features: 20, classes: 4, seed: 1)
        let trainer = try Trainer(
            layerSizes: [20, 16, 4], activation: .relu, optimizer: .adam, learningRate: 0.01, batchSize: 20, seed: 5,
            backend: CPUBackend())
        let first = try trainer.trainEpoch(data)
        var last = first
        for _ in 0..<5 { last = try trainer.trainEpoch(data) }
        #expect(last.meanLoss < first.meanLoss * 0.5, "loss \(first.meanLoss) -> \(last.meanLoss)")
        #expect(try trainer.accuracy(data) > 0.95)
    }

    @Test("the same seed gives the same weights; another seed does not")
    func seeded() throws {
        let data = try syntheticData(count: 60, features: 10, classes: 3, seed: 2)
        func run(_ seed: UInt64) throws -> [Float] {
            let t = try Trainer(layerSizes: [10, 6, 3], activation: .sigmoid, optimizer: .sgd, learningRate: 0.1,
                                batchSize: 7, seed: seed, backend: CPUBackend())
            _ = try t.trainEpoch(data)
            return try t.weights()["W1"]!.scalars
        }
        #expect(Comparison(try run(1), try run(1)).isBitwiseEqual)
        #expect(!Comparison(try run(1), try run(2)).isBitwiseEqual)
    }

    @Test("a stop request ends the epoch after the current step; maxSteps caps it")
    func stops() throws {
        let data = try syntheticData(count: 100, features: 8, classes: 2, seed: 4)
        let t = try Trainer(layerSizes: [8, 4, 2], activation: .relu, optimizer: .sgd, batchSize: 10, seed: 0,
                            backend: CPUBackend())
        var calls = 0
        let r = try t.trainEpoch(data, shouldStop: { calls += 1; return calls >= 3 })
        #expect(r.stopped && r.steps == 3 && r.samples == 30 && r.losses.count == 3)
        let capped = try t.trainEpoch(data, maxSteps: 4)
        #expect(!capped.stopped && capped.steps == 4)
        #expect(t.epoch == 2)
    }

    @Test("bad inputs give clear errors")
    func errors() throws {
        let data = try syntheticData(count: 10, features: 8, classes: 5, seed: 4)
        let t = try Trainer(layerSizes: [8, 4, 3], activation: .relu, optimizer: .sgd, batchSize: 10, seed: 0,
                            backend: CPUBackend())
        #expect(throws: ModelError.self) { try t.trainEpoch(data) }  // labels up to 4 but 3 classes
        let wrongWidth = try syntheticData(count: 10, features: 9, classes: 2, seed: 4)
        #expect(throws: ShapeError.self) { try t.trainEpoch(wrongWidth) }
        #expect(throws: ModelError.self) {
            try Trainer(layerSizes: [8], activation: .relu, optimizer: .sgd, batchSize: 10, seed: 0, backend: CPUBackend())
        }
        #expect(throws: (any Error).self) { try LabeledBytes(images: [1, 2, 3], labels: [0], count: 1, features: 2) }
    }

    @Test("optimizer rules carry the book's coefficients")
    func rules() {
        let backend = CPUBackend()
        #expect(Optimizer(.sgd, backend: backend).rule(step: 1) == .sgd(lr: Float(0.01)))
        #expect(Optimizer(.momentum, backend: backend).rule(step: 5) == .momentum(lr: Float(0.01), momentum: Float(0.9)))
        let adam = Optimizer(.adam, backend: backend)
        // lr_t = 0.001 * sqrt(1 - 0.999^2) / (1 - 0.9^2), in Double, rounded once.
        let b1: Double = 0.9, b2: Double = 0.999, lr: Double = 0.001
        let numerator: Double = (1 - b2 * b2).squareRoot()
        let lrT = Float(lr * numerator / (1 - b1 * b1))
        let expected = UpdateRule.adam(lrT: lrT, oneMinusBeta1: Float(1 - b1), oneMinusBeta2: Float(1 - b2))
        #expect(adam.rule(step: 2) == expected)
    }

    @Test("seeded randomness: permutations are permutations, Gaussians have the right spread")
    func randomness() throws {
        var r = TrainingRandom(seed: 9)
        let p = r.permutation(1000)
        #expect(p.sorted() == Array(0..<1000) && p != Array(0..<1000))
        var again = TrainingRandom(seed: 9)
        #expect(again.permutation(1000) == p)
        let w = try WeightInit.he.weights(layerSizes: [400, 300], activation: .relu, seed: 1)["W1"]!.scalars
        let mean = w.reduce(0.0) { $0 + Double($1) } / Double(w.count)
        let sd = (w.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(w.count)).squareRoot()
        #expect(abs(mean) < 0.002 && abs(sd - (2.0 / 400).squareRoot()) < 0.002, "mean \(mean) sd \(sd)")
        #expect(WeightInit.xavier.standardDeviation(fanIn: 100, activation: .sigmoid) == 0.1)
        #expect(WeightInit.auto.standardDeviation(fanIn: 50, activation: .relu) == 0.2)
    }
}
