// CPUBackend's training ops: the Affine backward products (through GEMM.swift's blocked micro-kernels),
// the bias gradient, activation backward, the losses, the SoftmaxWithLoss backward and the optimizer steps,
// bitwise equal to ReferenceTraining.swift on any thread count (each output keeps the contract's order;
// SIMD8 only runs independent outputs side by side).

extension CPUBackend {
    // MARK: Affine backward products

    public func matmulTransposedA(_ a: DeviceMatrix, _ b: DeviceMatrix, into c: DeviceMatrix) throws {
        let op = "matmulTransposedA"
        try ShapeCheck.matmulTransposedA(a, b, c)
        let sa = try storage(a, op: op), sb = try storage(b, op: op), sc = try storage(c, op: op)
        try distinctOutput(sc, sa, sb, op: op)
        // a (N,K)ᵀ · b (N,M) -> c (K,M): the GEMM with depth N, left operand aᵀ read in place (or packed
        // from it), right operand b packed per call into this thread's scratch (it changes every step).
        let own = scratch.take()
        defer { scratch.give(own) }
        let memory = own.buffer(PackedPanels.floats(rows: b.rows, cols: b.cols))
        let panels = PackedPanels(packing: UnsafePointer(sb.base), rows: b.rows, cols: b.cols, into: memory)
        let problem = GEMMProblem(
            a: UnsafePointer(sa.base), lda: a.cols, n: a.cols, panels: panels, bias: nil, activation: .identity,
            c: sc.base, ldc: c.cols, transposedA: true)
        GEMM.run(problem, pool: pool, scratch: scratch)
        withExtendedLifetime(panels) {}
        sc.didWrite()
    }

    public func matmulTransposedB(_ a: DeviceMatrix, _ b: DeviceMatrix, into c: DeviceMatrix) throws {
        let op = "matmulTransposedB"
        try ShapeCheck.matmulTransposedB(a, b, c)
        let sa = try storage(a, op: op), sb = try storage(b, op: op), sc = try storage(c, op: op)
        try distinctOutput(sc, sa, sb, op: op)
        // a (N,M) · b (K,M)ᵀ -> c (N,K): the GEMM with depth M, right operand bᵀ packed per call into this
        // thread's scratch (not b's packed-weight cache: that holds the untransposed b for the forward pass).
        let own = scratch.take()
        defer { scratch.give(own) }
        let memory = own.buffer(PackedPanels.floats(rows: b.cols, cols: b.rows))
        let panels = PackedPanels(transposing: UnsafePointer(sb.base), rows: b.cols, cols: b.rows, into: memory)
        let problem = GEMMProblem(
            a: UnsafePointer(sa.base), lda: a.cols, n: a.rows, panels: panels, bias: nil, activation: .identity,
            c: sc.base, ldc: c.cols)
        GEMM.run(problem, pool: pool, scratch: scratch)
        withExtendedLifetime(panels) {}
        sc.didWrite()
    }

    // MARK: Bias gradient, activation backward

    public func sumColumns(_ x: DeviceMatrix, into y: DeviceMatrix) throws {
        let op = "sumColumns"
        try ShapeCheck.sumColumns(x, y)
        let sx = try storage(x, op: op), sy = try storage(y, op: op)
        try distinctOutput(sy, sx, sx, op: op)
        // x (N,M) -> y (1,M): every column summed top to bottom from +0; 32 columns side by side (four
        // SIMD8 chains). The last group is moved left to end at column M, so it may redo columns of the
        // previous group: same order, same bits.
        let n = x.rows, m = x.cols, src = UnsafePointer(sx.base), dst = sy.base
        if m >= 8 {
            var j = 0
            while j < m {
                let o0 = Swift.min(j, m - 8), o1 = Swift.min(j + 8, m - 8)
                let o2 = Swift.min(j + 16, m - 8), o3 = Swift.min(j + 24, m - 8)
                var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
                var row = src
                for _ in 0..<n {
                    s0 = s0 + load8(row + o0)
                    s1 = s1 + load8(row + o1)
                    s2 = s2 + load8(row + o2)
                    s3 = s3 + load8(row + o3)
                    row += m
                }
                store8(Numerics.canonical(s0), dst + o0)
                store8(Numerics.canonical(s1), dst + o1)
                store8(Numerics.canonical(s2), dst + o2)
                store8(Numerics.canonical(s3), dst + o3)
                j += 32
            }
        } else {
            for j in 0..<m {
                var s: Float = 0
                for r in 0..<n { s = s + src[r * m + j] }
                dst[j] = Numerics.canonical(s)
            }
        }
        sy.didWrite()
    }

