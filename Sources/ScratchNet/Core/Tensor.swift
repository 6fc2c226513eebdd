// Tensor: a host-side, row-major float32 array with a shape. It is what loaders produce, what backends
// upload from and download into, and what the public API hands back to callers.

/// A dense row-major `Float` array with a shape, in host memory.
///
/// Rank 0 is a scalar, rank 1 a vector (a bias), rank 2 a matrix (a batch of rows, or a weight
/// matrix `W (in, out)` as in the book). Backends work on rank-1 and rank-2 tensors; loaders may return
/// any rank.
public struct Tensor: Sendable, Equatable {
    /// The extent of each dimension, outermost first.
    public let shape: [Int]
    /// The values in row-major (C) order; `scalars.count == shape.reduce(1, *)`.
    public var scalars: [Float]

    /// Creates a tensor, checking that `scalars` fills `shape` exactly.
    public init(shape: [Int], scalars: [Float]) throws(ShapeError) {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw ShapeError("negative dimension in shape \(shape)") }
        let count = shape.reduce(1, *)
        guard count == scalars.count else {
            throw ShapeError("shape \(shape) needs \(count) values, got \(scalars.count)")
        }
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor of zeros.
    public init(zeros shape: [Int]) {
        self.shape = shape
        self.scalars = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// A matrix from rows of equal length (handy in tests and examples).
    public init(rows: [[Float]]) throws(ShapeError) {
        let cols = rows.first?.count ?? 0
        guard rows.allSatisfy({ $0.count == cols }) else { throw ShapeError("rows of unequal length") }
        try self.init(shape: [rows.count, cols], scalars: rows.flatMap { $0 })
    }

    /// The number of dimensions.
    public var rank: Int { shape.count }
    /// The number of values.
    public var count: Int { scalars.count }

    /// The tensor seen as a matrix: rank 2 as is, rank 1 as a single row, rank 0 as 1×1.
    /// Higher ranks keep their first dimension and flatten the rest, as the book's `flatten` does.
    public var matrixShape: (rows: Int, cols: Int) {
        switch shape.count {
        case 0: return (1, 1)
        case 1: return (1, shape[0])
        default: return (shape[0], shape.dropFirst().reduce(1, *))
        }
    }

    /// The same values with another shape of the same size.
    public func reshaped(_ newShape: [Int]) throws(ShapeError) -> Tensor {
        try Tensor(shape: newShape, scalars: scalars)
    }

    /// Row `i` of a matrix view.
    public func row(_ i: Int) -> ArraySlice<Float> {
        let cols = matrixShape.cols
        return scalars[(i * cols)..<((i + 1) * cols)]
    }
}

/// A tensor had the wrong shape for what was asked of it.
public struct ShapeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What did not fit, naming the tensors and their shapes.
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
