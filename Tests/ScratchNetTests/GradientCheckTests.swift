// Gradient check (the book's 5.7.3) on CPUBackend: backprop gradients (Float) of every layer and of small MLPs
// against the central-difference numerical gradient evaluated in Double (GradientCheck), bounded by
// `floatBound` / `guardedBound`; negative controls (a transposed dW, a missing /N, the sigmoid backward fed its
// input, a missing ReLU mask) show the bounds catch wrong gradients. Measured errors are printed
// ("gradient check ...: relative error ...").

import Foundation
import ScratchNet
import Testing

// The bounds on GradientCheck.relativeError(backprop, numerical) (max |Δ| / max magnitude, per gradient).
//
// Error sources: (1) Float rounding in the forward activations and the backward ops: a few ulp (2⁻²⁴ ≈ 6e-8) of
// the gradient's largest entry, growing slowly with the sums' lengths; (2) the numerical side: central-difference
// truncation h²·f‴/6 ≈ 1e-9 and Double rounding ε·|L|/h ≈ 1e-12, negligible; (3) only where a cross-entropy is
// involved, the book's 1e-7 guard: the Double loss includes it (as the book's check does) but backprop's
// (y - t)/N is the gradient of the loss without it, a bias of about 1e-7 / y[target] relative.
//
// Measured (swift test -c release --filter GradientCheckTests, CPUBackend, x86-64 haswell build):
//   single layers (Affine dW/db/dx, sigmoid, relu, identity)             worst 2.7e-7 (sigmoid 33×17, Affine 33×17·17×9 dW)
//   SoftmaxWithLoss and networks, Double loss without the guard          worst 1.7e-7 (networks), 1.3e-7 (SoftmaxWithLoss)
//   SoftmaxWithLoss and networks, Double loss with the 1e-7 guard        worst 1.1e-5 (SoftmaxWithLoss 33×7; networks 1.6e-6)
//   negative controls                                                    0.67 ... 1.75
// So (1) is the whole story without the guard, and the guard's bias dominates with it (smallest target
// probability here about 0.01). Each bound sits about 10× above its worst case; the wrong gradients exceed
// even the looser one by more than 6000×.

/// Backprop's own Float error: single layers, and losses compared without the guard.
let floatBound = 3e-6

/// The book's check, the Double loss with the 1e-7 guard: ``floatBound`` plus the guard's bias (valid while every
/// target probability is ≳ 1e-3, as in these cases).
let guardedBound = 1e-4

typealias DMatrix = GradientCheck.Matrix

/// Σ dout ⊙ y in Double: the scalar loss of the single-layer checks, whose gradient with respect to y is dout.
private func weightedSum(_ dout: DMatrix, _ y: DMatrix) -> Double {
    zip(dout.values, y.values).reduce(0) { $0 + $1.0 * $1.1 }
}

/// relativeError(backprop, numerical), printed, and expected to be within `bound`.
@discardableResult
private func expectGradient(
    _ what: String, backprop: [Float], numerical: [Double], bound: Double,
    sourceLocation: SourceLocation = #_sourceLocation
) -> Double {
    let e = GradientCheck.relativeError(backprop, numerical)
    print("gradient check \(what): relative error \(e)")
    #expect(e <= bound, "\(what): relative error \(e) > \(bound)", sourceLocation: sourceLocation)
    return e
}

/// A wrong gradient that must fail even the looser bound (``guardedBound``); the error is printed.
private func expectCaught(
    _ what: String, wrong: [Float], numerical: [Double], sourceLocation: SourceLocation = #_sourceLocation
) {
    let e = GradientCheck.relativeError(wrong, numerical)
    print("gradient check negative control \(what): relative error \(e)")
    #expect(e > guardedBound, "negative control \(what) passed the bound: \(e)", sourceLocation: sourceLocation)
}

/// The row-major values of the transpose of a (rows, cols) matrix: a "dW" with its indices swapped.
private func transposed(_ t: Tensor) -> [Float] {
    let (r, c) = t.matrixShape
    return (0..<(r * c)).map { idx in t.scalars[(idx % r) * c + idx / r] }
}

