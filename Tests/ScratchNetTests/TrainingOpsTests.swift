// Tests of the training ops: Reference against hand-computed values (the book's loss examples) and Double
// math; CPUBackend against Reference bit for bit over odd shapes (1, 7, 33, tile tails, the TwoLayerNet
// sizes, N = 0), NaN/±inf inputs, label and one-hot targets, invalid labels, every UpdateRule over several
// steps, thread counts 1 and 3, the packed-weight cache after an in-place update, and the errors.

import Foundation
import Testing
import ScratchNet

/// A DeviceStorage of some other backend, to provoke foreignBuffer.
private final class AlienStorage: DeviceStorage {}

/// Backends with 1 and 3 threads: results must not depend on the count.
private let backends = [CPUBackend(threads: 1), CPUBackend(threads: 3)]

/// `t` with NaN, ±inf, -0 and a huge value written over a few spread-out positions.
private func withSpecials(_ t: Tensor) -> Tensor {
    var t = t
    let specials: [Float] = [.nan, .infinity, -.infinity, -0.0, 3e38, Float(bitPattern: 0xFFC0_0001)]
    for (i, s) in specials.enumerated() where t.count > 0 { t.scalars[(i * 7919 + 3) % t.count] = s }
    return t
}

/// Class indices 0..<classes as floats, (rows, 1).
private func labels(_ rows: Int, classes: Int, seed: UInt64) -> Tensor {
    var g = SeededGenerator(seed: seed)
    let values = (0..<rows).map { _ in Float(Int.random(in: 0..<max(classes, 1), using: &g)) }
    return (try? Tensor(shape: [rows, 1], scalars: values)) ?? Tensor(zeros: [rows, 1])
}

/// One-hot rows of `labels` (rows, classes).
private func oneHot(_ labels: Tensor, classes: Int) -> Tensor {
    var t = Tensor(zeros: [labels.count, classes])
    for (i, l) in labels.scalars.enumerated() { t.scalars[i * classes + Int(l)] = 1 }
    return t
}

/// Probabilities: softmax rows of random values (N, C).
private func probabilities(_ rows: Int, _ cols: Int, seed: UInt64) throws -> Tensor {
    try Reference.softmaxRows(randomTensor(rows, cols, in: -5...5, seed: seed))
}

/// Bitwise comparison of a downloaded result with the Reference values.
private func expectBitwise(_ got: Tensor, _ want: Tensor, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let c = Comparison(got.scalars, want.scalars)
    #expect(got.shape == want.shape, "\(what): shape \(got.shape) vs \(want.shape)", sourceLocation: sourceLocation)
    #expect(c.isBitwiseEqual, "\(what): \(c)", sourceLocation: sourceLocation)
}

/// The loss `op` writes to slot 2 of a (1,4) loss matrix (the other slots must stay untouched).
private func loss(
    on cpu: CPUBackend, _ y: Tensor, _ t: Tensor,
    _ op: (DeviceMatrix, DeviceMatrix, DeviceMatrix, Int) throws -> Void
) throws -> Float {
    let l = try cpu.upload([7, 7, 7, 7], rows: 1, cols: 4)
    try op(try cpu.upload(y), try cpu.upload(t), l, 2)
    let got = try cpu.download(l).scalars
    #expect(got[0] == 7 && got[1] == 7 && got[3] == 7)
    return got[2]
}

@Suite("Training ops: Reference")
struct ReferenceTrainingTests {
    @Test("the book's cross-entropy and sum-of-squares examples")
    func bookLosses() throws {
        let y = try Tensor(rows: [[0.1, 0.05, 0.6, 0, 0.05, 0.1, 0, 0.1, 0, 0]])
        let t2 = try Tensor(rows: [[2]]), t7 = try Tensor(rows: [[7]])
        // -log(0.6 + 1e-7) = 0.510825457..., -log(0.1 + 1e-7) = 2.30258409...
        #expect(abs(try Reference.crossEntropy(y, targets: t2) - 0.510825457) <= 1e-7)
        #expect(abs(try Reference.crossEntropy(y, targets: t7) - 2.30258409) <= 3e-7)
        // One-hot targets give the same numbers (1 * log(...) is exact, 0 * log(...) adds ±0).
        #expect(try Reference.crossEntropy(y, targets: oneHot(t2, classes: 10)) == Reference.crossEntropy(y, targets: t2))
        #expect(try Reference.crossEntropy(y, targets: oneHot(t7, classes: 10)) == Reference.crossEntropy(y, targets: t7))
        // 0.5 * Σ (y - t)²: 0.0975 and 0.5975 in the book.
        #expect(abs(try Reference.sumOfSquares(y, targets: oneHot(t2, classes: 10)) - 0.0975) <= 1e-7)
        #expect(abs(try Reference.sumOfSquares(y, targets: oneHot(t7, classes: 10)) - 0.5975) <= 1e-7)
        // Batch form: the mean of the rows.
        let yy = try Tensor(shape: [2, 10], scalars: y.scalars + y.scalars)
        let both = try Reference.crossEntropy(yy, targets: try Tensor(rows: [[2], [7]]))
        #expect(abs(both - (0.510825457 + 2.30258409) / 2) <= 3e-7)
    }

