// Gradient check (the book's chapter 5.7.3): backprop gradients from a backend (Float) against the central-
// difference numerical gradient of chapter 4 (`numerical_gradient`, h = 1e-4), evaluated here in Double.
//
// This file holds the Double side: `numericalGradient`, a Double-precision reference of the layers' forward math
// (affine, sigmoid, relu, softmax, cross-entropy with the 1e-7 guard, labels or one-hot targets) so a network's
// loss can be evaluated in Double from its Float parameters, and `relativeError`, the measure tests bound; plus
// `mlpBackprop`, one forward and backward pass of an MLP through the layers on any backend (the Float side).
//
// Nothing here is part of the bitwise-parity contract of Backend.swift: the reference is compared under a
// tolerance only, so it uses the platform's Double exp/log (correctly rounded or within an ulp in Double, far
// below the Float errors being measured) and ordinary Double arithmetic.

import Foundation

/// The gradient check: numerical gradients in Double and the error measure between them and backprop.
///
/// Typical use (what the tests do): run a forward and backward pass on a backend, download the Float
/// gradients, compute the same gradients numerically with ``numericalGradient(at:h:of:)`` on a Double loss
/// built from ``affine(_:_:bias:)``, ``activate(_:_:)`` and ``softmaxWithLoss(_:targets:guard:)`` (or
/// ``mlpLoss(x:parameters:activation:targets:guard:)``), and bound ``relativeError(_:_:)`` between the two.
public enum GradientCheck {
    /// The book's step `h = 1e-4` (the Double nearest 1e-4, written in hex so it is not rounded twice).
    public static let h: Double = 0x1.a36e2eb1c432dp-14

    /// The denominator floor of ``relativeError(_:_:)``: 2⁻¹⁰⁰ ≈ 7.9e-31, so two all-zero gradients compare
    /// as error 0 instead of 0/0.
    public static let tiny: Double = 0x1p-100

    /// The book's `numerical_gradient(f, x)`: for each index i in order, x[i] = tmp + h gives f₊,
    /// x[i] = tmp - h gives f₋, the gradient is (f₊ - f₋) / (2h), and x[i] is restored before the next index.
    ///
    /// - Parameters:
    ///   - x: the point (a flattened parameter, row-major).
    ///   - h: the step; the book's ``h`` by default.
    ///   - f: the loss as a function of the whole vector. It is called 2·x.count times.
    /// - Returns: ∂f/∂x[i] for every i, same length as `x`.
    public static func numericalGradient(
        at x: [Double], h: Double = GradientCheck.h, of f: ([Double]) throws -> Double
    ) rethrows -> [Double] {
        var point = x
        var grad = [Double](repeating: 0, count: x.count)
        for i in point.indices {
            let tmp = point[i]
            point[i] = tmp + h
            let fxh1 = try f(point)  // f(x + h)
            point[i] = tmp - h
            let fxh2 = try f(point)  // f(x - h)
            grad[i] = (fxh1 - fxh2) / (2 * h)
            point[i] = tmp
        }
        return grad
    }