/// Uniform values with magnitude in 0.05...4 and a random sign: away from ReLU's kink by far more than h.
private func awayFromZero(_ rows: Int, _ cols: Int, seed: UInt64) -> Tensor {
    var g = SplitMix64(seed: seed)
    let values = (0..<(rows * cols)).map { _ -> Float in
        let v = g.nextFloat(in: 0.05...4)
        return g.next() & 1 == 0 ? v : -v
    }
    return (try? Tensor(shape: [rows, cols], scalars: values)) ?? Tensor(zeros: [rows, cols])
}

/// How targets are given to SoftmaxWithLoss.
enum TargetForm: String, CaseIterable, Sendable { case labels, oneHot }

/// Random targets for `n` rows of `classes`: labels (N,1) as floats, or the same classes one-hot (N,C).
func randomTargets(_ n: Int, classes: Int, form: TargetForm, seed: UInt64) -> Tensor {
    var g = SplitMix64(seed: seed)
    let labels = (0..<n).map { _ in Int(g.next() % UInt64(classes)) }
    switch form {
    case .labels:
        return (try? Tensor(shape: [n, 1], scalars: labels.map { Float($0) })) ?? Tensor(zeros: [n, 1])
    case .oneHot:
        var t = Tensor(zeros: [n, classes])
        for (i, l) in labels.enumerated() { t.scalars[i * classes + l] = 1 }
        return t
    }
}

/// One small MLP gradient-check case: layer widths, batch size, hidden activation, target form.
struct NetworkCase: Sendable, CustomTestStringConvertible {
    let sizes: [Int]
    let batch: Int
    let activation: Activation
    let targets: TargetForm
    let seed: UInt64
    var testDescription: String { "\(sizes.map(String.init).joined(separator: "-")) \(activation) \(targets) batch \(batch)" }

    /// x (N, in) in [-2, 2], W uniform in ±1/√in (so sigmoids are not saturated), b in [-0.5, 0.5], targets.
    func data() -> (x: Tensor, parameters: [Tensor], targets: Tensor) {
        var g = SplitMix64(seed: seed)
        func tensor(_ r: Int, _ c: Int, _ range: ClosedRange<Float>) -> Tensor {
            let v = (0..<(r * c)).map { _ in g.nextFloat(in: range) }
            return (try? Tensor(shape: [r, c], scalars: v)) ?? Tensor(zeros: [r, c])
        }
        let x = tensor(batch, sizes[0], -2...2)
        var parameters: [Tensor] = []
        for l in 1..<sizes.count {
            let s = 1 / Float(sizes[l - 1]).squareRoot()
            parameters.append(tensor(sizes[l - 1], sizes[l], -s...s))
            parameters.append(tensor(1, sizes[l], -0.5...0.5))
        }
        let t = randomTargets(batch, classes: sizes[sizes.count - 1], form: targets, seed: seed &+ 1)
        return (x, parameters, t)
    }
}

/// The smallest |pre-activation| of the hidden layers in Double: ReLU's numerical gradient is only valid when
/// no perturbation by h moves one across 0.
func smallestHiddenPreActivation(x: Tensor, parameters: [Tensor], activation: Activation) throws -> Double {
    var h = try DMatrix(x)
    var smallest = Double.infinity
    let pairs = parameters.count / 2
    for l in 0..<(pairs - 1) {
        let z = try GradientCheck.affine(h, DMatrix(parameters[2 * l]), bias: DMatrix(parameters[2 * l + 1]))
        smallest = min(smallest, z.values.map { abs($0) }.min() ?? .infinity)
        h = GradientCheck.activate(activation, z)
    }
    return smallest
}

/// The network cases: the 7-5-4-3 with batch 3, plus batch 1 and an odd deeper/wider one; each with
/// sigmoid and relu, labels and one-hot.
let networkCases: [NetworkCase] = {
    var cases: [NetworkCase] = []
    for activation in [Activation.sigmoid, .relu] {
        for form in TargetForm.allCases {
            cases.append(NetworkCase(sizes: [7, 5, 4, 3], batch: 3, activation: activation, targets: form, seed: 0x6AD0))
            cases.append(NetworkCase(sizes: [33, 17, 10], batch: 1, activation: activation, targets: form, seed: 0x6AD1))
            cases.append(NetworkCase(sizes: [20, 9, 16, 8, 5], batch: 7, activation: activation, targets: form, seed: 0x6ADA))
        }
    }
    return cases
}()

