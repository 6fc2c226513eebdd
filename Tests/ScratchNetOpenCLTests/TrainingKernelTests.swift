// The training ops of the OpenCL backend (Kernels/train.cl, OpenCLTraining.swift) against the scalar Reference
// loops AND against CPUBackend, compared BITWISE: odd sizes that are not multiples of the 6×16 register tile,
// the TwoLayerNet shapes (784-50-10 at batch 100), batch 1, empty batches, NaN/±inf/-0 inputs, labels and
// one-hot targets, invalid labels, and several steps of every optimizer rule (state buffers too).

import Foundation
import ScratchNet
import ScratchNetOpenCL
import Testing

/// The OpenCL backend under test, then the CPU backend it must agree with; nil (skip) without OpenCL.
private func trainingBackends(sourceLocation: SourceLocation = #_sourceLocation) -> [any Backend]? {
    guard let cl = TestDevice.backend(sourceLocation: sourceLocation) else { return nil }
    return [cl, TrainingCPU.backend]
}

private enum TrainingCPU {
    static let backend = CPUBackend()
}

/// A (rows, cols) matrix on `be` prefilled with `value` (so ops that must write every element are checked).
private func filled(_ be: any Backend, _ rows: Int, _ cols: Int, _ value: Float = .nan) throws -> DeviceMatrix {
    try be.upload([Float](repeating: value, count: rows * cols), rows: rows, cols: cols)
}

/// `t` with every third value replaced by a special value (NaN, ±inf, ±0, denormals, huge).
private func sprinkled(_ t: Tensor, offset: Int = 0) -> Tensor {
    var t = t
    for i in t.scalars.indices where i % 3 == 0 { t.scalars[i] = specialValues[(i / 3 + offset) % specialValues.count] }
    return t
}

/// Probabilities (N,C): the row softmax of random logits.
private func probabilities(_ rng: inout TestRandom, _ n: Int, _ c: Int) throws -> Tensor {
    try Reference.softmaxRows(rng.tensor(n, c, scale: 6))
}

/// Class labels (N,1) as floats and the matching one-hot targets (N,C).
private func targets(_ rng: inout TestRandom, _ n: Int, _ c: Int) throws -> (labels: Tensor, oneHot: Tensor) {
    let classes = (0..<n).map { _ in Int(rng.next() % UInt64(max(c, 1))) }
    var oneHot = Tensor(zeros: [n, c])
    for (i, k) in classes.enumerated() where c > 0 { oneHot.scalars[i * c + k] = 1 }
    return (try Tensor(shape: [n, 1], scalars: classes.map(Float.init)), oneHot)
}

/// A loss written to loss[index] of a (1,3) matrix prefilled with 7s: the value, and whether the other
/// two slots were left alone.
private func lossValue(
    _ be: any Backend, index: Int, _ op: (DeviceMatrix) throws -> Void
) throws -> (value: Float, othersKept: Bool) {
    let loss = try filled(be, 1, 3, 7)
    try op(loss)
    let got = try be.download(loss).scalars
    let others = got.indices.filter { $0 != index }.allSatisfy { got[$0] == 7 }
    return (got[index], others)
}

private func expectSameBits(
    _ got: Float, _ want: Float, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    let message = "\(what): \(got) (0x\(String(got.bitPattern, radix: 16))) vs \(want) (0x\(String(want.bitPattern, radix: 16)))"
    #expect(got.bitPattern == want.bitPattern, "\(message)", sourceLocation: sourceLocation)
}

// MARK: Transposed products

/// (N, K, M) for c (K,M) = a (N,K)ᵀ · b (N,M) and c (N,K) = a (N,M) · b (K,M)ᵀ: 1, 7, 33, tile remainders,
/// the TwoLayerNet gradients (784-50-10 at batch 100), batch 1 and empty dimensions.
let transposedShapes: [(Int, Int, Int)] = [
    (1, 1, 1), (7, 33, 17), (33, 17, 7), (7, 7, 33), (6, 6, 16), (13, 7, 31), (5, 12, 48), (100, 784, 50),
    (100, 50, 10), (1, 784, 50), (1, 50, 10), (100, 10, 50), (100, 50, 784), (0, 5, 3), (5, 0, 3), (5, 3, 0),
    (0, 0, 0), (0, 784, 50),
]

