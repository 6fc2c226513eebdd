// OpenCLTraining: the Backend's training ops (backward passes, losses, optimizer steps) on an OpenCL device,
// with the kernels of Kernels/train.cl. Each op enqueues at most one kernel and never waits for the device
// (the losses are written to a device matrix, not returned), so a whole training step stays on the queue.
// The kernels keep the exact evaluation order of Backend.swift's contract, so on a device with parity the
// results are bitwise those of the CPU path.

import ScratchNet

/// The kernels of train.cl, built in ``OpenCLBackend/init(deviceIndex:kernelDirectory:cache:tuning:)``.
struct TrainingKernels: Sendable {
    let matmulTN: CLKernel
    let matmulNT: CLKernel
    let sumColumns: CLKernel
    let activationBackward: CLKernel
    let loss: CLKernel
    let lossGroup: CLKernel
    let softmaxCrossEntropyBackward: CLKernel
    let update: CLKernel
    /// The SN_LOSS_WG train.cl was built with: the most work-items sn_loss_group takes (its local array).
    let lossGroupCapacity: Int

    init(program: CLProgram, lossGroupCapacity: Int) throws(OpenCLError) {
        self.lossGroupCapacity = lossGroupCapacity
        matmulTN = try CLKernel(program: program, name: "sn_matmul_tn")
        matmulNT = try CLKernel(program: program, name: "sn_matmul_nt")
        sumColumns = try CLKernel(program: program, name: "sn_sum_columns")
        activationBackward = try CLKernel(program: program, name: "sn_act_backward")
        loss = try CLKernel(program: program, name: "sn_loss")
        lossGroup = try CLKernel(program: program, name: "sn_loss_group")
        softmaxCrossEntropyBackward = try CLKernel(program: program, name: "sn_softmax_ce_backward")
        update = try CLKernel(program: program, name: "sn_update")
    }
}

extension OpenCLBackend {
    /// The largest work-group of sn_loss_group (train.cl's default SN_LOSS_WG, the size of its local array;
    /// devices with less local memory build it smaller, ``OpenCLTuning/lossGroupCapacity(device:)``).
    static let lossGroup = 64
    /// Values each sn_update work-item steps (one float8).
    static let updatePerItem = 8

    /// The work-group size the losses use on this device, ``OpenCLTuning/lossLocal`` of the effective tuning:
    /// 1 (sn_loss, one work-item, no barriers: pocl runs barriers inside loops slowly) on CPUs, up to
    /// ``lossGroup`` (sn_loss_group) on GPUs and accelerators, where one work-item alone is slow, as far as
    /// the device's work-group limits and local memory allow. Same bits either way.
    package var lossWorkGroup: Int { tuning.lossLocal }

    /// The SN_LOSS_WG train.cl was built with on this device (``OpenCLTuning/lossGroupCapacity(device:)``).
    package var lossGroupCapacity: Int { training.lossGroupCapacity }

    /// sn_loss modes.
    enum LossMode: Int32 {
        case crossEntropyLabels = 0
        case crossEntropyOneHot = 1
        case sumOfSquares = 2
    }

    public func matmulTransposedA(_ a: DeviceMatrix, _ b: DeviceMatrix, into c: DeviceMatrix) throws {
        try ShapeCheck.matmulTransposedA(a, b, c)
        // c (K,M) = a (N,K)ᵀ · b (N,M); one work-item per SN_TM×SN_TN tile of c (N = 0 still stores +0s)
        try transposedProduct(training.matmulTN, a, b, c, n: a.rows, k: a.cols, m: b.cols, op: "matmulTransposedA")
    }

    public func matmulTransposedB(_ a: DeviceMatrix, _ b: DeviceMatrix, into c: DeviceMatrix) throws {
        try ShapeCheck.matmulTransposedB(a, b, c)
        // c (N,K) = a (N,M) · b (K,M)ᵀ; one work-item per SN_TM×SN_TN tile of c (M = 0 stores +0s)
        try transposedProduct(training.matmulNT, a, b, c, n: a.rows, k: b.rows, m: a.cols, op: "matmulTransposedB")
    }