    public func activationBackward(
        _ activation: Activation, output y: DeviceMatrix, gradient dy: DeviceMatrix, into dx: DeviceMatrix
    ) throws {
        let op = "activationBackward"
        try ShapeCheck.activationBackward(y, dy, dx)
        let sy = try storage(y, op: op), sg = try storage(dy, op: op), sd = try storage(dx, op: op)
        // Element-wise, so dx may be dy (or y): each index is read before it is written.
        let yp = UnsafePointer(sy.base), gp = UnsafePointer(sg.base), dp = sd.base, n = y.count
        var i = 0
        switch activation {
        case .identity:
            // dx = dy
            while i + 8 <= n {
                store8(Numerics.canonical(load8(gp + i)), dp + i)
                i += 8
            }
            while i < n { dp[i] = Numerics.canonical(gp[i]); i += 1 }
        case .sigmoid:
            // dx = (dy * (1 - y)) * y
            let one = SIMD8<Float>(repeating: 1)
            while i + 8 <= n {
                let yv = load8(yp + i)
                store8(Numerics.canonical((load8(gp + i) * (one - yv)) * yv), dp + i)
                i += 8
            }
            while i < n { dp[i] = Numerics.canonical((gp[i] * (1 - yp[i])) * yp[i]); i += 1 }
        case .relu:
            // dx = y <= 0 ? +0 : dy
            while i + 8 <= n {
                let yv = load8(yp + i)
                store8(Numerics.canonical(load8(gp + i).replacing(with: 0, where: yv .<= 0)), dp + i)
                i += 8
            }
            while i < n { dp[i] = yp[i] <= 0 ? 0 : Numerics.canonical(gp[i]); i += 1 }
        }
        sd.didWrite()
    }

    // MARK: Losses

    public func crossEntropy(_ y: DeviceMatrix, targets t: DeviceMatrix, into loss: DeviceMatrix, at index: Int) throws {
        let op = "crossEntropy"
        let form = try ShapeCheck.crossEntropy(y, t, loss, at: index)
        let sy = try storage(y, op: op), st = try storage(t, op: op), sl = try storage(loss, op: op)
        let n = y.rows, c = y.cols, yp = UnsafePointer(sy.base), tp = UnsafePointer(st.base)
        let guardValue = Numerics.crossEntropyGuard
        // s = Σᵢ rowᵢ from +0, rows in order; loss = -s / N
        var s: Float = 0
        switch form {
        case .labels:
            for i in 0..<n {
                // rowᵢ = log(y[i][tᵢ] + 1e-7); NaN for an invalid label
                let row: Float
                if let label = Reference.labelIndex(tp[i], classes: c) {
                    row = Numerics.log(yp[i * c + label] + guardValue)
                } else {
                    row = .nan
                }
                s = s + row
            }
        case .oneHot:
            for i in 0..<n {
                // rowᵢ = Σⱼ t[i][j] * log(y[i][j] + 1e-7), j left to right from +0
                var row: Float = 0
                let yr = yp + i * c, tr = tp + i * c
                for j in 0..<c { row = row + tr[j] * Numerics.log(yr[j] + guardValue) }
                s = s + row
            }
        }
        sl.base[index] = Numerics.canonical(-s / Float(n))
        sl.didWrite()
    }

    public func sumOfSquares(_ y: DeviceMatrix, targets t: DeviceMatrix, into loss: DeviceMatrix, at index: Int) throws {
        let op = "sumOfSquares"
        try ShapeCheck.sumOfSquares(y, t, loss, at: index)
        let sy = try storage(y, op: op), st = try storage(t, op: op), sl = try storage(loss, op: op)
        let yp = UnsafePointer(sy.base), tp = UnsafePointer(st.base), n = y.count
        // d = y - t (8 at a time), s = s + d * d element by element in row-major order from +0
        var s: Float = 0
        var i = 0
        while i + 8 <= n {
            let d = load8(yp + i) - load8(tp + i)
            let q = d * d
            s = s + q[0]; s = s + q[1]; s = s + q[2]; s = s + q[3]
            s = s + q[4]; s = s + q[5]; s = s + q[6]; s = s + q[7]
            i += 8
        }
        while i < n {
            let d = yp[i] - tp[i]
            s = s + d * d
            i += 1
        }
        sl.base[index] = Numerics.canonical(0.5 * s)
        sl.didWrite()
    }