    @Test("cross-entropy: invalid labels give NaN, N = 0 gives NaN, C = 1 targets are one-hot")
    func crossEntropyRules() throws {
        let y = try Tensor(rows: [[0.2, 0.8], [0.5, 0.5]])
        for bad: Float in [.nan, -1, 2, 0.5, .infinity, -.infinity, 1e30] {
            let l = try Reference.crossEntropy(y, targets: try Tensor(rows: [[1], [bad]]))
            #expect(l.bitPattern == Numerics.canonicalNaN.bitPattern, "label \(bad)")
            // The backward subtracts nothing for the bad row and stays finite.
            let dx = try Reference.softmaxCrossEntropyBackward(y, targets: try Tensor(rows: [[1], [bad]]))
            #expect(dx.scalars == [0.1, (0.8 - 1) / 2, 0.25, 0.25])
        }
        // -0 is the integer 0.
        #expect(try Reference.crossEntropy(y, targets: try Tensor(rows: [[-0.0], [0]])) > 0)
        let empty = try Reference.crossEntropy(Tensor(zeros: [0, 3]), targets: Tensor(zeros: [0, 1]))
        #expect(empty.bitPattern == Numerics.canonicalNaN.bitPattern)
        // C = 1: t (N,1) is one-hot, as the book's `t.size == y.size` decides; t = 0 gives 0 loss.
        let one = try Reference.crossEntropy(try Tensor(rows: [[0.5]]), targets: try Tensor(rows: [[0]]))
        #expect(one == 0)
        #expect(throws: ShapeError.self) { try Reference.crossEntropy(y, targets: Tensor(zeros: [2, 3])) }
        #expect(throws: ShapeError.self) { try Reference.crossEntropy(y, targets: Tensor(zeros: [3, 1])) }
    }

    @Test("hand-computed products, column sums and activation gradients")
    func smallCases() throws {
        let a = try Tensor(rows: [[1, 2], [3, 4], [5, 6]])  // (3,2)
        let b = try Tensor(rows: [[1, 0, -1], [2, 1, 0], [0, 1, 1]])  // (3,3)
        // aᵀ · b = [[1+6+0, 0+3+5, -1+0+5], [2+8+0, 0+4+6, -2+0+6]]
        #expect(try Reference.matmulTransposedA(a, b).scalars == [7, 8, 4, 10, 10, 4])
        // a · aᵀ (3,3)
        #expect(try Reference.matmulTransposedB(a, a).scalars == [5, 11, 17, 11, 25, 39, 17, 39, 61])
        #expect(try Reference.sumColumns(a).scalars == [9, 12])
        #expect(try Reference.sumColumns(a).shape == [1, 2])
        #expect(try Reference.sumColumns(Tensor(zeros: [0, 3])).scalars == [0, 0, 0])
        // A column of -0 sums to +0 (the sum starts at +0).
        #expect(try Reference.sumColumns(Tensor(rows: [[-0.0], [-0.0]])).scalars[0].bitPattern == 0)
        // N = 0: aᵀ · b is all +0.
        #expect(try Reference.matmulTransposedA(Tensor(zeros: [0, 2]), Tensor(zeros: [0, 3])).scalars == [0, 0, 0, 0, 0, 0])
        let y = try Tensor(rows: [[0.5, 0.25, 0, -1, .nan]])
        let dy = try Tensor(rows: [[2, 4, 3, 5, 6]])
        #expect(try Reference.activationBackward(.sigmoid, output: y, gradient: dy).scalars[0..<4] == [0.5, 0.75, 0, -10])
        let relu = try Reference.activationBackward(.relu, output: y, gradient: dy).scalars
        #expect(relu[0..<4] == [2, 4, 0, 0] && relu[4] == 6)  // a NaN y lets dy through
        #expect(try Reference.activationBackward(.identity, output: y, gradient: dy).scalars == dy.scalars)
        #expect(throws: ShapeError.self) { try Reference.matmulTransposedA(a, Tensor(zeros: [2, 3])) }
        #expect(throws: ShapeError.self) { try Reference.matmulTransposedB(a, Tensor(zeros: [2, 3])) }
    }

