// The CPU backend's fused whole-network forward pass (Backend.forward / Backend.predict): each block of
// rows runs through ALL layers while its activations are hot in cache, then softmax, then (predict) the
// argmax — instead of one pass over the whole batch per layer.
//
//   x block (rb, K0) · W1 (K0, M1) + b1 -> act1 -> scratch (rb, M1)      [blocked GEMM, no packing of x]
//   · W2 (M1, M2) + b2 -> act2 -> scratch (rb, M2)                        [ping-pong buffers]
//   ...
//   · Wn + bn -> actn -> y rows (forward) or scratch (predict) -> softmax -> argmax
//
// Every layer is the same GEMM (same micro-kernels, same k order, same epilogue) as affine(), and the
// softmax is the same row function as softmaxRows(), so the result is bitwise equal to running the layers
// one by one. Rows are split into a few pieces per thread (6-row multiples, claimed dynamically by the
// caller and the pool's threads) only when the batch is large enough; batch 1 and small batches run on the caller with no thread hand-off and no allocation (scratch
// buffers and the per-layer plan are reused).

/// One layer of a fused pass, resolved to CPU memory.
struct FusedLayer {
    /// W (K, M), packed.
    let panels: PackedPanels
    /// bias[0..<M].
    let bias: UnsafePointer<Float>
    let activation: Activation
}

/// What the threads of one fused pass share. The plan is read from `owner` (the caller's scratch), which
/// no one writes while the pass runs.
struct FusedJob: @unchecked Sendable {
    // @unchecked Sendable: the pointers outlive the synchronous call; threads write disjoint rows.
    let x: UnsafePointer<Float>
    let n: Int
    let k: Int
    /// forward: the output rows; nil for predict.
    let y: UnsafeMutablePointer<Float>?
    /// predict: one index per row; nil for forward.
    let predictions: UnsafeMutablePointer<Int32>?
    let softmax: Bool
    /// The widest layer output (scratch buffers hold rb × maxWidth floats each).
    let maxWidth: Int
    let owner: Scratch
}

extension CPUBackend {
    /// Rows per block of the fused pass: large enough that every K block of a weight matrix (in L1) is
    /// reused by 16 micro-panels, small enough that the block's activations (rb × width, two buffers)
    /// and the x rows of one K block stay in L2.
    static let fusedBlockRows = 96
    /// Below this many multiply-adds per call (rows × Σ K·M, ~30 µs on one core) the caller runs the
    /// whole pass alone.
    static let fusedThreadingThreshold = 1 << 20

    /// The whole MLP in one pass, bitwise equal to ``affine(_:_:bias:activation:into:)`` per layer then
    /// ``softmaxRows(_:into:)``. Returns false only for an empty layer list (nothing to fuse). Throws like
    /// the unfused ops for foreign matrices and shape mismatches, and when `y` is the input or a parameter.
    public func forward(_ x: DeviceMatrix, layers: [DenseLayer], softmax: Bool, into y: DeviceMatrix) throws -> Bool {
        guard let last = layers.last else { return false }
        let sy = try storage(y, op: "forward")
        guard y.rows == x.rows, y.cols == last.weights.cols else {
            throw BackendError.shapeMismatch(
                "forward: x \(x.shapeDescription) through \(layers.count) layers gives (\(x.rows),\(last.weights.cols)), not y \(y.shapeDescription)")
        }
        let owner = scratch.take()
        defer { scratch.give(owner) }
        let (sx, maxWidth) = try plan(x, layers, output: sy, op: "forward", into: owner)
        runFused(FusedJob(
            x: UnsafePointer(sx.base), n: x.rows, k: x.cols, y: sy.base, predictions: nil, softmax: softmax,
            maxWidth: maxWidth, owner: owner))
        sy.didWrite()
        return true
    }

    /// Like ``forward(_:layers:softmax:into:)`` but keeps only ``Numerics/argmax(_:)`` of each final row
    /// (after the softmax, if any), written to `predictions` (exactly x.rows of them). Returns false only
    /// for an empty layer list.
    public func predict(
        _ x: DeviceMatrix, layers: [DenseLayer], softmax: Bool, into predictions: UnsafeMutableBufferPointer<Int32>
    ) throws -> Bool {
        guard !layers.isEmpty else { return false }
        guard predictions.count == x.rows else {
            throw BackendError.shapeMismatch(
                "predict: \(predictions.count) predictions for x \(x.shapeDescription) (\(x.rows) needed)")
        }
        let owner = scratch.take()
        defer { scratch.give(owner) }
        let (sx, maxWidth) = try plan(x, layers, output: nil, op: "predict", into: owner)
        guard let out = predictions.baseAddress else { return true }
        runFused(FusedJob(
            x: UnsafePointer(sx.base), n: x.rows, k: x.cols, y: nil, predictions: out, softmax: softmax,
            maxWidth: maxWidth, owner: owner))
        return true
    }

