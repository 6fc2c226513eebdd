// Shape checks of the training ops (backward passes, losses, optimizer steps), shared by every backend so
// that the same mistake gets the same message on the CPU and on OpenCL (as ShapeCheck in Errors.swift).

/// How the targets of a classification loss are given.
package enum TargetForm: Sendable, Equatable {
    /// t (N,C): probabilities or one-hot rows, same shape as y. Also chosen when C = 1 (the book's
    /// `t.size == y.size` test).
    case oneHot
    /// t (N,1): class indices as floats.
    case labels
}

extension ShapeCheck {
    /// a (N,K)ᵀ · b (N,M) -> c (K,M).
    package static func matmulTransposedA(_ a: DeviceMatrix, _ b: DeviceMatrix, _ c: DeviceMatrix) throws(BackendError) {
        guard a.rows == b.rows, c.rows == a.cols, c.cols == b.cols else {
            throw .shapeMismatch(
                "matmulTransposedA: a \(a.shapeDescription)ᵀ · b \(b.shapeDescription) -> c \(c.shapeDescription)")
        }
    }

    /// a (N,M) · b (K,M)ᵀ -> c (N,K).
    package static func matmulTransposedB(_ a: DeviceMatrix, _ b: DeviceMatrix, _ c: DeviceMatrix) throws(BackendError) {
        guard a.cols == b.cols, c.rows == a.rows, c.cols == b.rows else {
            throw .shapeMismatch(
                "matmulTransposedB: a \(a.shapeDescription) · b \(b.shapeDescription)ᵀ -> c \(c.shapeDescription)")
        }
    }

    /// x (N,M) -> y (1,M).
    package static func sumColumns(_ x: DeviceMatrix, _ y: DeviceMatrix) throws(BackendError) {
        guard y.rows == 1, y.cols == x.cols else {
            throw .shapeMismatch("sumColumns: x \(x.shapeDescription) -> y \(y.shapeDescription), needs (1,\(x.cols))")
        }
    }

    /// y, dy and dx of one shape.
    package static func activationBackward(_ y: DeviceMatrix, _ dy: DeviceMatrix, _ dx: DeviceMatrix) throws(BackendError) {
        guard y.rows == dy.rows, y.cols == dy.cols, dx.rows == y.rows, dx.cols == y.cols else {
            throw .shapeMismatch(
                "activationBackward: y \(y.shapeDescription), dy \(dy.shapeDescription) and dx \(dx.shapeDescription) differ")
        }
    }

    /// Targets for probabilities y (N,C): one-hot t (N,C) or labels t (N,1).
    package static func targets(_ y: DeviceMatrix, _ t: DeviceMatrix, op: String) throws(BackendError) -> TargetForm {
        guard t.rows == y.rows, t.cols == y.cols || t.cols == 1 else {
            throw .shapeMismatch(
                "\(op): targets \(t.shapeDescription) must be one-hot (\(y.rows),\(y.cols)) or labels (\(y.rows),1) for y \(y.shapeDescription)")
        }
        return t.cols == y.cols ? .oneHot : .labels
    }

    /// A loss slot: loss (1,L) with 0 ≤ index < L.
    package static func lossSlot(_ loss: DeviceMatrix, at index: Int, op: String) throws(BackendError) {
        guard loss.rows == 1, index >= 0, index < loss.cols else {
            throw .shapeMismatch("\(op): loss \(loss.shapeDescription) has no slot \(index); it must be (1,L) with index < L")
        }
    }

    /// y (N,C), t (N,C) or (N,1), loss (1,L) with index < L.
    package static func crossEntropy(_ y: DeviceMatrix, _ t: DeviceMatrix, _ loss: DeviceMatrix, at index: Int)
        throws(BackendError) -> TargetForm
    {
        let form = try targets(y, t, op: "crossEntropy")
        try lossSlot(loss, at: index, op: "crossEntropy")
        return form
    }

    /// y and t of one shape, loss (1,L) with index < L.
    package static func sumOfSquares(_ y: DeviceMatrix, _ t: DeviceMatrix, _ loss: DeviceMatrix, at index: Int) throws(BackendError) {
        guard y.rows == t.rows, y.cols == t.cols else {
            throw .shapeMismatch("sumOfSquares: y \(y.shapeDescription) and targets \(t.shapeDescription) differ")
        }
        try lossSlot(loss, at: index, op: "sumOfSquares")
    }

    /// y (N,C), t (N,C) or (N,1), dx (N,C).
    package static func softmaxCrossEntropyBackward(_ y: DeviceMatrix, _ t: DeviceMatrix, _ dx: DeviceMatrix)
        throws(BackendError) -> TargetForm
    {
        let form = try targets(y, t, op: "softmaxCrossEntropyBackward")
        guard dx.rows == y.rows, dx.cols == y.cols else {
            throw .shapeMismatch("softmaxCrossEntropyBackward: y \(y.shapeDescription) and dx \(dx.shapeDescription) differ")
        }
        return form
    }

    /// g and every state matrix shaped like p, exactly `rule.stateCount` state matrices.
    package static func update(_ rule: UpdateRule, _ p: DeviceMatrix, _ g: DeviceMatrix, _ state: [DeviceMatrix]) throws(BackendError) {
        guard g.rows == p.rows, g.cols == p.cols else {
            throw .shapeMismatch("update: parameter \(p.shapeDescription) and gradient \(g.shapeDescription) differ")
        }
        guard state.count == rule.stateCount else {
            throw .shapeMismatch("update: \(rule) keeps \(rule.stateCount) state matrices, got \(state.count)")
        }
        for (i, s) in state.enumerated() where s.rows != p.rows || s.cols != p.cols {
            throw .shapeMismatch("update: state[\(i)] \(s.shapeDescription) differs from the parameter \(p.shapeDescription)")
        }
    }
}
