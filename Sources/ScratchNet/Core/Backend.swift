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
    /// y = 1 / (1 + exp(-x)), with ``Numerics/exp(_:)->Float``.
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

    // MARK: Training ops (backward passes, losses, optimizer steps). Every reduction has one fixed order,
    // spelled out below, so gradients, losses and updated weights are bitwise identical on every backend.
    // No op here contracts a*b+c into an fma unless it says `fma`. Every NaN output is the canonical NaN.

    /// c (K,M) = aᵀ · b for a (N,K), b (N,M): the Affine weight gradient dW = xᵀ · dout.
    /// Each c[i][j] starts at +0 and accumulates `fma(a[n][i], b[n][j], acc)` for n = 0, 1, ..., N-1.
    /// With N = 0, c is all +0.
    func matmulTransposedA(_ a: DeviceMatrix, _ b: DeviceMatrix, into c: DeviceMatrix) throws
    /// c (N,K) = a · bᵀ for a (N,M), b (K,M): the Affine input gradient dx = dout · Wᵀ.
    /// Each c[i][j] starts at +0 and accumulates `fma(a[i][m], b[j][m], acc)` for m = 0, 1, ..., M-1.
    func matmulTransposedB(_ a: DeviceMatrix, _ b: DeviceMatrix, into c: DeviceMatrix) throws
    /// y (1,M) = the column sums of x (N,M): the Affine bias gradient db = Σₙ dout[n].
    /// Each y[j] = ((+0 + x[0][j]) + x[1][j]) + ... + x[N-1][j], left to right.
    func sumColumns(_ x: DeviceMatrix, into y: DeviceMatrix) throws
    /// dx = the gradient through an activation, from its forward *output* y and the incoming gradient dy
    /// (all the same shape; `dx` may be `dy`):
    ///  - identity: dx = dy
    ///  - sigmoid:  dx = (dy * (1 - y)) * y      (the book's `dout * (1.0 - self.out) * self.out`)
    ///  - relu:     dx = y <= 0 ? +0 : dy        (the book's mask `x <= 0`; y = relu(x) is +0 exactly there,
    ///                                             and a NaN y lets dy through as a NaN x does in the book)
    func activationBackward(_ activation: Activation, output y: DeviceMatrix, gradient dy: DeviceMatrix,
                            into dx: DeviceMatrix) throws
    /// Cross-entropy of probabilities y (N,C) against targets t, the book's batch form, written to
    /// `loss[index]` (loss is (1,L), index < L) without a host round trip:
    ///  - labels, t (N,1) holding class indices as floats: rowᵢ = log(y[i][tᵢ] + 1e-7)
    ///  - one-hot, t (N,C): rowᵢ = Σⱼ t[i][j] * log(y[i][j] + 1e-7), j left to right from +0, no fma
    /// then s = rows summed left to right from +0, and loss = -s / Float(N) (correctly rounded division).
    /// `log` is ``Numerics/log(_:)``; 1e-7 is the float ``Numerics/crossEntropyGuard``. A label that is not an
    /// integer in 0..<C gives a NaN row (so a NaN loss), never an out-of-bounds read. N = 0 gives NaN.
    func crossEntropy(_ y: DeviceMatrix, targets t: DeviceMatrix, into loss: DeviceMatrix, at index: Int) throws
    /// The book's sum of squares 0.5 * Σ (y - t)² over all elements of y and t (same shape), written to
    /// `loss[index]`: d = y - t, s = s + d * d (no fma) row-major from +0, loss = 0.5 * s.
    func sumOfSquares(_ y: DeviceMatrix, targets t: DeviceMatrix, into loss: DeviceMatrix, at index: Int) throws
    /// SoftmaxWithLoss backward from its forward output y = softmax(x) (N,C): dx = (y - t) / Float(N), with t
    /// one-hot (N,C) or labels (N,1) as in ``crossEntropy(_:targets:into:at:)`` (for labels, t[i][j] is 1 where
    /// j == tᵢ and 0 elsewhere; an invalid label subtracts nothing). Division, not a multiply by 1/N.
    func softmaxCrossEntropyBackward(_ y: DeviceMatrix, targets t: DeviceMatrix, into dx: DeviceMatrix) throws
    /// One optimizer step on one parameter, element-wise, in place (see ``UpdateRule`` for the formulas).
    /// `state` holds the rule's ``UpdateRule/stateCount`` matrices (velocity; h; m and v), same shape as `p`.
    func update(_ rule: UpdateRule, parameter p: DeviceMatrix, gradient g: DeviceMatrix,
                state: [DeviceMatrix]) throws

    /// Like ``forward(_:layers:softmax:into:)`` but only the argmax of each output row is kept, written to
    /// `predictions` (x.rows of them) on the host: one small download instead of the outputs. Returns false,
    /// doing nothing, when there is no fused path for these sizes.
    func predict(
        _ x: DeviceMatrix, layers: [DenseLayer], softmax: Bool, into predictions: UnsafeMutableBufferPointer<Int32>
    ) throws -> Bool

    /// The device code that runs `op` on this backend (e.g. an OpenCL kernel name), for self-check and
    /// parity messages; nil when there is nothing more specific to name than the op.
    func kernelName(for op: CheckedOp) -> String?
}

extension Backend {
    /// The device code that runs `op` on this backend (OpenCL kernel names), for messages; nil by default
    /// (the CPU path has no kernels).
    public func kernelName(for op: CheckedOp) -> String? { nil }

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

/// One optimizer step's element-wise formula with its coefficients, as the book's chapter 6 writes it.
///
/// The host computes the coefficients (in Double, rounded once to Float: Adam's bias-corrected `lrT`, and
/// `1 - beta`), so every device gets the same Floats. Each formula is evaluated in exactly the order shown,
/// with no fma; `sqrt` and `/` are correctly rounded; eps is ``Numerics/optimizerEpsilon`` (1e-7 as a float).
public enum UpdateRule: Sendable, Equatable {
    /// p = p - lr * g
    case sgd(lr: Float)
    /// v = momentum * v - lr * g; p = p + v        (state: [v])
    case momentum(lr: Float, momentum: Float)
    /// h = h + g * g; p = p - (lr * g) / (sqrt(h) + eps)        (state: [h])
    case adaGrad(lr: Float)
    /// m = m + oneMinusBeta1 * (g - m); v = v + oneMinusBeta2 * (g * g - v);
    /// p = p - (lrT * m) / (sqrt(v) + eps)        (state: [m, v])
    case adam(lrT: Float, oneMinusBeta1: Float, oneMinusBeta2: Float)

    /// How many state matrices (each shaped like the parameter, starting at +0) the rule keeps.
    public var stateCount: Int {
        switch self {
        case .sgd: return 0
        case .momentum, .adaGrad: return 1
        case .adam: return 2
        }
    }

    /// The rule's code and three coefficients as kernels take them: code 0 sgd, 1 momentum, 2 adaGrad, 3 adam.
    public var coefficients: (code: Int32, c0: Float, c1: Float, c2: Float) {
        switch self {
        case .sgd(let lr): return (0, lr, 0, 0)
        case .momentum(let lr, let momentum): return (1, lr, momentum, 0)
        case .adaGrad(let lr): return (2, lr, 0, 0)
        case .adam(let lrT, let b1, let b2): return (3, lrT, b1, b2)
        }
    }
}