    /// Launches sn_matmul_tn / sn_matmul_nt over the tiles of c (rows × cols) with arguments (N, K, M, a, b, c).
    private func transposedProduct(
        _ kernel: CLKernel, _ a: DeviceMatrix, _ b: DeviceMatrix, _ c: DeviceMatrix, n: Int, k: Int, m: Int, op: String
    ) throws {
        try distinctOutput(c, a, b, op: op)
        let (ab, bb) = (try mem(a, op), try mem(b, op))
        let cb = try output(c, op)
        guard c.count > 0 else { return }
        try launch(kernel, global: gemmGlobal(rows: c.rows, cols: c.cols), local: tuning.gemmLocal) {
            kn throws(OpenCLError) in
            try kn.setArg(0, Int32(n))
            try kn.setArg(1, Int32(k))
            try kn.setArg(2, Int32(m))
            try kn.setArg(3, ab)
            try kn.setArg(4, bb)
            try kn.setArg(5, cb)
        }
    }

    public func sumColumns(_ x: DeviceMatrix, into y: DeviceMatrix) throws {
        let op = "sumColumns"
        try ShapeCheck.sumColumns(x, y)
        try distinctOutput(y, x, x, op: op)
        let xb = try mem(x, op)
        let yb = try output(y, op)
        guard y.count > 0 else { return }
        // y (1,M) = Σₙ x (N,M) [n]; one work-item per column, rows top to bottom (N = 0 stores +0s)
        try launch(
            training.sumColumns, global: [Self.roundUp(x.cols, tuning.elementLocal)], local: [tuning.elementLocal]
        ) { k throws(OpenCLError) in
            try k.setArg(0, Int32(x.rows))
            try k.setArg(1, Int32(x.cols))
            try k.setArg(2, xb)
            try k.setArg(3, yb)
        }
    }

    public func activationBackward(
        _ activation: Activation, output y: DeviceMatrix, gradient dy: DeviceMatrix, into dx: DeviceMatrix
    ) throws {
        let op = "activationBackward"
        try ShapeCheck.activationBackward(y, dy, dx)
        // Element-wise: dx may be dy (or y). Inputs are bound first (pending bytes converted), then dx.
        let (yb, dyb) = (try mem(y, op), try mem(dy, op))
        let dxb = try output(dx, op)
        guard dx.count > 0 else { return }
        // dx (N,M) = act'(y (N,M), dy (N,M)); one work-item per element
        try launch(
            training.activationBackward, global: [Self.roundUp(dx.count, tuning.elementLocal)],
            local: [tuning.elementLocal]
        ) { k throws(OpenCLError) in
            try k.setArg(0, Int32(dx.count))
            try k.setArg(1, Self.code(activation))
            try k.setArg(2, yb)
            try k.setArg(3, dyb)
            try k.setArg(4, dxb)
        }
    }

    public func crossEntropy(_ y: DeviceMatrix, targets t: DeviceMatrix, into loss: DeviceMatrix, at index: Int) throws {
        try crossEntropy(y, targets: t, into: loss, at: index, workGroup: lossWorkGroup)
    }

    public func sumOfSquares(_ y: DeviceMatrix, targets t: DeviceMatrix, into loss: DeviceMatrix, at index: Int) throws {
        try sumOfSquares(y, targets: t, into: loss, at: index, workGroup: lossWorkGroup)
    }

    /// ``crossEntropy(_:targets:into:at:)`` with an explicit work-group size (1: sn_loss; more: sn_loss_group,
    /// at most ``lossGroup``, shrunk to what the device allows), so tests can run both kernels on any device.
    package func crossEntropy(
        _ y: DeviceMatrix, targets t: DeviceMatrix, into loss: DeviceMatrix, at index: Int, workGroup: Int
    ) throws {
        let form = try ShapeCheck.crossEntropy(y, t, loss, at: index)
        let mode: LossMode = form == .oneHot ? .crossEntropyOneHot : .crossEntropyLabels
        try launchLoss(mode, y, t, loss, index, workGroup: workGroup, op: "crossEntropy")
    }