@Test(arguments: transposedShapes.indices)
func matmulTransposedAMatchesReferenceAndCPU(_ index: Int) throws {
    guard let backends = trainingBackends() else { return }
    let (n, k, m) = transposedShapes[index]
    var rng = TestRandom(seed: UInt64(1000 + index))
    let a = rng.tensor(n, k), b = rng.tensor(n, m)
    let want = try Reference.matmulTransposedA(a, b)
    for be in backends {
        let c = try filled(be, k, m)  // N = 0 must still overwrite every NaN with +0
        try be.matmulTransposedA(try be.upload(a), try be.upload(b), into: c)
        expectBitwise(try be.download(c), want, "\(be.device.id) aᵀ·b (\(n),\(k))ᵀ·(\(n),\(m))")
    }
}

@Test(arguments: transposedShapes.indices)
func matmulTransposedBMatchesReferenceAndCPU(_ index: Int) throws {
    guard let backends = trainingBackends() else { return }
    // Here the middle number is the summed dimension: a (N,M), b (K,M).
    let (n, m, k) = transposedShapes[index]
    var rng = TestRandom(seed: UInt64(2000 + index))
    let a = rng.tensor(n, m), b = rng.tensor(k, m)
    let want = try Reference.matmulTransposedB(a, b)
    for be in backends {
        let c = try filled(be, n, k)
        try be.matmulTransposedB(try be.upload(a), try be.upload(b), into: c)
        expectBitwise(try be.download(c), want, "\(be.device.id) a·bᵀ (\(n),\(m))·(\(k),\(m))ᵀ")
    }
}

@Test func transposedProductsMatchReferenceUnderEveryTuning() throws {
    // The register tile follows the tuning (SN_TM×SN_TN): the GPU tuning's 4×8 tiles and 16×4 work-groups,
    // 5×8 tiles, both CPU traversal settings; tails narrower and wider than 8 columns.
    var rng = TestRandom(seed: 5)
    let shapes = [(13, 7, 17), (100, 784, 50), (33, 17, 7), (1, 9, 40), (100, 10, 50), (0, 5, 3)]
    let cases = shapes.map { (n, k, m) in
        (n, k, m, rng.tensor(n, k), rng.tensor(n, m), rng.tensor(m, k))
    }
    for be in TunedDevices.all() {
        for (n, k, m, a, b, bt) in cases {
            let c = try filled(be, k, m)
            try be.matmulTransposedA(try be.upload(a), try be.upload(b), into: c)
            expectBitwise(try be.download(c), try Reference.matmulTransposedA(a, b), "aᵀ·b \(be.tuning) (\(n),\(k),\(m))")
            let d = try filled(be, n, m)
            try be.matmulTransposedB(try be.upload(a), try be.upload(bt), into: d)
            expectBitwise(try be.download(d), try Reference.matmulTransposedB(a, bt), "a·bᵀ \(be.tuning) (\(n),\(k),\(m))")
        }
    }
}

@Test func transposedProductsPropagateSpecialValues() throws {
    guard let backends = trainingBackends() else { return }
    var rng = TestRandom(seed: 3)
    let a = sprinkled(rng.tensor(9, 13)), b = sprinkled(rng.tensor(9, 21), offset: 5)
    let bt = sprinkled(rng.tensor(21, 13), offset: 2)
    let wantA = try Reference.matmulTransposedA(a, b), wantB = try Reference.matmulTransposedB(a, bt)
    #expect(wantA.scalars.contains { $0.isNaN } && wantB.scalars.contains { $0.isNaN })
    for be in backends {
        let (da, db, dbt) = (try be.upload(a), try be.upload(b), try be.upload(bt))
        let c = try be.makeMatrix(rows: 13, cols: 21)
        try be.matmulTransposedA(da, db, into: c)
        expectBitwise(try be.download(c), wantA, "\(be.device.id) aᵀ·b with NaN/inf")
        let d = try be.makeMatrix(rows: 9, cols: 21)
        try be.matmulTransposedB(da, dbt, into: d)
        expectBitwise(try be.download(d), wantB, "\(be.device.id) a·bᵀ with NaN/inf")
    }
}

