// Reference training ops: the naive, obviously-correct scalar loops for the Backend's "Training ops"
// (backward passes, losses, optimizer steps), following the evaluation order of Backend.swift literally.
// CPUBackend and every OpenCL device with parity must equal these bit for bit.

extension Reference {
    /// c (K,M) = aᵀ · b for a (N,K), b (N,M): c[i][j] = +0, then fma(a[n][i], b[n][j], c) for n = 0..<N.
    public static func matmulTransposedA(_ a: Tensor, _ b: Tensor) throws(ShapeError) -> Tensor {
        let (n, k) = try matrix2(a, "matmulTransposedA: a")
        let (nb, m) = try matrix2(b, "matmulTransposedA: b")
        guard n == nb else {
            throw ShapeError("matmulTransposedA: a (\(n),\(k))ᵀ · b (\(nb),\(m)): row counts differ")
        }
        var c = [Float](repeating: 0, count: k * m)
        for i in 0..<k {
            for j in 0..<m {
                var acc: Float = 0
                for r in 0..<n { acc = acc.addingProduct(a.scalars[r * k + i], b.scalars[r * m + j]) }
                c[i * m + j] = Numerics.canonical(acc)
            }
        }
        return try Tensor(shape: [k, m], scalars: c)
    }

    /// c (N,K) = a · bᵀ for a (N,M), b (K,M): c[i][j] = +0, then fma(a[i][m], b[j][m], c) for m = 0..<M.
    public static func matmulTransposedB(_ a: Tensor, _ b: Tensor) throws(ShapeError) -> Tensor {
        let (n, m) = try matrix2(a, "matmulTransposedB: a")
        let (k, mb) = try matrix2(b, "matmulTransposedB: b")
        guard m == mb else {
            throw ShapeError("matmulTransposedB: a (\(n),\(m)) · b (\(k),\(mb))ᵀ: column counts differ")
        }
        var c = [Float](repeating: 0, count: n * k)
        for i in 0..<n {
            for j in 0..<k {
                var acc: Float = 0
                for p in 0..<m { acc = acc.addingProduct(a.scalars[i * m + p], b.scalars[j * m + p]) }
                c[i * k + j] = Numerics.canonical(acc)
            }
        }
        return try Tensor(shape: [n, k], scalars: c)
    }

    /// y (1,M) = column sums of x (N,M): y[j] = ((+0 + x[0][j]) + x[1][j]) + ... + x[N-1][j].
    public static func sumColumns(_ x: Tensor) throws(ShapeError) -> Tensor {
        let (n, m) = try matrix2(x, "sumColumns: x")
        var y = [Float](repeating: 0, count: m)
        for j in 0..<m {
            var s: Float = 0
            for r in 0..<n { s = s + x.scalars[r * m + j] }
            y[j] = Numerics.canonical(s)
        }
        return try Tensor(shape: [1, m], scalars: y)
    }

    /// dx from an activation's forward output y and the incoming gradient dy (same shape):
    /// identity dx = dy; sigmoid dx = (dy * (1 - y)) * y; relu dx = y <= 0 ? +0 : dy.
    public static func activationBackward(_ activation: Activation, output y: Tensor, gradient dy: Tensor)
        throws(ShapeError) -> Tensor
    {
        let (n, m) = try matrix2(y, "activationBackward: y")
        let (dn, dm) = try matrix2(dy, "activationBackward: dy")
        guard n == dn, m == dm else {
            throw ShapeError("activationBackward: y (\(n),\(m)) and dy (\(dn),\(dm)) differ")
        }
        var dx = [Float](repeating: 0, count: n * m)
        for idx in 0..<(n * m) {
            let yv = y.scalars[idx], g = dy.scalars[idx]
            let v: Float
            switch activation {
            case .identity: v = g
            case .sigmoid: v = (g * (1 - yv)) * yv
            case .relu: v = yv <= 0 ? 0 : g
            }
            dx[idx] = Numerics.canonical(v)
        }
        return try Tensor(shape: [n, m], scalars: dx)
    }

    /// The book's batch cross-entropy of probabilities y (N,C) against targets t: one-hot when t has C
    /// columns (also when C = 1, as the book's `t.size == y.size` test decides), else labels when t has one
    /// column. rowᵢ = log(y[i][tᵢ] + 1e-7) (labels; NaN for an invalid label) or Σⱼ t[i][j] * log(y[i][j] +
    /// 1e-7) from +0 (one-hot); s = Σᵢ rowᵢ from +0; loss = -s / Float(N). N = 0 gives NaN.
    public static func crossEntropy(_ y: Tensor, targets t: Tensor) throws(ShapeError) -> Float {
        let (n, c) = try matrix2(y, "crossEntropy: y")
        let oneHot = try targetForm(y: (n, c), t, "crossEntropy")
        var s: Float = 0
        for i in 0..<n {
            var row: Float
            if oneHot {
                row = 0
                for j in 0..<c {
                    row = row + t.scalars[i * c + j] * Numerics.log(y.scalars[i * c + j] + Numerics.crossEntropyGuard)
                }
            } else if let label = labelIndex(t.scalars[i], classes: c) {
                row = Numerics.log(y.scalars[i * c + label] + Numerics.crossEntropyGuard)
            } else {
                row = .nan
            }
            s = s + row
        }
        return Numerics.canonical(-s / Float(n))
    }