    /// Checks the layer chain (x.cols = W1 rows, W(i) cols = W(i+1) rows, biases (1, out)), that the output
    /// is none of the inputs, and fills `owner.plan`. Returns x's storage and the widest layer output.
    private func plan(
        _ x: DeviceMatrix, _ layers: [DenseLayer], output: CPUStorage?, op: String, into owner: Scratch
    ) throws -> (CPUStorage, Int) {
        let sx = try storage(x, op: op)
        guard output !== sx else { throw BackendError.shapeMismatch("\(op): the output must not be the input") }
        owner.plan.removeAll(keepingCapacity: true)
        var width = x.cols
        var maxWidth = 0
        for (i, layer) in layers.enumerated() {
            let w = layer.weights, b = layer.bias
            guard w.rows == width else {
                throw BackendError.shapeMismatch(
                    "\(op): layer \(i + 1) has W \(w.shapeDescription) but its input has \(width) columns")
            }
            guard b.rows == 1, b.cols == w.cols else {
                throw BackendError.shapeMismatch(
                    "\(op): layer \(i + 1) has bias \(b.shapeDescription), not (1,\(w.cols)) for W \(w.shapeDescription)")
            }
            let sw = try storage(w, op: op), sb = try storage(b, op: op)
            guard output !== sw, output !== sb else {
                throw BackendError.shapeMismatch("\(op): the output must not be one of the layers' parameters")
            }
            owner.plan.append(FusedLayer(
                panels: sw.packed(rows: w.rows, cols: w.cols), bias: UnsafePointer(sb.base),
                activation: layer.activation))
            width = w.cols
            maxWidth = Swift.max(maxWidth, width)
        }
        return (sx, maxWidth)
    }

    /// Runs a planned pass on the caller, or on the caller and the pool for a large batch.
    private func runFused(_ job: FusedJob) {
        guard job.n > 0 else { return }
        var perRow = 0
        for layer in job.owner.plan { perRow += Swift.max(layer.panels.rows, 1) * layer.panels.cols }
        let blocks = (job.n + GEMM.mr - 1) / GEMM.mr
        let threads = job.n * perRow < CPUBackend.fusedThreadingThreshold ? 1 : pool.workers + 1
        let chunks = threads <= 1 ? 1 : Swift.min(GEMM.tasksPerThread * threads, blocks)
        if chunks <= 1 {
            CPUBackend.fusedRows(job, from: 0, to: job.n, scratch: job.owner)
            return
        }
        let pool = scratch
        self.pool.run(chunks: chunks) { t in
            // Contiguous ranges of 6-row blocks, as even as possible.
            let i0 = Swift.min(blocks * t / chunks * GEMM.mr, job.n)
            let i1 = Swift.min(blocks * (t + 1) / chunks * GEMM.mr, job.n)
            guard i1 > i0 else { return }
            let s = pool.take()
            CPUBackend.fusedRows(job, from: i0, to: i1, scratch: s)
            pool.give(s)
        }
    }

    /// Rows i0 ..< i1 through every layer, block by block, on the calling thread.
    private static func fusedRows(_ job: FusedJob, from i0: Int, to i1: Int, scratch: Scratch) {
        let plan = job.owner.plan
        let rb = Swift.min(fusedBlockRows, i1 - i0)
        let half = rb * job.maxWidth
        let buffers = scratch.buffer(2 * half)
        var r = i0
        while r < i1 {
            let rows = Swift.min(rb, i1 - r)
            var a = job.x + r * job.k
            var lda = job.k
            for l in plan.indices {
                let layer = plan[l]
                let m = layer.panels.cols
                var c = buffers + (l & 1) * half
                if l == plan.count - 1, let y = job.y { c = y + r * m }
                // a (rows, K) · W (K, M) + b -> activation -> c (rows, M)
                let problem = GEMMProblem(
                    a: a, lda: lda, n: rows, panels: layer.panels, bias: layer.bias,
                    activation: layer.activation, c: c, ldc: m)
                GEMM.compute(problem, panels: 0..<layer.panels.count, scratch: nil)
                a = UnsafePointer(c)
                lda = m
            }
            let out = UnsafeMutablePointer(mutating: a)
            if job.softmax {
                for i in 0..<rows { softmaxRow(a + i * lda, out + i * lda, lda) }
            }
            if let predictions = job.predictions {
                for i in 0..<rows {
                    predictions[r + i] = Int32(Numerics.argmax(UnsafeBufferPointer(start: a + i * lda, count: lda)))
                }
            }
            r += rows
        }
    }
}