@Test func transposedProductsOfNegativeZerosArePositiveZero() throws {
    // Every sum starts at +0: (-0)·1 accumulated onto +0 gives +0.
    guard let backends = trainingBackends() else { return }
    let a = try Tensor(shape: [2, 2], scalars: [-0.0, -0.0, -0.0, -0.0])
    let b = try Tensor(shape: [2, 2], scalars: [1, 1, 1, 1])
    for be in backends {
        let c = try filled(be, 2, 2)
        try be.matmulTransposedA(try be.upload(a), try be.upload(b), into: c)
        #expect(try be.download(c).scalars.map(\.bitPattern) == [0, 0, 0, 0], "\(be.device.id) aᵀ·b")
        try be.matmulTransposedB(try be.upload(a), try be.upload(b), into: c)
        #expect(try be.download(c).scalars.map(\.bitPattern) == [0, 0, 0, 0], "\(be.device.id) a·bᵀ")
    }
}

// MARK: Column sums and activation backward

let trainingRowShapes: [(Int, Int)] = [
    (1, 1), (7, 33), (33, 17), (100, 50), (100, 10), (1, 50), (1000, 7), (3, 1000), (0, 10), (5, 0), (0, 0),
]

@Test(arguments: trainingRowShapes.indices)
func sumColumnsMatchesReferenceAndCPU(_ index: Int) throws {
    guard let backends = trainingBackends() else { return }
    let (n, m) = trainingRowShapes[index]
    var rng = TestRandom(seed: UInt64(3000 + index))
    // Mixed magnitudes make the sum order visible in the bits.
    var x = rng.tensor(n, m, scale: 4)
    for i in x.scalars.indices where i % 5 == 0 { x.scalars[i] *= 0x1p20 }
    let want = try Reference.sumColumns(x)
    for be in backends {
        let y = try filled(be, 1, m)
        try be.sumColumns(try be.upload(x), into: y)
        expectBitwise(try be.download(y), want, "\(be.device.id) sumColumns (\(n),\(m))")
    }
}

@Test func sumColumnsOfSpecialValuesAndNegativeZeros() throws {
    guard let backends = trainingBackends() else { return }
    var rng = TestRandom(seed: 31)
    let x = sprinkled(rng.tensor(11, 9))
    let zeros = try Tensor(shape: [3, 2], scalars: [-0.0, -0.0, -0.0, -0.0, -0.0, -0.0])
    for be in backends {
        let y = try be.makeMatrix(rows: 1, cols: 9)
        try be.sumColumns(try be.upload(x), into: y)
        expectBitwise(try be.download(y), try Reference.sumColumns(x), "\(be.device.id) sumColumns NaN/inf")
        let z = try be.makeMatrix(rows: 1, cols: 2)
        try be.sumColumns(try be.upload(zeros), into: z)
        #expect(try be.download(z).scalars.map(\.bitPattern) == [0, 0], "\(be.device.id): +0 + -0 is +0")
    }
}