    @Test("update rules: one step by hand, state checks")
    func updateByHand() throws {
        var p = try Tensor(rows: [[1, -2]])
        let g = try Tensor(rows: [[0.5, -4]])
        var none: [Tensor] = []
        try Reference.update(.sgd(lr: 0.5), parameter: &p, gradient: g, state: &none)
        #expect(p.scalars == [0.75, 0])
        var v = [Tensor(zeros: [1, 2])]
        try Reference.update(.momentum(lr: 0.25, momentum: 0.5), parameter: &p, gradient: g, state: &v)
        #expect(v[0].scalars == [-0.125, 1] && p.scalars == [0.625, 1])
        var h = [Tensor(zeros: [1, 2])]
        p = try Tensor(rows: [[1, 1]])
        try Reference.update(.adaGrad(lr: 1), parameter: &p, gradient: g, state: &h)
        #expect(h[0].scalars == [0.25, 16])
        #expect(p.scalars[0] == 1 - 0.5 / (0.5 + Numerics.optimizerEpsilon))
        var mv = [Tensor(zeros: [1, 2]), Tensor(zeros: [1, 2])]
        p = try Tensor(rows: [[1, 1]])
        try Reference.update(.adam(lrT: 0.5, oneMinusBeta1: 0.5, oneMinusBeta2: 0.25), parameter: &p, gradient: g, state: &mv)
        #expect(mv[0].scalars == [0.25, -2] && mv[1].scalars == [0.0625, 4])
        #expect(p.scalars[1] == 1 - (0.5 * -2) / (2 + Numerics.optimizerEpsilon))
        #expect(throws: ShapeError.self) { try Reference.update(.adaGrad(lr: 1), parameter: &p, gradient: g, state: &none) }
        var wrong = [Tensor(zeros: [2, 1])]
        #expect(throws: ShapeError.self) { try Reference.update(.adaGrad(lr: 1), parameter: &p, gradient: g, state: &wrong) }
    }

    @Test("products, sums and losses agree with Double math")
    func againstDouble() throws {
        let a = randomTensor(37, 23, seed: 41), b = randomTensor(37, 19, seed: 42)
        let c = try Reference.matmulTransposedA(a, b)
        let d = try Reference.matmulTransposedB(a.transposedForTest(), b.transposedForTest())
        for i in 0..<23 {
            for j in 0..<19 {
                var s = 0.0, mag = 0.0
                for n in 0..<37 {
                    let x = Double(a.scalars[n * 23 + i]) * Double(b.scalars[n * 19 + j])
                    s += x; mag += abs(x)
                }
                #expect(abs(Double(c.scalars[i * 19 + j]) - s) <= 1e-6 * mag + 1e-30)
                #expect(abs(Double(d.scalars[i * 19 + j]) - s) <= 1e-6 * mag + 1e-30)
            }
        }
        let col = try Reference.sumColumns(a)
        for j in 0..<23 {
            let s = (0..<37).reduce(0.0) { $0 + Double(a.scalars[$1 * 23 + j]) }
            #expect(abs(Double(col.scalars[j]) - s) <= 1e-5)
        }
        let y = try probabilities(50, 10, seed: 43), t = labels(50, classes: 10, seed: 44)
        let ce = (0..<50).reduce(0.0) { acc, i in
            acc - Foundation.log(Double(y.scalars[i * 10 + Int(t.scalars[i])]) + 1e-7)
        } / 50
        #expect(abs(Double(try Reference.crossEntropy(y, targets: t)) - ce) <= 1e-6 * ce)
        let ssq = zip(y.scalars, oneHot(t, classes: 10).scalars).reduce(0.0) { $0 + 0.5 * pow(Double($1.0 - $1.1), 2) }
        #expect(abs(Double(try Reference.sumOfSquares(y, targets: oneHot(t, classes: 10))) - ssq) <= 1e-6 * ssq)
    }
}

extension Tensor {
    /// The transpose of a matrix (for building aᵀ / bᵀ operands in tests).
    fileprivate func transposedForTest() -> Tensor {
        let (r, c) = matrixShape
        var out = Tensor(zeros: [c, r])
        for i in 0..<r { for j in 0..<c { out.scalars[j * r + i] = scalars[i * c + j] } }
        return out
    }
}

