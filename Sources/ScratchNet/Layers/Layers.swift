// Layers in the style of the book's sequel (ゼロから作る Deep Learning 2, chapter 1): each layer owns its
// parameters (`params`) and has a forward pass; the gradients (`grads`) and backward pass arrive with training.
// Layers never know which device runs them: they talk to an `any Backend`.

/// One step of a network.
public protocol Layer: AnyObject, Sendable {
    /// A short name for reports, e.g. "Affine1", "Sigmoid1", "Softmax".
    var name: String { get }
    /// Learnable parameters by name ("W", "b"), living on the layer's backend. Empty for activations.
    var params: [(name: String, value: DeviceMatrix)] { get }
    /// The number of output columns for `inputColumns` input columns, or a ShapeError naming the mismatch.
    func outputColumns(forInput inputColumns: Int) throws(ShapeError) -> Int
    /// y = layer(x). `y` has x.rows rows and `outputColumns(forInput: x.cols)` columns.
    func forward(_ x: DeviceMatrix, into y: DeviceMatrix) throws
}

/// y = x · W + b, the book's Affine layer.
public final class Affine: Layer {
    public let name: String
    public let backend: any Backend
    /// Weights, shape (in, out).
    public let W: DeviceMatrix
    /// Bias, shape (1, out).
    public let b: DeviceMatrix

    /// Uploads `W` (in, out) and `b` (out) or (1, out) to `backend`.
    public init(name: String, W: Tensor, b: Tensor, backend: any Backend) throws {
        guard W.rank == 2 else { throw ShapeError("\(name): W must be a matrix (in, out), got shape \(W.shape)") }
        guard b.count == W.shape[1], b.rank == 1 || (b.rank == 2 && b.shape[0] == 1) else {
            throw ShapeError("\(name): bias has shape \(b.shape) but W \(W.shape) needs (\(W.shape[1]),)")
        }
        self.name = name
        self.backend = backend
        self.W = try backend.upload(W)
        self.b = try backend.upload(b)
    }

    public var params: [(name: String, value: DeviceMatrix)] { [("W", W), ("b", b)] }

    public func outputColumns(forInput inputColumns: Int) throws(ShapeError) -> Int {
        guard inputColumns == W.rows else {
            throw ShapeError("\(name): input has \(inputColumns) columns but W is \(W.shapeDescription)")
        }
        return W.cols
    }

    public func forward(_ x: DeviceMatrix, into y: DeviceMatrix) throws {
        // x (N,in) · W (in,out) + b (1,out) -> y (N,out)
        try backend.affine(x, W, bias: b, activation: .identity, into: y)
    }

    /// The fused form: activation(x · W + b) in one op, same bits as `forward` then the activation layer.
    public func forward(_ x: DeviceMatrix, activation: Activation, into y: DeviceMatrix) throws {
        try backend.affine(x, W, bias: b, activation: activation, into: y)
    }
}

/// An element-wise activation layer: Sigmoid or ReLU (or identity).
public final class ActivationLayer: Layer {
    public let name: String
    public let backend: any Backend
    public let activation: Activation

    public init(name: String, activation: Activation, backend: any Backend) {
        self.name = name
        self.activation = activation
        self.backend = backend
    }

    public var params: [(name: String, value: DeviceMatrix)] { [] }
    public func outputColumns(forInput inputColumns: Int) throws(ShapeError) -> Int { inputColumns }

    public func forward(_ x: DeviceMatrix, into y: DeviceMatrix) throws {
        try backend.apply(activation, x, into: y)
    }
}

/// Row-wise softmax with the book's overflow fix (subtract each row's maximum).
public final class Softmax: Layer {
    public let name: String
    public let backend: any Backend

    public init(name: String = "Softmax", backend: any Backend) {
        self.name = name
        self.backend = backend
    }

    public var params: [(name: String, value: DeviceMatrix)] { [] }
    public func outputColumns(forInput inputColumns: Int) throws(ShapeError) -> Int { inputColumns }

    public func forward(_ x: DeviceMatrix, into y: DeviceMatrix) throws {
        try backend.softmaxRows(x, into: y)
    }
}