@Test(arguments: trainingRowShapes.indices, Activation.allCases)
func activationBackwardMatchesReferenceAndCPU(_ index: Int, _ activation: Activation) throws {
    guard let backends = trainingBackends() else { return }
    let (n, m) = trainingRowShapes[index]
    var rng = TestRandom(seed: UInt64(4000 + index))
    // y as the forward pass leaves it, with special values in both y and dy (including y = ±0 for relu's mask,
    // and a NaN with a payload and sign that must come out canonical).
    let x = rng.tensor(n, m, scale: 5)
    var y = sprinkled(try Reference.apply(activation, x), offset: 1)
    var dy = sprinkled(rng.tensor(n, m, scale: 3), offset: 4)
    for i in y.scalars.indices where i % 7 == 1 { y.scalars[i] = -0.0 }
    for i in dy.scalars.indices where i % 11 == 2 { dy.scalars[i] = Float(bitPattern: 0xFFC0_1234) }
    let want = try Reference.activationBackward(activation, output: y, gradient: dy)
    for be in backends {
        let (dyv, dyd) = (try be.upload(y), try be.upload(dy))
        let dx = try filled(be, n, m)
        try be.activationBackward(activation, output: dyv, gradient: dyd, into: dx)
        expectBitwise(try be.download(dx), want, "\(be.device.id) \(activation) backward (\(n),\(m))")
        try be.activationBackward(activation, output: dyv, gradient: dyd, into: dyd)  // dx = dy in place
        expectBitwise(try be.download(dyd), want, "\(be.device.id) \(activation) backward in place (\(n),\(m))")
    }
}

// MARK: Losses

/// (N, C) for the losses: the TwoLayerNet output (100,10), batch 1, one class, more rows than the loss
/// kernel's work-group (64) and not a multiple of it, and an empty batch.
let lossShapes: [(Int, Int)] = [(1, 1), (1, 10), (7, 33), (33, 17), (100, 10), (64, 3), (1000, 10), (129, 1), (0, 10)]

