// The Backend protocol: the one interface through which layers, networks and the CLI run ops, whatever the
// device. Implementations: CPUBackend (pure Swift, this module) and OpenCLBackend (ScratchNetOpenCL).
//
// Numerics contract (what makes results bitwise identical on every backend):
//  - matmul/affine: each output c[i][j] starts at +0 and accumulates fma(a[i][k], b[k][j], acc) for
//    k = 0, 1, ..., K-1 in that order; then (affine) `acc + bias[j]`, then the activation.
//  - sigmoid, softmax and exp use exactly the formulas in Numerics.swift (mirrored in Kernels/sn_math.cl).
//  - softmax: row max by `x > m ? x : m` from -inf, e = exp(x - m), sum from +0 left to right, e / sum.
//  - division is IEEE correctly rounded; no contraction of a*b+c, no fast-math, no built-in exp.

/// What an activation applied element-wise (or fused into an affine epilogue) computes.
public enum Activation: String, Sendable, CaseIterable, Codable {
    /// y = x
    case identity
    /// y = 1 / (1 + exp(-x)), with ``Numerics/exp(_:)``.
    case sigmoid
    /// y = x > 0 ? x : 0 (NaN stays NaN).
    case relu
}

/// Device memory owned by one backend. Each backend defines its own storage class.
public protocol DeviceStorage: AnyObject, Sendable {}

/// A row-major float32 matrix that lives on a backend's device.
///
/// Buffers stay on the device between ops; only ``Backend/upload(_:)`` and ``Backend/download(_:)`` move
/// data across. A rank-1 tensor (a bias) is a 1×n matrix.
public final class DeviceMatrix: Sendable {
    /// Number of rows (the batch dimension for activations).
    public let rows: Int
    /// Number of columns.
    public let cols: Int
    /// The backend-specific memory.
    public let storage: any DeviceStorage

    /// Wraps storage created by a backend. Backends call this; users get matrices from a backend.
    public init(rows: Int, cols: Int, storage: any DeviceStorage) {
        self.rows = rows
        self.cols = cols
        self.storage = storage
    }

    /// rows × cols.
    public var count: Int { rows * cols }
    /// "(rows,cols)", for messages.
    public var shapeDescription: String { "(\(rows),\(cols))" }
}

/// One layer of a fused multi-layer perceptron: y = activation(x · weights + bias).
public struct DenseLayer: Sendable {
    /// (in, out)
    public let weights: DeviceMatrix
    /// (1, out)
    public let bias: DeviceMatrix
    public let activation: Activation

    public init(weights: DeviceMatrix, bias: DeviceMatrix, activation: Activation) {
        self.weights = weights
        self.bias = bias
        self.activation = activation
    }
}

/// A compute device: the pure-Swift CPU path or an OpenCL device.
///
/// All methods are synchronous from the caller's point of view: when `download` returns, every op
/// enqueued before it has finished. Ops write into caller-provided outputs so buffers can be reused
/// across batches. Output and input matrices of one op must not alias unless the op is element-wise.
public protocol Backend: AnyObject, Sendable {
    /// What this backend runs on, for logs and `scratchnet devices`.
    var device: DeviceDescription { get }

    /// Allocates an uninitialised rows×cols matrix on the device.
    func makeMatrix(rows: Int, cols: Int) throws -> DeviceMatrix
    /// Copies a rank-1 (as 1×n) or rank-2 host tensor to a new device matrix.
    func upload(_ tensor: Tensor) throws -> DeviceMatrix
    /// Copies `values` (row-major, exactly `matrix.count` of them) into an existing device matrix.
    func write(_ values: UnsafeBufferPointer<Float>, to matrix: DeviceMatrix) throws
    /// Writes bytes (row-major, exactly `matrix.count` of them) into an existing device matrix as
    /// `Float(byte) / divisor`, correctly rounded: the book's `x.astype(np.float32) / 255.0` with 255.
    /// Images can stay bytes on the host (4× less memory; on OpenCL, 4× less to transfer).
    func write(bytes: UnsafeBufferPointer<UInt8>, dividedBy divisor: Float, to matrix: DeviceMatrix) throws
    /// Copies a device matrix back to the host as a rank-2 tensor, after all pending work finished.
    func download(_ matrix: DeviceMatrix) throws -> Tensor

    /// c (N,M) = a (N,K) · b (K,M). Each output accumulates over k in increasing order with fma.
    func matmul(_ a: DeviceMatrix, _ b: DeviceMatrix, into c: DeviceMatrix) throws
    /// y (N,M) = activation(x (N,K) · w (K,M) + bias (1,M)), the matmul's order then one add.
    func affine(
        _ x: DeviceMatrix, _ w: DeviceMatrix, bias: DeviceMatrix, activation: Activation,
        into y: DeviceMatrix) throws
    /// y = activation(x), element-wise; `y` may be `x`.
    func apply(_ activation: Activation, _ x: DeviceMatrix, into y: DeviceMatrix) throws
    /// Row-wise numerically stable softmax (subtract the row max); `y` may be `x`.
    func softmaxRows(_ x: DeviceMatrix, into y: DeviceMatrix) throws
    /// The index of the largest value of each row (first one on ties; a NaN counts as the largest, as in
    /// NumPy), downloaded to the host.
    func argmaxRows(_ x: DeviceMatrix) throws -> [Int]

    /// Copies a device matrix into host memory (exactly `matrix.count` floats) after all pending work
    /// finished, without allocating.
    func read(_ matrix: DeviceMatrix, into values: UnsafeMutableBufferPointer<Float>) throws

    /// A whole MLP in one pass: h = x; for each layer h = activation(h · W + b); then row softmax if
    /// `softmax`; the result goes to `y` (N, out). Bitwise equal to running ``affine(_:_:bias:activation:into:)``
    /// per layer and then ``softmaxRows(_:into:)``. Returns false, doing nothing, when this backend has no
    /// fused path for these sizes; callers then run the layers one by one.
    func forward(_ x: DeviceMatrix, layers: [DenseLayer], softmax: Bool, into y: DeviceMatrix) throws -> Bool

    /// Like ``forward(_:layers:softmax:into:)`` but only the argmax of each output row is kept, written to
    /// `predictions` (x.rows of them) on the host: one small download instead of the outputs. Returns false,
    /// doing nothing, when there is no fused path for these sizes.
    func predict(
        _ x: DeviceMatrix, layers: [DenseLayer], softmax: Bool, into predictions: UnsafeMutableBufferPointer<Int32>
    ) throws -> Bool
}

extension Backend {
    /// No fused path unless a backend provides one.
    public func forward(_ x: DeviceMatrix, layers: [DenseLayer], softmax: Bool, into y: DeviceMatrix) throws -> Bool {
        false
    }

    /// No fused path unless a backend provides one.
    public func predict(
        _ x: DeviceMatrix, layers: [DenseLayer], softmax: Bool, into predictions: UnsafeMutableBufferPointer<Int32>
    ) throws -> Bool {
        false
    }
}

extension Backend {
    /// Allocates and fills a device matrix from row-major values.
    public func upload(_ values: [Float], rows: Int, cols: Int) throws -> DeviceMatrix {
        try upload(Tensor(shape: [rows, cols], scalars: values))
    }
}