@Suite("Training ops: CPUBackend equals Reference")
struct TrainingOpsTests {
    /// (N, K, M) of aᵀ · b with a (N,K), b (N,M): tails of the 6-row and 8/16-column tiles, the TwoLayerNet
    /// weight gradients (dW1 784×50 over batch 100, dW2 50×10), packing (M ≥ 128), K blocks (N > 1024), N = 0.
    static let transposedAShapes: [(Int, Int, Int)] = [
        (1, 1, 1), (7, 33, 1), (1, 7, 33), (33, 17, 9), (100, 784, 50), (100, 50, 10), (13, 12, 8),
        (5, 25, 24), (9, 37, 140), (1100, 13, 20), (0, 5, 7), (4, 0, 3), (4, 3, 0), (1, 784, 50),
    ]
    /// (N, M, K) of a · bᵀ with a (N,M), b (K,M): dx2 (100,10)·(50,10)ᵀ, dx1 (100,50)·(784,50)ᵀ, tails, M = 0.
    static let transposedBShapes: [(Int, Int, Int)] = [
        (1, 1, 1), (7, 33, 1), (1, 7, 33), (33, 17, 9), (100, 10, 50), (100, 50, 784), (13, 12, 8),
        (6, 24, 25), (7, 1100, 20), (0, 5, 7), (4, 0, 3), (4, 3, 0), (1, 50, 784),
    ]

    @Test("matmulTransposedA equals Reference bitwise", arguments: [1, 3])
    func transposedA(threads: Int) throws {
        let cpu = CPUBackend(threads: threads)
        for (i, (n, k, m)) in Self.transposedAShapes.enumerated() {
            for specials in [false, true] {
                var a = randomTensor(n, k, seed: UInt64(2 * i + 1)), b = randomTensor(n, m, seed: UInt64(2 * i + 2))
                if specials { a = withSpecials(a); b = withSpecials(b) }
                let c = try cpu.makeMatrix(rows: k, cols: m)
                try cpu.matmulTransposedA(try cpu.upload(a), try cpu.upload(b), into: c)
                expectBitwise(try cpu.download(c), try Reference.matmulTransposedA(a, b), "aᵀ·b (\(n),\(k),\(m)) \(specials)")
            }
        }
    }

    @Test("matmulTransposedB equals Reference bitwise", arguments: [1, 3])
    func transposedB(threads: Int) throws {
        let cpu = CPUBackend(threads: threads)
        for (i, (n, m, k)) in Self.transposedBShapes.enumerated() {
            for specials in [false, true] {
                var a = randomTensor(n, m, seed: UInt64(2 * i + 11)), b = randomTensor(k, m, seed: UInt64(2 * i + 12))
                if specials { a = withSpecials(a); b = withSpecials(b) }
                let c = try cpu.makeMatrix(rows: n, cols: k)
                try cpu.matmulTransposedB(try cpu.upload(a), try cpu.upload(b), into: c)
                expectBitwise(try cpu.download(c), try Reference.matmulTransposedB(a, b), "a·bᵀ (\(n),\(m),\(k)) \(specials)")
            }
        }
    }

    @Test("sumColumns equals Reference bitwise")
    func sumColumns() throws {
        for cpu in backends {
            for (n, m) in [(1, 1), (7, 33), (100, 50), (100, 10), (33, 17), (0, 5), (5, 0), (1, 7), (3, 8), (2, 31),
                           (9, 32), (4, 65), (1000, 100), (2, 1)]
            {
                for specials in [false, true] {
                    var x = randomTensor(n, m, in: -1e3...1e3, seed: UInt64(n * 101 + m))
                    if specials { x = withSpecials(x) }
                    if m > 2 && n > 0 { for r in 0..<n { x.scalars[r * m + 1] = -0.0 } }  // a column of -0: +0
                    let y = try cpu.makeMatrix(rows: 1, cols: m)
                    try cpu.sumColumns(try cpu.upload(x), into: y)
                    expectBitwise(try cpu.download(y), try Reference.sumColumns(x), "(\(n),\(m)) \(specials)")
                }
            }
        }
    }

    @Test("activationBackward equals Reference bitwise, in place too", arguments: Activation.allCases)
    func activationBackward(activation: Activation) throws {
        let cpu = backends[0]
        for (n, m) in [(1, 1), (7, 33), (100, 50), (33, 17), (0, 5), (1, 7), (2, 8)] {
            var y = try Reference.apply(activation, randomTensor(n, m, in: -4...4, seed: UInt64(n * 7 + m)))
            var dy = randomTensor(n, m, seed: UInt64(n * 13 + m))
            // Specials in both; y = 0 and -0 exactly (the relu mask), NaN y (lets dy through).
            y = withSpecials(y)
            dy = withSpecials(dy)
            if y.count > 12 { y.scalars[9] = 0; y.scalars[10] = -0.0; y.scalars[11] = .nan; dy.scalars[11] = 5 }
            let want = try Reference.activationBackward(activation, output: y, gradient: dy)
            let dyM = try cpu.upload(dy), dx = try cpu.makeMatrix(rows: n, cols: m)
            try cpu.activationBackward(activation, output: try cpu.upload(y), gradient: dyM, into: dx)
            expectBitwise(try cpu.download(dx), want, "\(activation) (\(n),\(m))")
            try cpu.activationBackward(activation, output: try cpu.upload(y), gradient: dyM, into: dyM)
            expectBitwise(try cpu.download(dyM), want, "\(activation) in place (\(n),\(m))")
        }
    }