    /// ``sumOfSquares(_:targets:into:at:)`` with an explicit work-group size (as for the cross-entropy).
    package func sumOfSquares(
        _ y: DeviceMatrix, targets t: DeviceMatrix, into loss: DeviceMatrix, at index: Int, workGroup: Int
    ) throws {
        try ShapeCheck.sumOfSquares(y, t, loss, at: index)
        try launchLoss(.sumOfSquares, y, t, loss, index, workGroup: workGroup, op: "sumOfSquares")
    }

    public func softmaxCrossEntropyBackward(_ y: DeviceMatrix, targets t: DeviceMatrix, into dx: DeviceMatrix) throws {
        let op = "softmaxCrossEntropyBackward"
        let form = try ShapeCheck.softmaxCrossEntropyBackward(y, t, dx)
        // Element-wise in y: dx may be y (not t). Inputs are bound first, then dx.
        let (yb, tb) = (try mem(y, op), try mem(t, op))
        let dxb = try output(dx, op)
        guard dx.count > 0 else { return }
        // dx (N,C) = (y (N,C) - t) / N, t one-hot (N,C) or labels (N,1); one work-item per element
        try launch(
            training.softmaxCrossEntropyBackward, global: [Self.roundUp(dx.count, tuning.elementLocal)],
            local: [tuning.elementLocal]
        ) { k throws(OpenCLError) in
            try k.setArg(0, Int32(y.rows))
            try k.setArg(1, Int32(y.cols))
            try k.setArg(2, Int32(form == .labels ? 1 : 0))
            try k.setArg(3, yb)
            try k.setArg(4, tb)
            try k.setArg(5, dxb)
        }
    }

    public func update(_ rule: UpdateRule, parameter p: DeviceMatrix, gradient g: DeviceMatrix, state: [DeviceMatrix]) throws {
        let op = "update"
        try ShapeCheck.update(rule, p, g, state)
        // p and g may be the same matrix (each element is read before it is written); a state matrix that is
        // also p, g or the other state would be read after it was written (the CPU backend's rule too).
        if let s0 = state.first, s0.storage === p.storage || s0.storage === g.storage {
            throw BackendError.shapeMismatch("update: state[0] must be a matrix of its own, not p or g")
        }
        if state.count > 1, state[1].storage === p.storage || state[1].storage === g.storage
            || state[1].storage === state[0].storage
        {
            throw BackendError.shapeMismatch("update: state[1] must be a matrix of its own, not p, g or state[0]")
        }
        // Read-modify-write: pending bytes are converted first, packed copies dropped after.
        let gb = try mem(g, op)
        let pb = try mem(p, op)
        let sb = try state.map { s in try mem(s, op) }
        written(p)
        state.forEach { written($0) }
        guard p.count > 0 else { return }
        let (code, c0, c1, c2) = rule.coefficients
        // p (N,M) and its state (N,M) updated in place from g (N,M); one work-item per 8 elements
        let items = (p.count + Self.updatePerItem - 1) / Self.updatePerItem
        try launch(training.update, global: [Self.roundUp(items, tuning.elementLocal)], local: [tuning.elementLocal]) {
            k throws(OpenCLError) in
            try k.setArg(0, Int32(p.count))
            try k.setArg(1, code)
            try k.setArg(2, c0)
            try k.setArg(3, c1)
            try k.setArg(4, c2)
            try k.setArg(5, pb)
            try k.setArg(6, gb)
            try k.setArg(7, sb.count > 0 ? sb[0] : placeholder)
            try k.setArg(8, sb.count > 1 ? sb[1] : placeholder)
        }
    }