@Test(arguments: lossShapes.indices)
func crossEntropyMatchesReferenceAndCPU(_ index: Int) throws {
    guard let backends = trainingBackends() else { return }
    let (n, c) = lossShapes[index]
    var rng = TestRandom(seed: UInt64(5000 + index))
    let y = try probabilities(&rng, n, c)
    let (labels, oneHot) = try targets(&rng, n, c)
    // One-hot targets with soft values too (the book allows any t of y's shape).
    let soft = try Tensor(shape: [n, c], scalars: (0..<(n * c)).map { _ in abs(rng.float()) })
    for (t, form) in [(labels, "labels"), (oneHot, "one-hot"), (soft, "soft")] {
        let want = try Reference.crossEntropy(y, targets: t)
        if n > 0 { #expect(want.isFinite, "\(form) (\(n),\(c))") }
        for be in backends {
            let (dy, dt) = (try be.upload(y), try be.upload(t))
            let got = try lossValue(be, index: 1) { try be.crossEntropy(dy, targets: dt, into: $0, at: 1) }
            expectSameBits(got.value, want, "\(be.device.id) crossEntropy \(form) (\(n),\(c))")
            #expect(got.othersKept, "\(be.device.id) crossEntropy wrote outside loss[1]")
        }
    }
}

@Test func crossEntropyOfAnEmptyBatchIsNaN() throws {
    guard let backends = trainingBackends() else { return }
    for be in backends {
        for cols in [1, 10] {
            let (y, t) = (try be.makeMatrix(rows: 0, cols: 10), try be.makeMatrix(rows: 0, cols: cols))
            let got = try lossValue(be, index: 0) { try be.crossEntropy(y, targets: t, into: $0, at: 0) }
            expectSameBits(got.value, Numerics.canonicalNaN, "\(be.device.id) crossEntropy N = 0")
        }
    }
}

@Test func crossEntropyWithInvalidLabelsAndSpecialProbabilities() throws {
    guard let backends = trainingBackends() else { return }
    var rng = TestRandom(seed: 51)
    let y = try probabilities(&rng, 4, 5)
    // Every label must name a class; each of these makes the loss NaN, -0 counts as class 0.
    let invalid: [Float] = [.nan, -1, 5, 2.5, .infinity, -.infinity, 1e10, -0.5, 0x1p31, 4.000001]
    for bad in invalid {
        let t = try Tensor(shape: [4, 1], scalars: [0, bad, 4, 1])
        let want = try Reference.crossEntropy(y, targets: t)
        #expect(want.bitPattern == Numerics.canonicalNaN.bitPattern, "label \(bad)")
        for be in backends {
            let (dy, dt) = (try be.upload(y), try be.upload(t))
            let got = try lossValue(be, index: 2) { try be.crossEntropy(dy, targets: dt, into: $0, at: 2) }
            expectSameBits(got.value, want, "\(be.device.id) crossEntropy label \(bad)")
        }
    }
    // Probabilities at the guard's edges: 0 (log 1e-7), -1e-7 (log 0 = -inf), NaN, inf, negative, denormal;
    // with one-hot targets 0 · -inf is NaN.
    let special = try Tensor(shape: [3, 4], scalars: [
        0, -0x1.ad7f2ap-24, .nan, 1, .infinity, -0.5, .leastNonzeroMagnitude, 0.25, 1, 0, 0, 0,
    ])
    let labels = try Tensor(shape: [3, 1], scalars: [-0.0, 3, 0])
    let oneHot = try Tensor(shape: [3, 4], scalars: [1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0])
    let rows = [[0], [1], [2], [0, 2], [1, 2], [0, 1, 2]]  // row subsets: each row alone and mixtures
    for subset in rows {
        func pick(_ t: Tensor) throws -> Tensor {
            let c = t.shape[1]
            return try Tensor(shape: [subset.count, c], scalars: subset.flatMap { Array(t.row($0)) })
        }
        let (ys, ls, os) = (try pick(special), try pick(labels), try pick(oneHot))
        for (t, form) in [(ls, "labels"), (os, "one-hot")] {
            let want = try Reference.crossEntropy(ys, targets: t)
            for be in backends {
                let (dy, dt) = (try be.upload(ys), try be.upload(t))
                let got = try lossValue(be, index: 0) { try be.crossEntropy(dy, targets: dt, into: $0, at: 0) }
                expectSameBits(got.value, want, "\(be.device.id) crossEntropy \(form) rows \(subset)")
            }
        }
    }
}

@Test(arguments: lossShapes.indices)
func sumOfSquaresMatchesReferenceAndCPU(_ index: Int) throws {
    guard let backends = trainingBackends() else { return }
    let (n, c) = lossShapes[index]
    var rng = TestRandom(seed: UInt64(6000 + index))
    let y = try probabilities(&rng, n, c)
    let (_, t) = try targets(&rng, n, c)
    let want = try Reference.sumOfSquares(y, targets: t)
    for be in backends {
        let got = try lossValue(be, index: 2) {
            try be.sumOfSquares(try be.upload(y), targets: try be.upload(t), into: $0, at: 2)
        }
        expectSameBits(got.value, want, "\(be.device.id) sumOfSquares (\(n),\(c))")
        #expect(got.othersKept, "\(be.device.id) sumOfSquares wrote outside loss[2]")
    }
}

@Test func sumOfSquaresOverManyElementsAndSpecialValues() throws {
    // 78400 terms (an autoencoder-sized output) summed strictly in row-major order: terms of similar size,
    // so any other order (pairs, chunks, reversed) rounds differently.
    guard let backends = trainingBackends() else { return }
    var rng = TestRandom(seed: 61)
    let y = rng.tensor(100, 784), t = rng.tensor(100, 784)
    let cases = [(y, t, "100x784"), (sprinkled(y), t, "100x784 NaN/inf"), (Tensor(zeros: [3, 0]), Tensor(zeros: [3, 0]), "3x0")]
    for (ys, ts, what) in cases {
        let want = try Reference.sumOfSquares(ys, targets: ts)
        for be in backends {
            let got = try lossValue(be, index: 0) {
                try be.sumOfSquares(try be.upload(ys), targets: try be.upload(ts), into: $0, at: 0)
            }
            expectSameBits(got.value, want, "\(be.device.id) sumOfSquares \(what)")
        }
    }
}

@Test func lossKernelsGiveTheSameBitsForEveryWorkGroupSize() throws {
    // sn_loss (one work-item, CPUs) and sn_loss_group (one work-group, GPUs) run here on the same device:
    // group sizes 1, 7 and 64, terms fewer than, equal to and more than the group, not multiples of it.
    guard let cl = TestDevice.backend() else { return }
    #expect(cl.device.type == "GPU" || cl.lossWorkGroup == 1)
    var rng = TestRandom(seed: 71)
    for (n, c) in [(1, 10), (7, 3), (64, 1), (100, 10), (129, 7), (0, 4)] {
        let y = try probabilities(&rng, n, c)
        let (labels, oneHot) = try targets(&rng, n, c)
        let cases: [(Tensor, String, Float)] = [
            (labels, "crossEntropy labels", try Reference.crossEntropy(y, targets: labels)),
            (oneHot, "crossEntropy one-hot", try Reference.crossEntropy(y, targets: oneHot)),
            (oneHot, "sumOfSquares", try Reference.sumOfSquares(y, targets: oneHot)),
        ]
        let dy = try cl.upload(y)
        for (t, what, want) in cases {
            let dt = try cl.upload(t)
            for group in [1, 7, 64] {
                let got = try lossValue(cl, index: 1) { loss in
                    if what == "sumOfSquares" {
                        try cl.sumOfSquares(dy, targets: dt, into: loss, at: 1, workGroup: group)
                    } else {
                        try cl.crossEntropy(dy, targets: dt, into: loss, at: 1, workGroup: group)
                    }
                }
                expectSameBits(got.value, want, "\(what) (\(n),\(c)) work-group \(group)")
                #expect(got.othersKept)
            }
        }
    }
    let (y, t, loss) = (try cl.makeMatrix(rows: 2, cols: 2), try cl.makeMatrix(rows: 2, cols: 2), try cl.makeMatrix(rows: 1, cols: 1))
    #expect(throws: BackendError.self) { try cl.sumOfSquares(y, targets: t, into: loss, at: 0, workGroup: 0) }
    #expect(throws: BackendError.self) { try cl.sumOfSquares(y, targets: t, into: loss, at: 0, workGroup: 65) }
}

// MARK: SoftmaxWithLoss backward

@Test(arguments: lossShapes.indices)
func softmaxCrossEntropyBackwardMatchesReferenceAndCPU(_ index: Int) throws {
    guard let backends = trainingBackends() else { return }
    let (n, c) = lossShapes[index]
    var rng = TestRandom(seed: UInt64(7000 + index))
    var y = try probabilities(&rng, n, c)
    if n * c > 4 { y = sprinkled(y, offset: 3) }
    var (labels, oneHot) = try targets(&rng, n, c)
    // Some invalid labels (they subtract nothing) and -0 (class 0).
    let bad: [Float] = [.nan, -1, Float(c), 0.5, .infinity, -0.0]
    for i in labels.scalars.indices where i % 4 == 3 { labels.scalars[i] = bad[(i / 4) % bad.count] }
    for (t, form) in [(labels, "labels"), (oneHot, "one-hot")] {
        let want = try Reference.softmaxCrossEntropyBackward(y, targets: t)
        for be in backends {
            let (dy, dt) = (try be.upload(y), try be.upload(t))
            let dx = try filled(be, n, c)
            try be.softmaxCrossEntropyBackward(dy, targets: dt, into: dx)
            expectBitwise(try be.download(dx), want, "\(be.device.id) softmax-CE backward \(form) (\(n),\(c))")
            try be.softmaxCrossEntropyBackward(dy, targets: dt, into: dy)  // in place over y
            expectBitwise(try be.download(dy), want, "\(be.device.id) softmax-CE backward \(form) in place")
        }
    }
}

// MARK: Optimizer steps

let updateRules: [UpdateRule] = [
    .sgd(lr: 0x1.99999ap-4),
    .momentum(lr: 0x1.47ae14p-7, momentum: 0x1.ccccccp-1),
    .adaGrad(lr: 0x1.47ae14p-7),
    .adam(lrT: 0x1.0624dep-10, oneMinusBeta1: 0x1.99999ap-4, oneMinusBeta2: 0x1.062400p-10),
]

let updateShapes: [(Int, Int)] = [(1, 1), (7, 33), (784, 50), (1, 50), (50, 10), (0, 5)]

@Test(arguments: updateRules.indices, updateShapes.indices)
func updateMatchesReferenceAndCPUOverSeveralSteps(_ ruleIndex: Int, _ shapeIndex: Int) throws {
    guard let backends = trainingBackends() else { return }
    var rule = updateRules[ruleIndex]
    let (n, m) = updateShapes[shapeIndex]
    var rng = TestRandom(seed: UInt64(8000 + 10 * ruleIndex + shapeIndex))
    let p0 = rng.tensor(n, m)
    let gradients = (0..<5).map { step in
        // Step 3 has special values: NaN/inf gradients poison their elements from then on.
        step == 3 ? sprinkled(rng.tensor(n, m, scale: 2)) : rng.tensor(n, m, scale: 2)
    }
    for be in backends {
        var p = p0
        var state = [Tensor](repeating: Tensor(zeros: [n, m]), count: rule.stateCount)
        let dp = try be.upload(p)
        let ds = try state.map { try be.upload($0) }
        for (step, g) in gradients.enumerated() {
            if case .adam(_, let b1, let b2) = updateRules[ruleIndex] {
                // Adam's bias-corrected rate changes every step.
                rule = .adam(lrT: 0x1.0624dep-10 * Float(step + 1).squareRoot(), oneMinusBeta1: b1, oneMinusBeta2: b2)
            }
            try Reference.update(rule, parameter: &p, gradient: g, state: &state)
            try be.update(rule, parameter: dp, gradient: try be.upload(g), state: ds)
            expectBitwise(try be.download(dp), p, "\(be.device.id) \(rule) step \(step) parameter (\(n),\(m))")
            for (i, s) in ds.enumerated() {
                expectBitwise(try be.download(s), state[i], "\(be.device.id) \(rule) step \(step) state[\(i)]")
            }
        }
    }
}

@Test func updateDropsThePackedCopyOfTheWeights() throws {
    // matmul packs W and caches the panels with the matrix; an update must drop them so the next product
    // sees the new weights.
    guard let backends = trainingBackends() else { return }
    var rng = TestRandom(seed: 81)
    let x = rng.tensor(20, 33)
    let w = rng.tensor(33, 19)
    let g = rng.tensor(33, 19)
    let rule = UpdateRule.sgd(lr: 0.5)
    for be in backends {
        let (dx, dw) = (try be.upload(x), try be.upload(w))
        let c = try be.makeMatrix(rows: 20, cols: 19)
        try be.matmul(dx, dw, into: c)
        expectBitwise(try be.download(c), try Reference.matmul(x, w), "\(be.device.id) before the update")
        var after = w
        var none: [Tensor] = []
        try Reference.update(rule, parameter: &after, gradient: g, state: &none)
        try be.update(rule, parameter: dw, gradient: try be.upload(g), state: [])
        try be.matmul(dx, dw, into: c)
        expectBitwise(try be.download(c), try Reference.matmul(x, after), "\(be.device.id) after the update")
    }
}

@Test func trainingOpsReadPendingBytes() throws {
    // A matrix written with write(bytes:dividedBy:) holds its floats only after conversion: the training ops
    // must convert before reading it (as input, or as a parameter they update in place).
    guard let cl = TestDevice.backend() else { return }
    let bytes: [UInt8] = (0..<(7 * 5)).map { UInt8(($0 * 37) % 256) }
    let x = try Tensor(shape: [7, 5], scalars: bytes.map { Float($0) / 255 })
    let m = try cl.makeMatrix(rows: 7, cols: 5)
    try bytes.withUnsafeBufferPointer { try cl.write(bytes: $0, dividedBy: 255, to: m) }
    let y = try cl.makeMatrix(rows: 1, cols: 5)
    try cl.sumColumns(m, into: y)
    expectBitwise(try cl.download(y), try Reference.sumColumns(x), "sumColumns of pending bytes")
    var p = x
    var rng = TestRandom(seed: 9)
    let g = rng.tensor(7, 5)
    var none: [Tensor] = []
    try Reference.update(.sgd(lr: 0.25), parameter: &p, gradient: g, state: &none)
    let q = try cl.makeMatrix(rows: 7, cols: 5)
    try bytes.withUnsafeBufferPointer { try cl.write(bytes: $0, dividedBy: 255, to: q) }
    try cl.update(.sgd(lr: 0.25), parameter: q, gradient: try cl.upload(g), state: [])
    expectBitwise(try cl.download(q), p, "update of pending bytes")
}

// MARK: Shape errors

@Test func trainingOpsRejectBadShapes() throws {
    guard let backends = trainingBackends() else { return }
    for be in backends {
        let a = try be.makeMatrix(rows: 4, cols: 3), b = try be.makeMatrix(rows: 5, cols: 2)
        let loss = try be.makeMatrix(rows: 1, cols: 2)
        let y = try be.makeMatrix(rows: 4, cols: 3), t = try be.makeMatrix(rows: 4, cols: 2)
        let id = be.device.id
        #expect(throws: BackendError.self, "\(id)") { try be.matmulTransposedA(a, b, into: try be.makeMatrix(rows: 3, cols: 2)) }
        #expect(throws: BackendError.self, "\(id)") { try be.matmulTransposedB(a, b, into: try be.makeMatrix(rows: 4, cols: 5)) }
        #expect(throws: BackendError.self, "\(id)") { try be.sumColumns(a, into: try be.makeMatrix(rows: 1, cols: 2)) }
        #expect(throws: BackendError.self, "\(id)") {
            try be.activationBackward(.relu, output: a, gradient: b, into: a)
        }
        #expect(throws: BackendError.self, "\(id)") { try be.crossEntropy(y, targets: t, into: loss, at: 0) }
        #expect(throws: BackendError.self, "\(id)") {
            try be.crossEntropy(y, targets: try be.makeMatrix(rows: 4, cols: 1), into: loss, at: 2)
        }
        #expect(throws: BackendError.self, "\(id)") { try be.sumOfSquares(y, targets: t, into: loss, at: 0) }
        #expect(throws: BackendError.self, "\(id)") { try be.sumOfSquares(y, targets: y, into: loss, at: -1) }
        #expect(throws: BackendError.self, "\(id)") { try be.softmaxCrossEntropyBackward(y, targets: t, into: y) }
        #expect(throws: BackendError.self, "\(id)") { try be.update(.sgd(lr: 1), parameter: a, gradient: b, state: []) }
        #expect(throws: BackendError.self, "\(id)") { try be.update(.adaGrad(lr: 1), parameter: a, gradient: a, state: []) }
        #expect(throws: BackendError.self, "\(id)") {
            try be.update(.momentum(lr: 1, momentum: 0.9), parameter: a, gradient: a, state: [b])
        }
        // Outputs that are inputs of a product or a column sum, and state matrices that are p, g or each other.
        let sq = try be.makeMatrix(rows: 3, cols: 3), row = try be.makeMatrix(rows: 1, cols: 3)
        #expect(throws: BackendError.self, "\(id)") { try be.matmulTransposedA(sq, sq, into: sq) }
        #expect(throws: BackendError.self, "\(id)") { try be.matmulTransposedB(sq, sq, into: sq) }
        #expect(throws: BackendError.self, "\(id)") { try be.sumColumns(row, into: row) }
        let g = try be.makeMatrix(rows: 4, cols: 3), s0 = try be.makeMatrix(rows: 4, cols: 3)
        #expect(throws: BackendError.self, "\(id)") { try be.update(.adaGrad(lr: 1), parameter: a, gradient: g, state: [a]) }
        #expect(throws: BackendError.self, "\(id)") { try be.update(.adaGrad(lr: 1), parameter: a, gradient: g, state: [g]) }
        #expect(throws: BackendError.self, "\(id)") {
            try be.update(.adam(lrT: 1, oneMinusBeta1: 0.1, oneMinusBeta2: 0.1), parameter: a, gradient: g, state: [s0, s0])
        }
        // p and g may be one matrix (element-wise).
        try be.update(.sgd(lr: 1), parameter: a, gradient: a, state: [])
    }
}
