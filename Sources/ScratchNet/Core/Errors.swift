// Errors raised by backends (both the CPU path and OpenCL map their failures onto this type or wrap it).

/// A backend op could not run: wrong shapes, a buffer from another backend, or a device failure.
public enum BackendError: Error, Sendable, CustomStringConvertible {
    /// Operand shapes do not fit; the message names the op, the operands and their shapes.
    case shapeMismatch(String)
    /// A ``DeviceMatrix`` created by another backend was passed in.
    case foreignBuffer(op: String, expected: String)
    /// The device failed; `message` says what and, where possible, what to do.
    case device(String)

    public var description: String {
        switch self {
        case .shapeMismatch(let m): return "shape mismatch: \(m)"
        case .foreignBuffer(let op, let expected):
            return "\(op): a matrix from another device was passed to the \(expected) backend; upload it to this backend first"
        case .device(let m): return m
        }
    }
}

/// Shape checks shared by every backend, so both report the same message for the same mistake.
package enum ShapeCheck {
    package static func matmul(_ a: DeviceMatrix, _ b: DeviceMatrix, _ c: DeviceMatrix, op: String = "matmul") throws(BackendError) {
        guard a.cols == b.rows, c.rows == a.rows, c.cols == b.cols else {
            throw .shapeMismatch("\(op): a \(a.shapeDescription) · b \(b.shapeDescription) -> c \(c.shapeDescription)")
        }
    }
    package static func affine(_ x: DeviceMatrix, _ w: DeviceMatrix, _ bias: DeviceMatrix, _ y: DeviceMatrix) throws(BackendError) {
        try matmul(x, w, y, op: "affine")
        guard bias.rows == 1, bias.cols == w.cols else {
            throw .shapeMismatch("affine: bias \(bias.shapeDescription) must be (1,\(w.cols)) for W \(w.shapeDescription)")
        }
    }
    package static func sameShape(_ x: DeviceMatrix, _ y: DeviceMatrix, op: String) throws(BackendError) {
        guard x.rows == y.rows, x.cols == y.cols else {
            throw .shapeMismatch("\(op): input \(x.shapeDescription) and output \(y.shapeDescription) differ")
        }
    }
    package static func write(_ count: Int, _ unit: String, to matrix: DeviceMatrix, op: String) throws(BackendError) {
        guard count == matrix.count else {
            throw .shapeMismatch("\(op): \(count) \(unit) for a \(matrix.shapeDescription) matrix (\(matrix.count) needed)")
        }
    }
    package static func upload(_ t: Tensor) throws(BackendError) -> (rows: Int, cols: Int) {
        guard t.rank == 1 || t.rank == 2 else {
            throw .shapeMismatch("upload: only rank-1 and rank-2 tensors go to a device, got shape \(t.shape)")
        }
        return t.matrixShape
    }
}