    /// The error measure the gradient-check tests bound: the largest element-wise difference, relative to
    /// the largest magnitude on either side:
    ///
    ///     relativeError(a, b) = maxᵢ |aᵢ - bᵢ| / max(maxᵢ |aᵢ|, maxᵢ |bᵢ|, tiny)
    ///
    /// computed in Double (Float inputs are widened exactly). Scaling by the largest magnitude, not element by
    /// element, keeps near-zero entries (dead ReLU units, tiny bias gradients) from dominating with their
    /// rounding noise, while a wrong entry anywhere of the gradient's size still shows as an O(1) error.
    /// ``tiny`` only matters when both sides are all zero (then the error is 0).
    ///
    /// - Returns: the error in [0, ∞); `.infinity` if the lengths differ or any value is NaN or infinite
    ///   (so a `<=` bound fails); 0 for two empty arrays.
    public static func relativeError<A: Collection, B: Collection>(_ a: A, _ b: B) -> Double
    where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
        guard a.count == b.count else { return .infinity }
        var maxDiff = 0.0, maxMagnitude = 0.0
        for (x, y) in zip(a, b) {
            let u = Double(x), v = Double(y)
            guard u.isFinite, v.isFinite else { return .infinity }
            maxDiff = Swift.max(maxDiff, abs(u - v))
            maxMagnitude = Swift.max(maxMagnitude, abs(u), abs(v))
        }
        return maxDiff / Swift.max(maxMagnitude, tiny)
    }

    // MARK: Double reference of the layers' forward math

    /// A row-major Double matrix for the reference math (a bias is 1×n).
    public struct Matrix: Sendable, Equatable {
        /// Number of rows (the batch for activations).
        public let rows: Int
        /// Number of columns.
        public let cols: Int
        /// rows × cols values, row-major.
        public var values: [Double]

        /// A matrix from row-major values; `values.count` must be `rows * cols`.
        public init(rows: Int, cols: Int, values: [Double]) throws(ShapeError) {
            guard rows >= 0, cols >= 0, values.count == rows * cols else {
                throw ShapeError("GradientCheck.Matrix: (\(rows),\(cols)) needs \(max(rows, 0) * max(cols, 0)) values, got \(values.count)")
            }
            self.rows = rows
            self.cols = cols
            self.values = values
        }

        /// A Float tensor widened exactly to Double: rank 2 as is, rank 1 as one row (a bias).
        public init(_ tensor: Tensor) throws(ShapeError) {
            guard tensor.rank == 1 || tensor.rank == 2 else {
                throw ShapeError("GradientCheck.Matrix: only rank-1 and rank-2 tensors, got shape \(tensor.shape)")
            }
            let (r, c) = tensor.matrixShape
            try self.init(rows: r, cols: c, values: tensor.scalars.map { Double($0) })
        }

        /// The same shape with other values (a perturbed parameter); `values.count` must match.
        public func with(values newValues: [Double]) throws(ShapeError) -> Matrix {
            try Matrix(rows: rows, cols: cols, values: newValues)
        }

        /// "(rows,cols)", for messages.
        public var shapeDescription: String { "(\(rows),\(cols))" }
    }

    /// y (N,M) = x (N,K) · w (K,M) + bias (1,M), in Double (the Affine layer's forward).
    public static func affine(_ x: Matrix, _ w: Matrix, bias: Matrix) throws(ShapeError) -> Matrix {
        guard x.cols == w.rows, bias.rows == 1, bias.cols == w.cols else {
            throw ShapeError("GradientCheck.affine: x \(x.shapeDescription) · W \(w.shapeDescription) + b \(bias.shapeDescription)")
        }
        let (n, k, m) = (x.rows, x.cols, w.cols)
        var y = [Double](repeating: 0, count: n * m)
        for i in 0..<n {
            for j in 0..<m {
                var acc = 0.0
                for p in 0..<k { acc += x.values[i * k + p] * w.values[p * m + j] }
                y[i * m + j] = acc + bias.values[j]
            }
        }
        return try Matrix(rows: n, cols: m, values: y)
    }

    /// y = activation(x) element-wise in Double: identity; sigmoid 1 / (1 + e^-x); relu x > 0 ? x : 0.
    public static func activate(_ activation: Activation, _ x: Matrix) -> Matrix {
        var y = x
        for i in y.values.indices {
            let v = x.values[i]
            switch activation {
            case .identity: y.values[i] = v
            case .sigmoid: y.values[i] = 1 / (1 + exp(-v))
            case .relu: y.values[i] = v > 0 ? v : 0
            }
        }
        return y
    }

    /// Row-wise softmax in Double with the book's overflow fix (subtract each row's maximum).
    public static func softmaxRows(_ x: Matrix) -> Matrix {
        var y = x
        for i in 0..<x.rows {
            let row = (i * x.cols)..<((i + 1) * x.cols)
            let m = x.values[row].max() ?? 0
            var s = 0.0
            for j in row {
                y.values[j] = exp(x.values[j] - m)
                s += y.values[j]
            }
            for j in row { y.values[j] /= s }
        }
        return y
    }

    /// The guard the Double cross-entropy adds by default: ``Numerics/crossEntropyGuard`` (the float nearest
    /// 1e-7, the value the Float loss adds) widened exactly to Double.
    public static let crossEntropyGuard = Double(Numerics.crossEntropyGuard)

    /// The book's batch cross-entropy in Double: -(1/N) Σᵢ rowᵢ with rowᵢ = log(y[i][tᵢ] + guard) for labels
    /// t (N,1), or Σⱼ t[i][j] · log(y[i][j] + guard) for one-hot t (N,C) (one-hot whenever t has C columns, as
    /// the backends decide). A label that is not an integer in 0..<C gives NaN, as on the backends.
    ///
    /// - Parameters:
    ///   - y: probabilities (N, C).
    ///   - t: labels (N,1) holding class indices, or one-hot targets (N,C).
    ///   - guardValue: the book's 1e-7 (``crossEntropyGuard``) by default. Backprop's (y - t)/N is the
    ///     exact gradient of the loss *without* the guard; with it, row i's true gradient is scaled by
    ///     y[i][tᵢ] / (y[i][tᵢ] + guard), a relative bias of about 1e-7 / y[i][tᵢ]. Pass 0 to measure the backward
    ///     pass's own error without that bias.
    public static func crossEntropy(
        _ y: Matrix, targets t: Matrix, guard guardValue: Double = GradientCheck.crossEntropyGuard
    ) throws(ShapeError) -> Double {
        let (n, c) = (y.rows, y.cols)
        guard t.rows == n, t.cols == c || t.cols == 1 else {
            throw ShapeError("GradientCheck.crossEntropy: targets \(t.shapeDescription) must be one-hot (\(n),\(c)) or labels (\(n),1)")
        }
        var s = 0.0
        for i in 0..<n {
            if t.cols == c {
                for j in 0..<c { s += t.values[i * c + j] * log(y.values[i * c + j] + guardValue) }
            } else {
                let label = t.values[i]
                guard label >= 0, label < Double(c), label.rounded(.down) == label else { return .nan }
                s += log(y.values[i * c + Int(label)] + guardValue)
            }
        }
        return -s / Double(n)
    }

    /// The SoftmaxWithLoss layer's loss in Double: ``crossEntropy(_:targets:guard:)`` of ``softmaxRows(_:)``.
    public static func softmaxWithLoss(
        _ x: Matrix, targets t: Matrix, guard guardValue: Double = GradientCheck.crossEntropyGuard
    ) throws(ShapeError) -> Double {
        try crossEntropy(softmaxRows(x), targets: t, guard: guardValue)
    }

    /// The loss of the book's MLP in Double: h = x; for each (W, b) pair h = activation(h · W + b) with no
    /// activation after the last pair; then softmax and cross-entropy against `targets`.
    ///
    /// - Parameters:
    ///   - x: the batch (N, in).
    ///   - parameters: W1, b1, W2, b2, ... in order (an even count; each b is 1×out).
    ///   - activation: the hidden layers' activation (none after the last pair).
    ///   - targets: labels (N,1) or one-hot (N, classes), as in ``crossEntropy(_:targets:guard:)``.
    ///   - guardValue: the value added inside the log, as in ``crossEntropy(_:targets:guard:)``.
    public static func mlpLoss(
        x: Matrix, parameters: [Matrix], activation: Activation, targets: Matrix,
        guard guardValue: Double = GradientCheck.crossEntropyGuard
    ) throws(ShapeError) -> Double {
        guard !parameters.isEmpty, parameters.count % 2 == 0 else {
            throw ShapeError("GradientCheck.mlpLoss: parameters must be W1, b1, ..., Wn, bn; got \(parameters.count) matrices")
        }
        var h = x
        let pairs = parameters.count / 2
        for l in 0..<pairs {
            h = try affine(h, parameters[2 * l], bias: parameters[2 * l + 1])
            if l < pairs - 1 { h = activate(activation, h) }
        }
        return try softmaxWithLoss(h, targets: targets, guard: guardValue)
    }

    /// The book's `TwoLayerNet.numerical_gradient` for any depth: for each parameter in turn (W1, b1, W2, ...),
    /// the ``numericalGradient(at:h:of:)`` of ``mlpLoss(x:parameters:activation:targets:guard:)`` with respect to
    /// that parameter, the others held fixed. Each result is flattened row-major, like the parameter.
    public static func mlpNumericalGradients(
        x: Matrix, parameters: [Matrix], activation: Activation, targets: Matrix,
        guard guardValue: Double = GradientCheck.crossEntropyGuard, h: Double = GradientCheck.h
    ) throws(ShapeError) -> [[Double]] {
        // Validate once, so the closure below cannot fail for shape reasons.
        _ = try mlpLoss(x: x, parameters: parameters, activation: activation, targets: targets, guard: guardValue)
        var result: [[Double]] = []
        for p in parameters.indices {
            let grad = numericalGradient(at: parameters[p].values, h: h) { point in
                var perturbed = parameters
                perturbed[p].values = point
                return (try? mlpLoss(
                    x: x, parameters: perturbed, activation: activation, targets: targets, guard: guardValue)) ?? .nan
            }
            result.append(grad)
        }
        return result
    }

    // MARK: Backprop on a backend

    /// The host copy of one forward and backward pass of an MLP on a backend.
    public struct Backprop: Sendable {
        /// The cross-entropy loss the backend computed (the SoftmaxWithLoss forward).
        public let loss: Float
        /// softmax of the last Affine layer's output, (N, classes).
        public let probabilities: Tensor
        /// ∂L/∂W1, ∂L/∂b1, ∂L/∂W2, ... in the order and shapes of the parameters (each b as 1×out).
        public let gradients: [Tensor]
    }

    /// The book's backprop gradient (`TwoLayerNet.gradient`) for any depth, run on `backend` through the
    /// layers' own forward and backward passes: Affine1 → activation → ... → AffineN → SoftmaxWithLoss, then
    /// backward in reverse (the first Affine layer skips dx).
    ///
    /// - Parameters:
    ///   - x: the batch (N, in).
    ///   - parameters: W1 (in, h1), b1 (h1) or (1, h1), W2, b2, ... (an even count).
    ///   - activation: the hidden layers' activation (none after the last Affine layer).
    ///   - targets: labels (N,1) or one-hot (N, classes), as ``SoftmaxWithLoss`` takes them.
    ///   - backend: the device whose layers compute the gradient.
    public static func mlpBackprop(
        x: Tensor, parameters: [Tensor], activation: Activation, targets: Tensor, backend: any Backend
    ) throws -> Backprop {
        guard !parameters.isEmpty, parameters.count % 2 == 0 else {
            throw ShapeError("GradientCheck.mlpBackprop: parameters must be W1, b1, ..., Wn, bn; got \(parameters.count) tensors")
        }
        let pairs = parameters.count / 2
        let affines = try (0..<pairs).map { l in
            try Affine(name: "Affine\(l + 1)", W: parameters[2 * l], b: parameters[2 * l + 1], backend: backend)
        }
        let act = ActivationLayer(name: "Activation", activation: activation, backend: backend)
        let lossLayer = SoftmaxWithLoss(backend: backend)
        let input = try backend.upload(x), t = try backend.upload(targets)
        let n = input.rows

        // Forward, keeping every layer's input and output for the backward pass.
        // inputs[l] (N, in_l) -> Affine l -> scores[l] (N, out_l) -> activation -> hidden[l] (= inputs[l + 1])
        var inputs: [DeviceMatrix] = [], scores: [DeviceMatrix] = [], hidden: [DeviceMatrix] = []
        var h = input
        for (l, affine) in affines.enumerated() {
            inputs.append(h)
            let z = try backend.makeMatrix(rows: n, cols: try affine.outputColumns(forInput: h.cols))
            try affine.forward(h, into: z)
            scores.append(z)
            if l < pairs - 1 {
                let a = try backend.makeMatrix(rows: n, cols: z.cols)
                try act.forward(z, into: a)
                hidden.append(a)
                h = a
            }
        }
        // scores (N,C) -> probabilities y (N,C), loss (1,1)
        let last = scores[pairs - 1]
        let y = try backend.makeMatrix(rows: n, cols: last.cols)
        let loss = try backend.makeMatrix(rows: 1, cols: 1)
        try lossLayer.forward(last, targets: t, probabilities: y, loss: loss, at: 0)

        // Backward: dout (N, out_l) through Affine l, then through the activation before it.
        var dout = try backend.makeMatrix(rows: n, cols: last.cols)
        try lossLayer.backward(probabilities: y, targets: t, into: dout)
        for l in stride(from: pairs - 1, through: 0, by: -1) {
            let affine = affines[l]
            var dIn: DeviceMatrix? = nil
            if l > 0 { dIn = try backend.makeMatrix(rows: n, cols: affine.W.rows) }
            try affine.backward(dout, input: inputs[l], output: scores[l], into: dIn)
            if let dIn {
                // dIn (N, out_{l-1}) = ∂L/∂hidden[l-1] -> ∂L/∂scores[l-1]
                let dz = try backend.makeMatrix(rows: n, cols: dIn.cols)
                try act.backward(dIn, input: scores[l - 1], output: hidden[l - 1], into: dz)
                dout = dz
            }
        }
        guard let lossValue = try backend.download(loss).scalars.first else {
            throw BackendError.device("GradientCheck.mlpBackprop: the (1,1) loss downloaded empty")
        }
        var gradients: [Tensor] = []
        for affine in affines {
            gradients.append(try backend.download(affine.dW))
            gradients.append(try backend.download(affine.db))
        }
        return Backprop(loss: lossValue, probabilities: try backend.download(y), gradients: gradients)
    }
}