    public func softmaxCrossEntropyBackward(_ y: DeviceMatrix, targets t: DeviceMatrix, into dx: DeviceMatrix) throws {
        let op = "softmaxCrossEntropyBackward"
        let form = try ShapeCheck.softmaxCrossEntropyBackward(y, t, dx)
        let sy = try storage(y, op: op), st = try storage(t, op: op), sd = try storage(dx, op: op)
        let n = y.rows, c = y.cols, yp = UnsafePointer(sy.base), tp = UnsafePointer(st.base), dp = sd.base
        let fn = Float(n), nv = SIMD8<Float>(repeating: Float(n))
        switch form {
        case .oneHot:
            // dx = (y - t) / N, element-wise (so dx may be y)
            let count = y.count
            var i = 0
            while i + 8 <= count {
                store8(Numerics.canonical((load8(yp + i) - load8(tp + i)) / nv), dp + i)
                i += 8
            }
            while i < count { dp[i] = Numerics.canonical((yp[i] - tp[i]) / fn); i += 1 }
        case .labels:
            // dx = (y - 0) / N = y / N (y - +0 is y for every y, -0 included), then (y - 1) / N at the
            // label; row by row, reading y[i][tᵢ] before the row is written (so dx may be y).
            for r in 0..<n {
                let yr = yp + r * c, dr = dp + r * c
                let label = Reference.labelIndex(tp[r], classes: c)
                let atLabel = label.map { Numerics.canonical((yr[$0] - 1) / fn) }
                var j = 0
                while j + 8 <= c {
                    store8(Numerics.canonical(load8(yr + j) / nv), dr + j)
                    j += 8
                }
                while j < c { dr[j] = Numerics.canonical(yr[j] / fn); j += 1 }
                if let label, let atLabel { dr[label] = atLabel }
            }
        }
        sd.didWrite()
    }

    // MARK: Optimizer step

    public func update(_ rule: UpdateRule, parameter p: DeviceMatrix, gradient g: DeviceMatrix, state: [DeviceMatrix]) throws {
        let op = "update"
        try ShapeCheck.update(rule, p, g, state)
        let sp = try storage(p, op: op), sg = try storage(g, op: op)
        let s0 = try state.first.map { try storage($0, op: op) }
        let s1 = try state.dropFirst().first.map { try storage($0, op: op) }
        // p and g may be the same matrix (each index is read before it is written); a state matrix that is
        // also p, g or the other state would be read after it was written.
        if let s0, s0 === sp || s0 === sg {
            throw BackendError.shapeMismatch("update: state[0] must be a matrix of its own, not p or g")
        }
        if let s1, s1 === sp || s1 === sg || s1 === s0 {
            throw BackendError.shapeMismatch("update: state[1] must be a matrix of its own, not p, g or state[0]")
        }
        let ptrs = UpdatePointers(p: sp.base, g: UnsafePointer(sg.base), s0: s0?.base ?? sp.base, s1: s1?.base ?? sp.base)
        let n = p.count
        // Element-wise and independent: split into pieces of whole SIMD8 vectors when large enough.
        let chunks = n < CPUBackend.updateThreadingThreshold(rule) ? 1 : pool.workers + 1
        if chunks == 1 {
            CPUBackend.update(rule, ptrs, 0..<n)
        } else {
            pool.run(chunks: chunks) { t in
                let lo = n * t / chunks / 8 * 8
                let hi = t == chunks - 1 ? n : n * (t + 1) / chunks / 8 * 8
                CPUBackend.update(rule, ptrs, lo..<hi)
            }
        }
        sp.didWrite()
        s0?.didWrite()
        s1?.didWrite()
    }

    /// Parameters at or above which an update is split across the pool threads: SGD and momentum are a few
    /// loads and stores per value (memory bound: 784×50 takes ~2 µs, less than waking a thread); AdaGrad
    /// and Adam spend a sqrt (one lane at a time: Swift has no vector sqrt) and a division per value,
    /// ~1.3 ns each, so 16384 values are ~20 µs of work.
    static func updateThreadingThreshold(_ rule: UpdateRule) -> Int {
        switch rule {
        case .sgd, .momentum: return Int.max
        case .adaGrad, .adam: return 1 << 14
        }
    }