    // MARK: Helpers

    /// Throws if `output` is `a` or `b`: the products and column sums read their inputs after other
    /// work-items wrote outputs (the CPU backend's rule and message).
    func distinctOutput(_ output: DeviceMatrix, _ a: DeviceMatrix, _ b: DeviceMatrix, op: String) throws(BackendError) {
        guard output.storage !== a.storage, output.storage !== b.storage else {
            throw .shapeMismatch("\(op): the output must not be one of the inputs")
        }
    }

    /// One loss launch writing `loss[index]` (shapes already checked): sn_loss as a single work-item when
    /// `workGroup` is 1, else sn_loss_group as a single work-group of up to `workGroup` work-items.
    func launchLoss(
        _ mode: LossMode, _ y: DeviceMatrix, _ t: DeviceMatrix, _ loss: DeviceMatrix, _ index: Int, workGroup: Int,
        op: String
    ) throws {
        guard (1...Self.lossGroup).contains(workGroup) else {
            throw BackendError.device("\(op): loss work-group size \(workGroup) is outside 1...\(Self.lossGroup)")
        }
        let (yb, tb) = (try mem(y, op), try mem(t, op))
        // Only one value is written: keep the others (convert pending bytes first), drop the packed copy.
        let lb = try mem(loss, op)
        written(loss)
        // The group fitted to the device like the tuning's (1: sn_loss, when sn_loss_group's local array does
        // not fit the device's local memory), so an explicit size runs on any device too.
        let group = OpenCLTuning.fitLossGroup(
            workGroup, capacity: training.lossGroupCapacity, device: info.limits, kernel: training.lossGroup.limits)
        let kernel = group == 1 ? training.loss : training.lossGroup
        // loss[index] = the loss of y (N,C) against t: one work-item computing and summing the terms in order,
        // or one work-group computing them in parallel and work-item 0 summing them in order
        try launch(kernel, global: [group], local: [group]) { k throws(OpenCLError) in
            try k.setArg(0, mode.rawValue)
            try k.setArg(1, Int32(y.rows))
            try k.setArg(2, Int32(y.cols))
            try k.setArg(3, yb)
            try k.setArg(4, tb)
            try k.setArg(5, lb)
            try k.setArg(6, Int32(index))
        }
    }

    /// Launches every train.cl kernel once at the local sizes real work uses (see ``warmUp()``).
    func warmUpTraining() throws {
        let rows = tuning.tileRows + 1
        let x = try upload([Float](repeating: 0.5, count: rows * 3), rows: rows, cols: 3)
        let d = try upload([Float](repeating: 0.25, count: rows * 2), rows: rows, cols: 2)
        let w = try makeMatrix(rows: 3, cols: 2)
        let dx = try makeMatrix(rows: rows, cols: 3)
        let b = try makeMatrix(rows: 1, cols: 2)
        let labels = try upload([Float](repeating: 1, count: rows), rows: rows, cols: 1)
        let loss = try makeMatrix(rows: 1, cols: 2)
        try matmulTransposedA(x, d, into: w)
        try matmulTransposedB(d, w, into: dx)
        try sumColumns(d, into: b)
        try activationBackward(.sigmoid, output: dx, gradient: dx, into: dx)
        try crossEntropy(d, targets: labels, into: loss, at: 0)
        try sumOfSquares(d, targets: d, into: loss, at: 1)
        let g = try makeMatrix(rows: rows, cols: 2)
        try softmaxCrossEntropyBackward(d, targets: labels, into: g)
        let p = try upload([1, -1], rows: 1, cols: 2)
        let state = [try upload([0, 0], rows: 1, cols: 2), try upload([0, 0], rows: 1, cols: 2)]
        try update(.adam(lrT: 0x1p-10, oneMinusBeta1: 0x1p-3, oneMinusBeta2: 0x1p-10), parameter: p, gradient: b,
                   state: state)
    }
}