/// (N, in, out): batch 1, the odd 3×7→5, 1×7→33, and a 33-row one.
private let affineShapes: [(Int, Int, Int)] = [(1, 1, 1), (3, 7, 5), (1, 7, 33), (33, 17, 9)]
/// (N, M) shapes for the element-wise layers.
private let elementShapes: [(Int, Int)] = [(1, 1), (3, 7), (33, 17)]
/// (N, C) shapes for SoftmaxWithLoss: batch 1, a square one, the book's 10 classes, 33 rows.
private let softmaxShapes: [(Int, Int)] = [(1, 3), (3, 3), (7, 10), (33, 7)]

@Suite("GradientCheck")
struct GradientCheckTests {
    let cpu = CPUBackend()

    // MARK: The tools themselves

    @Test("numericalGradient is the book's central difference")
    func numericalGradientOfKnownFunctions() {
        // The book's function_2: f(x0, x1) = x0² + x1²; gradient at (3, 4) is (6, 8).
        let g = GradientCheck.numericalGradient(at: [3, 4]) { $0[0] * $0[0] + $0[1] * $0[1] }
        #expect(abs(g[0] - 6) < 1e-9 && abs(g[1] - 8) < 1e-9, "\(g)")
        // Central difference of a cubic errs by exactly h² (f‴ = 6, error h²·f‴/6): x³ at 2 gives 12 + h².
        let h = GradientCheck.h
        let c = GradientCheck.numericalGradient(at: [2]) { $0[0] * $0[0] * $0[0] }
        #expect(abs(c[0] - (12 + h * h)) < 1e-10, "\(c)")
        #expect(GradientCheck.h == 1e-4)
        #expect(GradientCheck.numericalGradient(at: []) { _ in 1 }.isEmpty)
    }

    @Test("relativeError is max |a-b| / max(|a|, |b|, tiny)")
    func relativeErrorDefinition() {
        #expect(GradientCheck.relativeError([1, 2, -4] as [Float], [1, 2.5, -4] as [Double]) == 0.5 / 4)
        #expect(GradientCheck.relativeError([0.25, 8] as [Double], [0.5, 8] as [Double]) == 0.25 / 8)
        #expect(GradientCheck.relativeError([0, 0] as [Float], [0, 0] as [Float]) == 0)
        #expect(GradientCheck.relativeError([] as [Float], [] as [Double]) == 0)
        #expect(GradientCheck.relativeError([1e-40] as [Double], [0] as [Double]) == 1e-40 / GradientCheck.tiny)
        #expect(GradientCheck.relativeError([1, 2] as [Float], [1] as [Float]) == .infinity)
        #expect(GradientCheck.relativeError([.nan] as [Float], [1] as [Float]) == .infinity)
        #expect(GradientCheck.relativeError([1] as [Float], [.infinity] as [Double]) == .infinity)
    }