    /// One optimizer step on the values `range` (SIMD8, then a scalar tail), with the formulas of
    /// ``UpdateRule`` in their order; every written value canonicalised.
    static func update(_ rule: UpdateRule, _ x: UpdatePointers, _ range: Range<Int>) {
        let p = x.p, g = x.g, s0 = x.s0, s1 = x.s1
        let eps = Numerics.optimizerEpsilon, epsv = SIMD8<Float>(repeating: eps)
        var i = range.lowerBound
        let end = range.upperBound
        switch rule {
        case .sgd(let lr):
            // p = p - lr * g
            let lrv = SIMD8<Float>(repeating: lr)
            while i + 8 <= end {
                store8(Numerics.canonical(load8(p + i) - lrv * load8(g + i)), p + i)
                i += 8
            }
            while i < end { p[i] = Numerics.canonical(p[i] - lr * g[i]); i += 1 }
        case .momentum(let lr, let momentum):
            // v = momentum * v - lr * g; p = p + v
            let lrv = SIMD8<Float>(repeating: lr), mv = SIMD8<Float>(repeating: momentum)
            while i + 8 <= end {
                let v = Numerics.canonical(mv * load8(s0 + i) - lrv * load8(g + i))
                store8(v, s0 + i)
                store8(Numerics.canonical(load8(p + i) + v), p + i)
                i += 8
            }
            while i < end {
                let v = Numerics.canonical(momentum * s0[i] - lr * g[i])
                s0[i] = v
                p[i] = Numerics.canonical(p[i] + v)
                i += 1
            }
        case .adaGrad(let lr):
            // h = h + g * g; p = p - (lr * g) / (sqrt(h) + eps)
            let lrv = SIMD8<Float>(repeating: lr)
            while i + 8 <= end {
                let gv = load8(g + i)
                let h = Numerics.canonical(load8(s0 + i) + gv * gv)
                store8(h, s0 + i)
                store8(Numerics.canonical(load8(p + i) - (lrv * gv) / (h.squareRoot() + epsv)), p + i)
                i += 8
            }
            while i < end {
                let gv = g[i]
                let h = Numerics.canonical(s0[i] + gv * gv)
                s0[i] = h
                p[i] = Numerics.canonical(p[i] - (lr * gv) / (h.squareRoot() + eps))
                i += 1
            }
        case .adam(let lrT, let b1, let b2):
            // m = m + b1 * (g - m); v = v + b2 * (g * g - v); p = p - (lrT * m) / (sqrt(v) + eps)
            let lrv = SIMD8<Float>(repeating: lrT)
            let b1v = SIMD8<Float>(repeating: b1), b2v = SIMD8<Float>(repeating: b2)
            while i + 8 <= end {
                let gv = load8(g + i), m0 = load8(s0 + i), v0 = load8(s1 + i)
                let m = Numerics.canonical(m0 + b1v * (gv - m0))
                let v = Numerics.canonical(v0 + b2v * (gv * gv - v0))
                store8(m, s0 + i)
                store8(v, s1 + i)
                store8(Numerics.canonical(load8(p + i) - (lrv * m) / (v.squareRoot() + epsv)), p + i)
                i += 8
            }
            while i < end {
                let gv = g[i], m0 = s0[i], v0 = s1[i]
                let m = Numerics.canonical(m0 + b1 * (gv - m0))
                let v = Numerics.canonical(v0 + b2 * (gv * gv - v0))
                s0[i] = m
                s1[i] = v
                p[i] = Numerics.canonical(p[i] - (lrT * m) / (v.squareRoot() + eps))
                i += 1
            }
        }
    }

    // MARK: Helpers

    /// Throws if `output` is `a` or `b` (the products and reductions read their inputs after writing).
    private func distinctOutput(_ output: CPUStorage, _ a: CPUStorage, _ b: CPUStorage, op: String) throws {
        guard output !== a, output !== b else {
            throw BackendError.shapeMismatch("\(op): the output must not be one of the inputs")
        }
    }
}

/// Raw pointers of one optimizer step handed to worker threads (each writes a disjoint range). s0 and s1
/// are the state matrices the rule keeps (unused ones point at p and are never touched).
struct UpdatePointers: @unchecked Sendable {
    let p: UnsafeMutablePointer<Float>
    let g: UnsafePointer<Float>
    let s0: UnsafeMutablePointer<Float>
    let s1: UnsafeMutablePointer<Float>
}
