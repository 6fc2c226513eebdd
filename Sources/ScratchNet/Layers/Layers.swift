// Layers in the style of the book's sequel (ゼロから作る Deep Learning 2, chapter 1): each layer owns its
// parameters (`params`) and their gradients (`grads`), and has a forward and a backward pass.
// Layers never know which device runs them: they talk to an `any Backend`.
//
// Unlike the book, a layer does not keep the forward pass's input/output in hidden state: `backward` is
// given them (the training loop keeps every activation anyway), so layers stay immutable and Sendable.

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
    /// Gradients of the loss with respect to ``params``: same names, same shapes, filled by ``backward(_:input:output:into:)``.
    var grads: [(name: String, value: DeviceMatrix)] { get }
    /// The backward pass. Given the forward pass's input `x` and output `y` and `dout` = ∂L/∂y, writes
    /// ∂L/∂params into ``grads`` and, when `dx` is not nil, ∂L/∂x into `dx` (the first layer of a network
    /// skips it: nobody needs the gradient of the images).
    func backward(_ dout: DeviceMatrix, input x: DeviceMatrix, output y: DeviceMatrix, into dx: DeviceMatrix?) throws
}

/// y = x · W + b, the book's Affine layer.
public final class Affine: Layer {
    public let name: String
    public let backend: any Backend
    /// Weights, shape (in, out).
    public let W: DeviceMatrix
    /// Bias, shape (1, out).
    public let b: DeviceMatrix
    /// ∂L/∂W (in, out) and ∂L/∂b (1, out) from the last ``backward(_:input:output:into:)``, +0 before it.
    public let dW: DeviceMatrix
    public let db: DeviceMatrix

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
        self.dW = try backend.upload(Tensor(zeros: [W.shape[0], W.shape[1]]))
        self.db = try backend.upload(Tensor(zeros: [1, W.shape[1]]))
    }

    public var params: [(name: String, value: DeviceMatrix)] { [("W", W), ("b", b)] }
    public var grads: [(name: String, value: DeviceMatrix)] { [("W", dW), ("b", db)] }

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

    /// dW = xᵀ · dout, db = Σ rows of dout, dx = dout · Wᵀ (the book's Affine.backward).
    public func backward(_ dout: DeviceMatrix, input x: DeviceMatrix, output y: DeviceMatrix, into dx: DeviceMatrix?) throws {
        // x (N,in)ᵀ · dout (N,out) -> dW (in,out)
        try backend.matmulTransposedA(x, dout, into: dW)
        // Σₙ dout (N,out) -> db (1,out)
        try backend.sumColumns(dout, into: db)
        // dout (N,out) · W (in,out)ᵀ -> dx (N,in)
        if let dx { try backend.matmulTransposedB(dout, W, into: dx) }
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

    public var grads: [(name: String, value: DeviceMatrix)] { [] }

    /// Sigmoid: dx = dout · (1 - y) · y; ReLU: dx = dout where x > 0, else 0 (from the output y).
    public func backward(_ dout: DeviceMatrix, input x: DeviceMatrix, output y: DeviceMatrix, into dx: DeviceMatrix?) throws {
        guard let dx else { return }
        // dout (N,M), y (N,M) -> dx (N,M)
        try backend.activationBackward(activation, output: y, gradient: dout, into: dx)
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

    public var grads: [(name: String, value: DeviceMatrix)] { [] }

    /// Softmax alone has no backward here, as in the book: its gradient is only taken together with the
    /// cross-entropy, where it simplifies to (y - t) / N. Train with ``SoftmaxWithLoss`` instead.
    public func backward(_ dout: DeviceMatrix, input x: DeviceMatrix, output y: DeviceMatrix, into dx: DeviceMatrix?) throws {
        throw ModelError("\(name): softmax is trained through SoftmaxWithLoss (its gradient with the cross-entropy is (y - t) / N); use that layer as the last one when training")
    }
}

/// The book's SoftmaxWithLoss: softmax of the scores, then the cross-entropy against the targets; its
/// backward is (y - t) / N. Targets are labels (N,1) holding class indices as floats, or one-hot (N,C).
public final class SoftmaxWithLoss: Sendable {
    public let name: String
    public let backend: any Backend

    public init(name: String = "SoftmaxWithLoss", backend: any Backend) {
        self.name = name
        self.backend = backend
    }

    /// y = softmax(x) and loss[index] = cross-entropy(y, t), both on the device.
    public func forward(_ x: DeviceMatrix, targets t: DeviceMatrix, probabilities y: DeviceMatrix,
                        loss: DeviceMatrix, at index: Int) throws {
        // x (N,C) -> y (N,C)
        try backend.softmaxRows(x, into: y)
        // y (N,C), t (N,1) or (N,C) -> loss[index]
        try backend.crossEntropy(y, targets: t, into: loss, at: index)
    }

    /// dx = (y - t) / N from the forward pass's probabilities y.
    public func backward(probabilities y: DeviceMatrix, targets t: DeviceMatrix, into dx: DeviceMatrix) throws {
        // y (N,C), t -> dx (N,C)
        try backend.softmaxCrossEntropyBackward(y, targets: t, into: dx)
    }
}