    @Test("crossEntropy and softmaxCrossEntropyBackward equal Reference bitwise, labels and one-hot")
    func softmaxWithLoss() throws {
        for cpu in backends {
            for (n, c) in [(1, 1), (1, 10), (100, 10), (7, 33), (33, 7), (3, 8), (5, 17), (0, 10), (1000, 10)] {
                let y = try probabilities(n, c, seed: UInt64(n * 3 + c))
                let lab = labels(n, classes: c, seed: UInt64(n + c))
                var targets: [(String, Tensor)] = [("one-hot", oneHot(lab, classes: c))]
                if c > 1 {
                    var bad = lab
                    let invalid: [Float] = [.nan, -1, Float(c), 0.5, .infinity, -0.0, -.infinity, 1e30]
                    for (i, v) in invalid.enumerated() where i < n { bad.scalars[(i * 37) % n] = v }
                    targets += [("labels", lab), ("labels with invalid ones", bad)]
                }
                // A soft target (probabilities) with specials in y too.
                targets.append(("soft", try probabilities(n, c, seed: 99)))
                for (name, t) in targets {
                    for yy in [y, withSpecials(y)] {
                        let want = try Reference.crossEntropy(yy, targets: t)
                        let got = try loss(on: cpu, yy, t) { try cpu.crossEntropy($0, targets: $1, into: $2, at: $3) }
                        #expect(got.bitPattern == want.bitPattern, "crossEntropy \(name) (\(n),\(c)): \(got) vs \(want)")
                        let wantDx = try Reference.softmaxCrossEntropyBackward(yy, targets: t)
                        let dy = try cpu.upload(yy), dt = try cpu.upload(t), dx = try cpu.makeMatrix(rows: n, cols: c)
                        try cpu.softmaxCrossEntropyBackward(dy, targets: dt, into: dx)
                        expectBitwise(try cpu.download(dx), wantDx, "backward \(name) (\(n),\(c))")
                        try cpu.softmaxCrossEntropyBackward(dy, targets: dt, into: dy)
                        expectBitwise(try cpu.download(dy), wantDx, "backward in place \(name) (\(n),\(c))")
                    }
                }
            }
        }
        // The book's example through the backend.
        let cpu = backends[0]
        let y = try Tensor(rows: [[0.1, 0.05, 0.6, 0, 0.05, 0.1, 0, 0.1, 0, 0]])
        let got = try loss(on: cpu, y, try Tensor(rows: [[2]])) { try cpu.crossEntropy($0, targets: $1, into: $2, at: $3) }
        #expect(abs(got - 0.510825457) <= 1e-7)
    }

    @Test("sumOfSquares equals Reference bitwise")
    func sumOfSquares() throws {
        let cpu = backends[0]
        for (n, m) in [(1, 1), (1, 10), (100, 10), (7, 33), (0, 4), (3, 0), (1000, 17)] {
            for specials in [false, true] {
                var y = randomTensor(n, m, seed: UInt64(n * 5 + m)), t = randomTensor(n, m, seed: UInt64(n * 9 + m))
                if specials { y = withSpecials(y) }
                let want = try Reference.sumOfSquares(y, targets: t)
                let got = try loss(on: cpu, y, t) { try cpu.sumOfSquares($0, targets: $1, into: $2, at: $3) }
                #expect(got.bitPattern == want.bitPattern, "(\(n),\(m)) \(specials): \(got) vs \(want)")
            }
        }
    }

    static let rules: [UpdateRule] = [
        .sgd(lr: 0.1), .momentum(lr: 0.01, momentum: 0.9), .adaGrad(lr: 0.01),
        .adam(lrT: 0x1.2p-10, oneMinusBeta1: 0x1.99999ap-4, oneMinusBeta2: 0x1.06p-10),
    ]