    @Test("Double reference: softmax, cross-entropy with the guard, labels = one-hot, invalid label is NaN")
    func doubleReference() throws {
        let x = try DMatrix(rows: 2, cols: 3, values: [1, 2, 3, -1, 0, 1000])
        let y = GradientCheck.softmaxRows(x)
        #expect(abs(y.values[0] - 0.09003057317038046) < 1e-15 && y.values[5] == 1 && y.values[3] == 0)
        let labels = try DMatrix(rows: 2, cols: 1, values: [2, 0])
        let oneHot = try DMatrix(rows: 2, cols: 3, values: [0, 0, 1, 1, 0, 0])
        let a = try GradientCheck.crossEntropy(y, targets: labels)
        let b = try GradientCheck.crossEntropy(y, targets: oneHot)
        #expect(a == b)
        // Row 2's target has probability 0: only the guard keeps the log finite, log(1e-7) ≈ -16.118.
        let guardValue = Double(Numerics.crossEntropyGuard)
        let want = -(log(y.values[2] + guardValue) + log(guardValue)) / 2
        #expect(abs(a - want) < 1e-15)
        #expect(try GradientCheck.crossEntropy(y, targets: DMatrix(rows: 2, cols: 1, values: [2, 3])).isNaN)
        #expect(try GradientCheck.crossEntropy(y, targets: DMatrix(rows: 2, cols: 1, values: [0.5, 1])).isNaN)
        #expect(throws: ShapeError.self) { try GradientCheck.crossEntropy(y, targets: DMatrix(rows: 1, cols: 1, values: [0])) }
        #expect(throws: ShapeError.self) { try GradientCheck.mlpLoss(x: x, parameters: [], activation: .relu, targets: labels) }
        // The Double loss agrees with the backend's Float loss to Float precision.
        let xt = try Tensor(shape: [2, 3], scalars: [1, 2, 3, -1, 0, 1])
        let probs = try cpu.makeMatrix(rows: 2, cols: 3), loss = try cpu.makeMatrix(rows: 1, cols: 1)
        try SoftmaxWithLoss(backend: cpu).forward(
            cpu.upload(xt), targets: cpu.upload(Tensor(shape: [2, 1], scalars: [2, 0])), probabilities: probs,
            loss: loss, at: 0)
        let floatLoss = Double(try cpu.download(loss).scalars[0])
        let doubleLoss = try GradientCheck.softmaxWithLoss(DMatrix(xt), targets: labels)
        #expect(abs(floatLoss - doubleLoss) <= 1e-6 * doubleLoss, "\(floatLoss) vs \(doubleLoss)")
    }

    // MARK: Single layers, L = Σ dout ⊙ y with a fixed random dout


    @Test("Affine: dW, db, dx against the numerical gradient", arguments: affineShapes.indices)
    func affine(_ index: Int) throws {
        let (n, k, m) = affineShapes[index]
        let seed = UInt64(10 * index)
        let x = randomTensor(n, k, seed: seed + 1), w = randomTensor(k, m, in: -1...1, seed: seed + 2)
        let b = randomTensor(1, m, in: -1...1, seed: seed + 3), dout = randomTensor(n, m, in: -1...1, seed: seed + 4)

        let layer = try Affine(name: "Affine", W: w, b: b, backend: cpu)
        let xd = try cpu.upload(x), y = try cpu.makeMatrix(rows: n, cols: m), dx = try cpu.makeMatrix(rows: n, cols: k)
        try layer.forward(xd, into: y)
        try layer.backward(cpu.upload(dout), input: xd, output: y, into: dx)
        let dW = try cpu.download(layer.dW), db = try cpu.download(layer.db), dxh = try cpu.download(dx)

        let X = try DMatrix(x), W = try DMatrix(w), B = try DMatrix(b), D = try DMatrix(dout)
        let numW = try GradientCheck.numericalGradient(at: W.values) {
            weightedSum(D, try GradientCheck.affine(X, W.with(values: $0), bias: B))
        }
        let numB = try GradientCheck.numericalGradient(at: B.values) {
            weightedSum(D, try GradientCheck.affine(X, W, bias: B.with(values: $0)))
        }
        let numX = try GradientCheck.numericalGradient(at: X.values) {
            weightedSum(D, try GradientCheck.affine(X.with(values: $0), W, bias: B))
        }
        let shape = "(\(n),\(k))·(\(k),\(m))"
        expectGradient("Affine \(shape) dW", backprop: dW.scalars, numerical: numW, bound: floatBound)
        expectGradient("Affine \(shape) db", backprop: db.scalars, numerical: numB, bound: floatBound)
        expectGradient("Affine \(shape) dx", backprop: dxh.scalars, numerical: numX, bound: floatBound)
        if k > 1 && m > 1 {
            // Negative control: dW with its indices swapped (a transposed xᵀ · dout).
            expectCaught("Affine \(shape) transposed dW", wrong: transposed(dW), numerical: numW)
        }
    }