    /// The book's 0.5 * Σ (y - t)² over y and t of the same shape: d = y - t, s = s + d * d row-major
    /// from +0, loss = 0.5 * s.
    public static func sumOfSquares(_ y: Tensor, targets t: Tensor) throws(ShapeError) -> Float {
        let (n, m) = try matrix2(y, "sumOfSquares: y")
        let (tn, tm) = try matrix2(t, "sumOfSquares: t")
        guard n == tn, m == tm else {
            throw ShapeError("sumOfSquares: y (\(n),\(m)) and t (\(tn),\(tm)) differ")
        }
        var s: Float = 0
        for idx in 0..<(n * m) {
            let d = y.scalars[idx] - t.scalars[idx]
            s = s + d * d
        }
        return Numerics.canonical(0.5 * s)
    }

    /// SoftmaxWithLoss backward: dx (N,C) = (y - t) / Float(N), t one-hot (N,C) or labels (N,1) as in
    /// ``crossEntropy(_:targets:)`` (labels: t[i][j] = 1 at j == tᵢ, else 0; an invalid label subtracts nothing).
    public static func softmaxCrossEntropyBackward(_ y: Tensor, targets t: Tensor) throws(ShapeError) -> Tensor {
        let (n, c) = try matrix2(y, "softmaxCrossEntropyBackward: y")
        let oneHot = try targetForm(y: (n, c), t, "softmaxCrossEntropyBackward")
        let fn = Float(n)
        var dx = [Float](repeating: 0, count: n * c)
        for i in 0..<n {
            let label = oneHot ? nil : labelIndex(t.scalars[i], classes: c)
            for j in 0..<c {
                let tv: Float = oneHot ? t.scalars[i * c + j] : (label == j ? 1 : 0)
                dx[i * c + j] = Numerics.canonical((y.scalars[i * c + j] - tv) / fn)
            }
        }
        return try Tensor(shape: [n, c], scalars: dx)
    }

    /// One optimizer step on `p` in place, element by element, with the formulas of ``UpdateRule`` in their
    /// order (no fma; sqrt and division correctly rounded). `state` must hold ``UpdateRule/stateCount``
    /// tensors shaped like `p` (velocity; h; m then v), updated in place.
    public static func update(_ rule: UpdateRule, parameter p: inout Tensor, gradient g: Tensor, state: inout [Tensor])
        throws(ShapeError)
    {
        let (n, m) = try matrix2(p, "update: parameter")
        let (gn, gm) = try matrix2(g, "update: gradient")
        guard n == gn, m == gm else {
            throw ShapeError("update: parameter (\(n),\(m)) and gradient (\(gn),\(gm)) differ")
        }
        guard state.count == rule.stateCount else {
            throw ShapeError("update: \(rule) needs \(rule.stateCount) state matrices, got \(state.count)")
        }
        for (s, st) in state.enumerated() {
            let (sn, sm) = try matrix2(st, "update: state[\(s)]")
            guard sn == n, sm == m else {
                throw ShapeError("update: state[\(s)] (\(sn),\(sm)) differs from the parameter (\(n),\(m))")
            }
        }
        let eps = Numerics.optimizerEpsilon
        for idx in 0..<(n * m) {
            let gv = g.scalars[idx]
            switch rule {
            case .sgd(let lr):
                p.scalars[idx] = Numerics.canonical(p.scalars[idx] - lr * gv)
            case .momentum(let lr, let momentum):
                let v = Numerics.canonical(momentum * state[0].scalars[idx] - lr * gv)
                state[0].scalars[idx] = v
                p.scalars[idx] = Numerics.canonical(p.scalars[idx] + v)
            case .adaGrad(let lr):
                let h = Numerics.canonical(state[0].scalars[idx] + gv * gv)
                state[0].scalars[idx] = h
                p.scalars[idx] = Numerics.canonical(p.scalars[idx] - (lr * gv) / (h.squareRoot() + eps))
            case .adam(let lrT, let b1, let b2):
                let m0 = state[0].scalars[idx], v0 = state[1].scalars[idx]
                let mv = Numerics.canonical(m0 + b1 * (gv - m0))
                let vv = Numerics.canonical(v0 + b2 * (gv * gv - v0))
                state[0].scalars[idx] = mv
                state[1].scalars[idx] = vv
                p.scalars[idx] = Numerics.canonical(p.scalars[idx] - (lrT * mv) / (vv.squareRoot() + eps))
            }
        }
    }

    /// The class index a label float names, or nil if it is not an integer in 0..<classes (NaN, ±inf,
    /// fractions, negatives, too large). -0 counts as 0.
    static func labelIndex(_ t: Float, classes: Int) -> Int? {
        guard t >= 0, t < Float(classes), t.rounded(.down) == t else { return nil }
        let i = Int(t)
        return i < classes ? i : nil
    }

    /// Whether targets `t` for probabilities (N,C) are one-hot (t is (N,C)) or labels (t is (N,1), C ≠ 1).
    private static func targetForm(y: (Int, Int), _ t: Tensor, _ op: String) throws(ShapeError) -> Bool {
        let (n, c) = y
        let (tn, tc) = try matrix2(t, "\(op): t")
        guard tn == n, tc == c || tc == 1 else {
            throw ShapeError("\(op): targets (\(tn),\(tc)) must be one-hot (\(n),\(c)) or labels (\(n),1) for y (\(n),\(c))")
        }
        return tc == c
    }

    /// The (rows, cols) of a rank-1 or rank-2 tensor; other ranks are an error.
    private static func matrix2(_ t: Tensor, _ what: String) throws(ShapeError) -> (Int, Int) {
        guard t.rank == 1 || t.rank == 2 else {
            throw ShapeError("\(what) must be rank 1 or 2, got shape \(t.shape)")
        }
        return t.matrixShape
    }
}