    @Test("update equals Reference bitwise over several steps", arguments: rules)
    func update(rule: UpdateRule) throws {
        for cpu in backends {
            // (300, 300) is above the threading threshold of AdaGrad and Adam.
            for (n, m) in [(1, 1), (7, 33), (1, 10), (784, 50), (300, 300), (0, 3)] {
                var p = randomTensor(n, m, seed: UInt64(n + m))
                var state = (0..<rule.stateCount).map { _ in Tensor(zeros: [n, m]) }
                let dp = try cpu.upload(p)
                let dstate = try state.map { try cpu.upload($0) }
                for step in 0..<4 {
                    var g = randomTensor(n, m, seed: UInt64(100 * step + n))
                    if step == 2 { g = withSpecials(g) }
                    try Reference.update(rule, parameter: &p, gradient: g, state: &state)
                    try cpu.update(rule, parameter: dp, gradient: try cpu.upload(g), state: dstate)
                    expectBitwise(try cpu.download(dp), p, "\(rule) p (\(n),\(m)) step \(step)")
                    for (s, d) in zip(state, dstate) {
                        expectBitwise(try cpu.download(d), s, "\(rule) state (\(n),\(m)) step \(step)")
                    }
                }
            }
        }
    }

    @Test("an in-place update invalidates the packed copy of the weights")
    func updateInvalidatesPackedWeights() throws {
        let cpu = backends[1]
        let x = randomTensor(100, 784, in: 0...1, seed: 61)
        var w = randomTensor(784, 50, seed: 62)
        let dx = try cpu.upload(x), dw = try cpu.upload(w)
        let y = try cpu.makeMatrix(rows: 100, cols: 50)
        try cpu.matmul(dx, dw, into: y)  // packs W
        expectBitwise(try cpu.download(y), try Reference.matmul(x, w), "before")
        for rule in Self.rules {
            let g = randomTensor(784, 50, seed: 63)
            var state = (0..<rule.stateCount).map { _ in Tensor(zeros: [784, 50]) }
            try Reference.update(rule, parameter: &w, gradient: g, state: &state)
            try cpu.update(rule, parameter: dw, gradient: try cpu.upload(g), state: try state.map { _ in try cpu.upload(Tensor(zeros: [784, 50])) })
            try cpu.matmul(dx, dw, into: y)
            expectBitwise(try cpu.download(y), try Reference.matmul(x, w), "after \(rule)")
        }
        // The backward products do not disturb the forward's cache either.
        let dout = try cpu.upload(randomTensor(100, 50, seed: 64))
        let dW = try cpu.makeMatrix(rows: 784, cols: 50), dX = try cpu.makeMatrix(rows: 100, cols: 784)
        try cpu.matmulTransposedA(dx, dout, into: dW)
        try cpu.matmulTransposedB(dout, dw, into: dX)
        try cpu.matmul(dx, dw, into: y)
        expectBitwise(try cpu.download(y), try Reference.matmul(x, w), "after the backward products")
    }