    @Test("Sigmoid, ReLU (away from 0), identity: dx against the numerical gradient",
          arguments: Activation.allCases, elementShapes.indices)
    func activation(_ activation: Activation, _ index: Int) throws {
        let (n, m) = elementShapes[index]
        let x = awayFromZero(n, m, seed: UInt64(100 + index))
        let dout = randomTensor(n, m, in: -1...1, seed: UInt64(200 + index))
        let layer = ActivationLayer(name: "\(activation)", activation: activation, backend: cpu)
        let xd = try cpu.upload(x), y = try cpu.makeMatrix(rows: n, cols: m), dx = try cpu.makeMatrix(rows: n, cols: m)
        try layer.forward(xd, into: y)
        try layer.backward(cpu.upload(dout), input: xd, output: y, into: dx)

        let X = try DMatrix(x), D = try DMatrix(dout)
        let num = try GradientCheck.numericalGradient(at: X.values) {
            weightedSum(D, GradientCheck.activate(activation, try X.with(values: $0)))
        }
        expectGradient("\(activation) (\(n),\(m)) dx", backprop: try cpu.download(dx).scalars, numerical: num,
                       bound: floatBound)
    }

    @Test("SoftmaxWithLoss: dx = (y - t)/N against the numerical gradient, labels and one-hot",
          arguments: TargetForm.allCases, softmaxShapes.indices)
    func softmaxWithLoss(_ form: TargetForm, _ index: Int) throws {
        let (n, c) = softmaxShapes[index]
        let scores = randomTensor(n, c, seed: UInt64(300 + index))
        let t = randomTargets(n, classes: c, form: form, seed: UInt64(400 + index))
        let layer = SoftmaxWithLoss(backend: cpu)
        let xd = try cpu.upload(scores), td = try cpu.upload(t)
        let y = try cpu.makeMatrix(rows: n, cols: c), loss = try cpu.makeMatrix(rows: 1, cols: 1)
        let dx = try cpu.makeMatrix(rows: n, cols: c)
        try layer.forward(xd, targets: td, probabilities: y, loss: loss, at: 0)
        try layer.backward(probabilities: y, targets: td, into: dx)
        let got = try cpu.download(dx).scalars

        let X = try DMatrix(scores), T = try DMatrix(t)
        let num = try GradientCheck.numericalGradient(at: X.values) {
            try GradientCheck.softmaxWithLoss(X.with(values: $0), targets: T)
        }
        expectGradient("SoftmaxWithLoss \(form) (\(n),\(c)) dx", backprop: got, numerical: num, bound: guardedBound)
        // Without the 1e-7 guard the Double loss is exactly the one (y - t)/N differentiates: only Float error left.
        let numNoGuard = try GradientCheck.numericalGradient(at: X.values) {
            try GradientCheck.softmaxWithLoss(X.with(values: $0), targets: T, guard: 0)
        }
        expectGradient("SoftmaxWithLoss \(form) (\(n),\(c)) dx, no guard", backprop: got, numerical: numNoGuard,
                       bound: floatBound)
        let floatLoss = Double(try cpu.download(loss).scalars[0])
        let doubleLoss = try GradientCheck.softmaxWithLoss(X, targets: T)
        #expect(abs(floatLoss - doubleLoss) <= 1e-6 * doubleLoss, "loss \(floatLoss) vs \(doubleLoss)")
        if n > 1 {
            // Negative control: the backward without its division by N.
            expectCaught("SoftmaxWithLoss \(form) (\(n),\(c)) missing /N", wrong: got.map { $0 * Float(n) }, numerical: num)
        }
    }