    @Test("a whole TwoLayerNet SGD step equals Reference bitwise")
    func twoLayerNetStep() throws {
        for cpu in backends {
            let x = randomTensor(100, 784, in: 0...1, seed: 71), lab = labels(100, classes: 10, seed: 72)
            var w1 = randomTensor(784, 50, in: -0.05...0.05, seed: 73), b1 = Tensor(zeros: [1, 50])
            var w2 = randomTensor(50, 10, in: -0.05...0.05, seed: 74), b2 = Tensor(zeros: [1, 10])
            let dx = try cpu.upload(x), dt = try cpu.upload(lab)
            let dW1 = try cpu.upload(w1), db1 = try cpu.upload(b1), dW2 = try cpu.upload(w2), db2 = try cpu.upload(b2)
            let z1 = try cpu.makeMatrix(rows: 100, cols: 50), a2 = try cpu.makeMatrix(rows: 100, cols: 10)
            let gW1 = try cpu.makeMatrix(rows: 784, cols: 50), gb1 = try cpu.makeMatrix(rows: 1, cols: 50)
            let gW2 = try cpu.makeMatrix(rows: 50, cols: 10), gb2 = try cpu.makeMatrix(rows: 1, cols: 10)
            let dz1 = try cpu.makeMatrix(rows: 100, cols: 50), lossM = try cpu.makeMatrix(rows: 1, cols: 3)
            var none: [Tensor] = []
            for step in 0..<3 {
                // Reference
                let rz1 = try Reference.affine(x, w1, bias: b1, activation: .sigmoid)
                let ry = try Reference.softmaxRows(try Reference.affine(rz1, w2, bias: b2, activation: .identity))
                let rloss = try Reference.crossEntropy(ry, targets: lab)
                let rdy = try Reference.softmaxCrossEntropyBackward(ry, targets: lab)
                let rgW2 = try Reference.matmulTransposedA(rz1, rdy), rgb2 = try Reference.sumColumns(rdy)
                let rdz1 = try Reference.activationBackward(.sigmoid, output: rz1, gradient: try Reference.matmulTransposedB(rdy, w2))
                let rgW1 = try Reference.matmulTransposedA(x, rdz1), rgb1 = try Reference.sumColumns(rdz1)
                try Reference.update(.sgd(lr: 0.1), parameter: &w1, gradient: rgW1, state: &none)
                try Reference.update(.sgd(lr: 0.1), parameter: &b1, gradient: rgb1, state: &none)
                try Reference.update(.sgd(lr: 0.1), parameter: &w2, gradient: rgW2, state: &none)
                try Reference.update(.sgd(lr: 0.1), parameter: &b2, gradient: rgb2, state: &none)
                // CPUBackend
                try cpu.affine(dx, dW1, bias: db1, activation: .sigmoid, into: z1)
                try cpu.affine(z1, dW2, bias: db2, activation: .identity, into: a2)
                try cpu.softmaxRows(a2, into: a2)
                try cpu.crossEntropy(a2, targets: dt, into: lossM, at: step)
                try cpu.softmaxCrossEntropyBackward(a2, targets: dt, into: a2)
                try cpu.matmulTransposedA(z1, a2, into: gW2)
                try cpu.sumColumns(a2, into: gb2)
                try cpu.matmulTransposedB(a2, dW2, into: dz1)
                try cpu.activationBackward(.sigmoid, output: z1, gradient: dz1, into: dz1)
                try cpu.matmulTransposedA(dx, dz1, into: gW1)
                try cpu.sumColumns(dz1, into: gb1)
                try cpu.update(.sgd(lr: 0.1), parameter: dW1, gradient: gW1, state: [])
                try cpu.update(.sgd(lr: 0.1), parameter: db1, gradient: gb1, state: [])
                try cpu.update(.sgd(lr: 0.1), parameter: dW2, gradient: gW2, state: [])
                try cpu.update(.sgd(lr: 0.1), parameter: db2, gradient: gb2, state: [])
                #expect(try cpu.download(lossM).scalars[step].bitPattern == rloss.bitPattern, "step \(step)")
                expectBitwise(try cpu.download(dW1), w1, "W1 step \(step)")
                expectBitwise(try cpu.download(db1), b1, "b1 step \(step)")
                expectBitwise(try cpu.download(dW2), w2, "W2 step \(step)")
                expectBitwise(try cpu.download(db2), b2, "b2 step \(step)")
            }
            #expect(try cpu.download(lossM).scalars.allSatisfy { $0 > 2 && $0 < 2.5 })
        }
    }

    @Test("shape mismatches and aliasing throw with the shapes in the message")
    func shapeErrors() throws {
        let cpu = backends[0]
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        let a = try cpu.makeMatrix(rows: 4, cols: 3), b = try cpu.makeMatrix(rows: 5, cols: 2)
        let c32 = try cpu.makeMatrix(rows: 3, cols: 2), c4 = try cpu.makeMatrix(rows: 4, cols: 5)
        let m1 = message { try cpu.matmulTransposedA(a, b, into: c32) }
        #expect(m1.contains("matmulTransposedA") && m1.contains("(4,3)") && m1.contains("(5,2)"), "\(m1)")
        let m2 = message { try cpu.matmulTransposedB(a, b, into: c4) }
        #expect(m2.contains("matmulTransposedB") && m2.contains("(4,3)") && m2.contains("(5,2)"), "\(m2)")
        #expect(message { try cpu.sumColumns(a, into: c32) }.contains("needs (1,3)"))
        #expect(message { try cpu.activationBackward(.relu, output: a, gradient: b, into: a) }.contains("activationBackward"))
        let y = try cpu.makeMatrix(rows: 4, cols: 10), l = try cpu.makeMatrix(rows: 1, cols: 2)
        let m3 = message { try cpu.crossEntropy(y, targets: a, into: l, at: 0) }
        #expect(m3.contains("(4,3)") && m3.contains("(4,10)") && m3.contains("(4,1)"), "\(m3)")
        let t = try cpu.makeMatrix(rows: 4, cols: 1)
        #expect(message { try cpu.crossEntropy(y, targets: t, into: l, at: 2) }.contains("no slot 2"))
        #expect(message { try cpu.crossEntropy(y, targets: t, into: l, at: -1) }.contains("no slot -1"))
        #expect(message { try cpu.crossEntropy(y, targets: t, into: a, at: 0) }.contains("(1,L)"))
        #expect(message { try cpu.sumOfSquares(y, targets: t, into: l, at: 0) }.contains("sumOfSquares"))
        #expect(message { try cpu.softmaxCrossEntropyBackward(y, targets: t, into: a) }.contains("dx (4,3)"))
        #expect(message { try cpu.update(.sgd(lr: 1), parameter: a, gradient: b, state: []) }.contains("gradient (5,2)"))
        #expect(message { try cpu.update(.adam(lrT: 1, oneMinusBeta1: 1, oneMinusBeta2: 1), parameter: a, gradient: a, state: [a]) }
            .contains("2 state"))
        #expect(message { try cpu.update(.momentum(lr: 1, momentum: 1), parameter: a, gradient: a, state: [c4]) }
            .contains("state[0] (4,5)"))
        // Aliasing: outputs of the products and sums, state matrices.
        let sq = try cpu.makeMatrix(rows: 3, cols: 3), g = try cpu.makeMatrix(rows: 3, cols: 3)
        #expect(message { try cpu.matmulTransposedA(sq, sq, into: sq) }.contains("must not be one of the inputs"))
        #expect(message { try cpu.matmulTransposedB(sq, g, into: sq) }.contains("must not be one of the inputs"))
        let row = try cpu.makeMatrix(rows: 1, cols: 3)
        #expect(message { try cpu.sumColumns(row, into: row) }.contains("must not be one of the inputs"))
        #expect(message { try cpu.update(.adaGrad(lr: 1), parameter: sq, gradient: g, state: [sq]) }.contains("state[0]"))
        #expect(message { try cpu.update(.adaGrad(lr: 1), parameter: sq, gradient: g, state: [g]) }.contains("state[0]"))
        let h = try cpu.makeMatrix(rows: 3, cols: 3)
        #expect(message { try cpu.update(.adam(lrT: 1, oneMinusBeta1: 1, oneMinusBeta2: 1), parameter: sq, gradient: g, state: [h, h]) }
            .contains("state[1]"))
        // p may be g (element-wise): no error.
        #expect(message { try cpu.update(.sgd(lr: 1), parameter: sq, gradient: sq, state: []) } == "no error")
    }

    @Test("a matrix from another backend is refused with foreignBuffer")
    func foreignBuffers() throws {
        let cpu = backends[0]
        let alien = DeviceMatrix(rows: 2, cols: 3, storage: AlienStorage())
        let a = try cpu.makeMatrix(rows: 2, cols: 3), sq = try cpu.makeMatrix(rows: 3, cols: 3)
        let c22 = try cpu.makeMatrix(rows: 2, cols: 2), row = try cpu.makeMatrix(rows: 1, cols: 3)
        let t = try cpu.makeMatrix(rows: 2, cols: 1), l = try cpu.makeMatrix(rows: 1, cols: 1)
        let alienLoss = DeviceMatrix(rows: 1, cols: 1, storage: AlienStorage())
        let ops: [(String, () throws -> Void)] = [
            ("matmulTransposedA", { try cpu.matmulTransposedA(alien, a, into: sq) }),
            ("matmulTransposedA", { try cpu.matmulTransposedA(a, a, into: DeviceMatrix(rows: 3, cols: 3, storage: AlienStorage())) }),
            ("matmulTransposedB", { try cpu.matmulTransposedB(a, alien, into: c22) }),
            ("sumColumns", { try cpu.sumColumns(alien, into: row) }),
            ("activationBackward", { try cpu.activationBackward(.sigmoid, output: a, gradient: alien, into: a) }),
            ("crossEntropy", { try cpu.crossEntropy(alien, targets: t, into: l, at: 0) }),
            ("crossEntropy", { try cpu.crossEntropy(a, targets: t, into: alienLoss, at: 0) }),
            ("sumOfSquares", { try cpu.sumOfSquares(a, targets: alien, into: l, at: 0) }),
            ("softmaxCrossEntropyBackward", { try cpu.softmaxCrossEntropyBackward(a, targets: t, into: alien) }),
            ("update", { try cpu.update(.sgd(lr: 1), parameter: alien, gradient: a, state: []) }),
            ("update", { try cpu.update(.momentum(lr: 1, momentum: 1), parameter: a, gradient: a, state: [alien]) }),
        ]
        for (op, body) in ops {
            do {
                try body()
                Issue.record("\(op): expected foreignBuffer")
            } catch BackendError.foreignBuffer(let o, let expected) {
                #expect(o == op && expected == "CPU")
            } catch {
                Issue.record("\(op): wrong error \(error)")
            }
        }
    }
}