    @Test("negative controls: sigmoid backward from its input, ReLU backward without the mask")
    func wrongActivationGradientsAreCaught() throws {
        let (n, m) = (3, 7)
        let x = awayFromZero(n, m, seed: 500), dout = randomTensor(n, m, in: -1...1, seed: 501)
        let X = try DMatrix(x), D = try DMatrix(dout)
        let xd = try cpu.upload(x), dd = try cpu.upload(dout), dx = try cpu.makeMatrix(rows: n, cols: m)
        // Sigmoid's backward needs the output y; handing it the input x is a classic bug.
        try cpu.activationBackward(.sigmoid, output: xd, gradient: dd, into: dx)
        let numSigmoid = try GradientCheck.numericalGradient(at: X.values) {
            weightedSum(D, GradientCheck.activate(.sigmoid, try X.with(values: $0)))
        }
        expectCaught("sigmoid backward from x", wrong: try cpu.download(dx).scalars, numerical: numSigmoid)
        // ReLU with the mask forgotten passes dout through unchanged (x has negative entries here).
        #expect(x.scalars.contains { $0 < 0 })
        let numRelu = try GradientCheck.numericalGradient(at: X.values) {
            weightedSum(D, GradientCheck.activate(.relu, try X.with(values: $0)))
        }
        expectCaught("ReLU without mask", wrong: dout.scalars, numerical: numRelu)
    }

    // MARK: Networks

    @Test("MLP backprop on CPUBackend against the numerical gradient", arguments: networkCases)
    func network(_ c: NetworkCase) throws {
        let (x, parameters, t) = c.data()
        if c.activation == .relu {
            // The seeds are chosen so no hidden unit sits within 1e-3 of ReLU's kink (h is 1e-4).
            let margin = try smallestHiddenPreActivation(x: x, parameters: parameters, activation: .relu)
            try #require(margin > 1e-3, "\(c.testDescription): a pre-activation is \(margin) from ReLU's kink; pick another seed")
        }
        let bp = try GradientCheck.mlpBackprop(x: x, parameters: parameters, activation: c.activation, targets: t, backend: cpu)
        let numerical = try GradientCheck.mlpNumericalGradients(
            x: DMatrix(x), parameters: parameters.map { try DMatrix($0) }, activation: c.activation, targets: DMatrix(t))
        #expect(bp.gradients.count == parameters.count && numerical.count == parameters.count)
        for (p, (got, want)) in zip(bp.gradients, numerical).enumerated() {
            let (rows, cols) = parameters[p].matrixShape
            #expect(got.shape == [rows, cols])
            let name = (p % 2 == 0 ? "W" : "b") + "\(p / 2 + 1)"
            expectGradient("network \(c.testDescription) \(name)", backprop: got.scalars, numerical: want,
                           bound: guardedBound)
        }
        let noGuard = try GradientCheck.mlpNumericalGradients(
            x: DMatrix(x), parameters: parameters.map { try DMatrix($0) }, activation: c.activation, targets: DMatrix(t),
            guard: 0)
        for (p, (got, want)) in zip(bp.gradients, noGuard).enumerated() {
            let name = (p % 2 == 0 ? "W" : "b") + "\(p / 2 + 1)"
            expectGradient("network \(c.testDescription) \(name), no guard", backprop: got.scalars, numerical: want,
                           bound: floatBound)
        }
        let doubleLoss = try GradientCheck.mlpLoss(
            x: DMatrix(x), parameters: parameters.map { try DMatrix($0) }, activation: c.activation, targets: DMatrix(t))
        #expect(abs(Double(bp.loss) - doubleLoss) <= 1e-6 * doubleLoss, "loss \(bp.loss) vs \(doubleLoss)")
    }

    @Test("negative controls on the 7-5-4-3 network: missing /N, transposed dW2")
    func wrongNetworkGradientsAreCaught() throws {
        let c = NetworkCase(sizes: [7, 5, 4, 3], batch: 3, activation: .sigmoid, targets: .labels, seed: 0x6AD0)
        let (x, parameters, t) = c.data()
        let bp = try GradientCheck.mlpBackprop(x: x, parameters: parameters, activation: .sigmoid, targets: t, backend: cpu)
        let numerical = try GradientCheck.mlpNumericalGradients(
            x: DMatrix(x), parameters: parameters.map { try DMatrix($0) }, activation: .sigmoid, targets: DMatrix(t))
        for p in parameters.indices {
            expectCaught("network missing /N, parameter \(p)", wrong: bp.gradients[p].scalars.map { $0 * 3 }, numerical: numerical[p])
        }
        expectCaught("network transposed dW2", wrong: transposed(bp.gradients[2]), numerical: numerical[2])
    }
}
