// Network: the book's multi-layer perceptron (chapter 3's 784-50-100-10 and any other W1..Wn, b1..bn stack)
// as a list of layers on one backend, plus the batch inference loop every command uses.
//
//   x (N,784) · W1 (784,50) + b1 -> sigmoid -> (N,50)
//   · W2 (50,100) + b2 -> sigmoid -> (N,100)
//   · W3 (100,10) + b3 -> softmax -> (N,10)
//
// Affine layers followed by an activation run fused (one op), which gives the same bits as running them
// one by one (`trace`); intermediate buffers are reused across batches of the same size.
//
// Out of device memory: when a batch fails with a ``DeviceMemoryError`` the inference loops drop their
// cached buffers, halve the batch and retry the same rows, down to one row; every row is computed
// independently, so the results are bitwise those of the unsplit run. Any other error (a failed launch or
// read) is thrown at once and no partial result is returned.
//
// Concurrency: a Network is Sendable and its methods may run from many tasks at once on one backend; each
// call takes its own workspace from the pool (the pool is behind a lock) and the layers are immutable.

import Foundation

/// A weights dictionary that does not describe a network (missing or misnamed tensors).
public struct ModelError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// An error that means the device ran out of memory (or of buffer size) for the data at hand, so the same
/// work in smaller pieces may succeed. Backend errors adopt it (OpenCLError does); ``Network``'s inference
/// loops then halve the batch and retry.
public protocol DeviceMemoryError: Error {
    /// true when the failure was an allocation that a smaller batch may avoid; false for other failures.
    var isOutOfDeviceMemory: Bool { get }
}

/// What the last layer of a ``Network`` does (the book's `identity_function` or `softmax`).
public enum OutputFunction: String, Sendable, CaseIterable {
    /// Probabilities: row-wise softmax (classification; the default).
    case softmax
    /// The raw scores of the last Affine layer (regression; the book's section 3.4 toy network).
    case identity
}

/// The book's fully connected network: Affine → activation → ... → Affine → Softmax (or identity).
public final class Network: Sendable {
    /// The device every layer runs on.
    public let backend: any Backend
    /// The layers in order: Affine1, Sigmoid1, Affine2, Sigmoid2, ..., AffineN, Softmax.
    public let layers: [any Layer]
    /// The hidden-layer activation.
    public let activation: Activation
    /// The last layer's function.
    public let output: OutputFunction
    /// Input width (784 for MNIST) and output width (10).
    public let inputSize: Int
    public let outputSize: Int

    /// Whether the backend's fused whole-network pass may be used (``Backend/forward(_:layers:softmax:into:)``,
    /// ``Backend/predict(_:layers:softmax:into:)``); false runs the layers one by one. Same bits either way.
    public let usesFusedPath: Bool

    private let pool = Locked<[Int: [Workspace]]>([:])
    /// The same network as fused dense layers (Affine + the activation after it), for backends that run a
    /// whole MLP in one pass.
    private let dense: [DenseLayer]

    /// Builds the network from `W1...Wn`, `b1...bn` (as the book's `init_network` / `sample_weight.pkl`).
    ///
    /// Shapes are checked: W1 (in, h1), b1 (h1), W2 (h1, h2), ... A mismatch names the tensors and shapes.
    /// `fusedPath: false` never uses the backend's whole-network pass (parity runs both ways).
    public init(
        weights: [String: Tensor], activation: Activation = .sigmoid, output: OutputFunction = .softmax,
        backend: any Backend, fusedPath: Bool = true
    ) throws {
        var n = 0
        while weights["W\(n + 1)"] != nil { n += 1 }
        guard n > 0 else {
            let keys = weights.keys.sorted().joined(separator: ", ")
            throw ModelError("no W1 in the weights (found: \(keys.isEmpty ? "nothing" : keys)); expected W1..Wn and b1..bn as in the book's sample_weight.pkl")
        }
        var layers: [any Layer] = []
        var width = 0
        var inputSize = 0
        for i in 1...n {
            guard let W = weights["W\(i)"] else { throw ModelError("missing W\(i)") }
            guard let b = weights["b\(i)"] else { throw ModelError("W\(i) has no bias b\(i) in the weights") }
            guard W.rank == 2 else { throw ShapeError("W\(i) must be a matrix, got shape \(W.shape)") }
            if i > 1, W.shape[0] != width {
                throw ShapeError("W\(i) has shape \(W.shape) but W\(i - 1) outputs \(width) columns: W\(i) needs \(width) rows")
            }
            if i == 1 { inputSize = W.shape[0] }
            let affine = try Affine(name: "Affine\(i)", W: W, b: b, backend: backend)
            layers.append(affine)
            width = W.shape[1]
            if i < n {
                let name = (activation == .relu ? "Relu" : activation == .sigmoid ? "Sigmoid" : "Identity") + "\(i)"
                layers.append(ActivationLayer(name: name, activation: activation, backend: backend))
            }
        }
        let extra = weights.keys.filter { key in
            !(1...n).contains { key == "W\($0)" || key == "b\($0)" }
        }
        guard extra.isEmpty else {
            throw ModelError("unexpected tensors \(extra.sorted()) besides W1..W\(n), b1..b\(n)")
        }
        if output == .softmax { layers.append(Softmax(backend: backend)) }
        self.backend = backend
        self.layers = layers
        var dense: [DenseLayer] = []
        for (i, layer) in layers.enumerated() {
            guard let affine = layer as? Affine else { continue }
            let next = i + 1 < layers.count ? layers[i + 1] as? ActivationLayer : nil
            dense.append(DenseLayer(weights: affine.W, bias: affine.b, activation: next?.activation ?? .identity))
        }
        self.dense = dense
        self.usesFusedPath = fusedPath
        self.activation = activation
        self.output = output
        self.inputSize = inputSize
        self.outputSize = width
    }

    /// Outputs (N, classes) (probabilities with softmax) for a batch x (N, inputSize) that is already on the device.
    /// The returned matrix is the caller's: its buffers are never handed to another call (so tasks that run
    /// the network at the same time cannot overwrite each other's results).
    public func forward(_ x: DeviceMatrix) throws -> DeviceMatrix {
        try run(x, makeWorkspace(rows: x.rows))
    }

    /// Probabilities for a host batch (N, inputSize): one upload, one download.
    public func predict(_ x: Tensor) throws -> Tensor {
        let (rows, cols) = x.matrixShape
        guard cols == inputSize, x.rank == 2 || x.rank == 1 else {
            throw ShapeError("input has shape \(x.shape) but the network takes (N, \(inputSize))")
        }
        let ws = try takeWorkspace(rows: rows)
        defer { giveBack(ws) }
        try x.scalars.withUnsafeBufferPointer { try backend.write($0, to: ws.input) }
        return try backend.download(run(ws.input, ws))
    }

    /// Runs the layers one by one (unfused) and downloads every layer's output, for finding where two
    /// devices diverge.
    public func trace(_ x: Tensor) throws -> [(layer: String, output: Tensor)] {
        var current = try backend.upload(x.rank == 1 ? x.reshaped([1, x.count]) : x)
        var outputs: [(String, Tensor)] = []
        for layer in layers {
            let y = try backend.makeMatrix(rows: current.rows, cols: layer.outputColumns(forInput: current.cols))
            try layer.forward(current, into: y)
            outputs.append((layer.name, try backend.download(y)))
            current = y
        }
        return outputs
    }

    /// Classifies `count` samples in batches of `batchSize`, asking `batch` for each range of rows as a host
    /// tensor (N, inputSize). Returns all outputs (probabilities) and predictions.
    public func infer(
        count: Int, batchSize: Int, batch: (Range<Int>) throws -> Tensor
    ) throws -> InferenceResult {
        try inferLoop(count: count, batchSize: batchSize) { range, input in
            let x = try batch(range)
            guard x.count == input.count else {
                throw ShapeError("batch \(range) has shape \(x.shape) but the network takes (\(range.count), \(inputSize))")
            }
            try x.scalars.withUnsafeBufferPointer { try backend.write($0, to: input) }
        }
    }

    /// Classifies `count` samples stored as bytes, `inputSize` per sample, row-major (MNIST images as they
    /// are in the file). Each batch is uploaded as bytes and normalised on the device as
    /// `Float(byte) / divisor` (the book's `normalize=True` with 255), so the host never holds floats.
    public func infer(bytes: [UInt8], count: Int, divisor: Float = 255, batchSize: Int) throws -> InferenceResult {
        guard bytes.count >= count * inputSize else {
            throw ShapeError("\(count) samples of \(inputSize) bytes need \(count * inputSize) bytes, got \(bytes.count)")
        }
        return try bytes.withUnsafeBufferPointer { all in
            try inferLoop(count: count, batchSize: batchSize) { range, input in
                let slice = UnsafeBufferPointer(rebasing: all[(range.lowerBound * inputSize)..<(range.upperBound * inputSize)])
                try backend.write(bytes: slice, dividedBy: divisor, to: input)
            }
        }
    }

    /// The batch loop: fill the workspace input for rows `range`, run the fused plan, download (N, classes).
    private func inferLoop(
        count: Int, batchSize: Int, fill: (Range<Int>, DeviceMatrix) throws -> Void
    ) throws -> InferenceResult {
        guard batchSize > 0 else { throw ModelError("batch size must be at least 1, got \(batchSize)") }
        let width = outputSize
        var probabilities = [Float](repeating: 0, count: count * width)
        var predictions = [Int](repeating: 0, count: count)
        try probabilities.withUnsafeMutableBufferPointer { all in
            try splitting(count: count, batchSize: batchSize) { start, end in
                let ws = try takeWorkspace(rows: end - start)
                defer { giveBack(ws) }
                try fill(start..<end, ws.input)
                let out = UnsafeMutableBufferPointer(rebasing: all[(start * width)..<(end * width)])
                try backend.read(run(ws.input, ws), into: out)
                for r in 0..<(end - start) {
                    let row = UnsafeBufferPointer(rebasing: out[(r * width)..<((r + 1) * width)])
                    predictions[start + r] = Numerics.argmax(row)
                }
            }
        }
        return InferenceResult(probabilities: probabilities, predictions: predictions, classes: width)
    }

    /// Predictions only (argmax of each output row, NumPy's rule) for `count` byte samples, normalised on
    /// the device as `Float(byte) / divisor`. Backends with a fused path download just one index per row;
    /// the predictions always equal those of ``infer(bytes:count:divisor:batchSize:)``.
    public func classify(bytes: [UInt8], count: Int, divisor: Float = 255, batchSize: Int) throws -> [Int] {
        guard batchSize > 0 else { throw ModelError("batch size must be at least 1, got \(batchSize)") }
        guard bytes.count >= count * inputSize else {
            throw ShapeError("\(count) samples of \(inputSize) bytes need \(count * inputSize) bytes, got \(bytes.count)")
        }
        var predictions = [Int32](repeating: 0, count: count)
        var scores = [Float](repeating: 0, count: min(batchSize, count) * outputSize)
        let width = outputSize
        try bytes.withUnsafeBufferPointer { all in
            try predictions.withUnsafeMutableBufferPointer { pred in
                try splitting(count: count, batchSize: batchSize) { start, end in
                    let ws = try takeWorkspace(rows: end - start)
                    defer { giveBack(ws) }
                    let slice = UnsafeBufferPointer(rebasing: all[(start * inputSize)..<(end * inputSize)])
                    try backend.write(bytes: slice, dividedBy: divisor, to: ws.input)
                    let out = UnsafeMutableBufferPointer(rebasing: pred[start..<end])
                    let fused = try usesFusedPath && backend.predict(ws.input, layers: dense, softmax: output == .softmax, into: out)
                    if !fused {
                        try scores.withUnsafeMutableBufferPointer { buf in
                            let rows = UnsafeMutableBufferPointer(rebasing: buf[0..<((end - start) * width)])
                            try backend.read(run(ws.input, ws), into: rows)
                            for r in 0..<(end - start) {
                                out[r] = Int32(Numerics.argmax(UnsafeBufferPointer(rebasing: rows[(r * width)..<((r + 1) * width)])))
                            }
                        }
                    }
                }
            }
        }
        return predictions.map { Int($0) }
    }

    /// Calls `body(start, end)` for consecutive row ranges of at most `batchSize` rows covering `0..<count`.
    /// When a range fails with a ``DeviceMemoryError`` (out of device memory), the cached workspaces are
    /// dropped and the same rows are retried in halves (the smaller size is kept for the rest), down to one
    /// row; then the error is thrown with the sizes tried. Other errors are thrown at once.
    private func splitting(count: Int, batchSize: Int, _ body: (Int, Int) throws -> Void) throws {
        var size = batchSize
        var start = 0
        while start < count {
            let end = min(start + size, count)
            do {
                try body(start, end)
            } catch let error as any DeviceMemoryError where error.isOutOfDeviceMemory {
                pool.withLock { $0.removeAll() }  // free what this network holds before retrying
                guard end - start > 1 else {
                    let cause = "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
                    throw BackendError.device(
                        "out of device memory on \(backend.device.id) even after splitting batches of \(batchSize) "
                            + "rows down to 1 row (\(cause)); free device memory or use another device (e.g. --device cpu)")
                }
                size = (end - start + 1) / 2
                continue
            }
            start = end
        }
    }

    // MARK: - Execution plan

    /// Buffers for one batch size: the input and one output per executed step.
    private final class Workspace: Sendable {
        let rows: Int
        let input: DeviceMatrix
        let outputs: [DeviceMatrix]
        init(rows: Int, input: DeviceMatrix, outputs: [DeviceMatrix]) {
            self.rows = rows
            self.input = input
            self.outputs = outputs
        }
    }

    /// The fused plan: each Affine absorbs the activation layer after it.
    private func run(_ x: DeviceMatrix, _ ws: Workspace) throws -> DeviceMatrix {
        if usesFusedPath, let y = ws.outputs.last, try backend.forward(x, layers: dense, softmax: output == .softmax, into: y) {
            return y
        }
        var current = x
        var step = 0
        var i = 0
        while i < layers.count {
            let y = ws.outputs[step]
            if let affine = layers[i] as? Affine, i + 1 < layers.count, let act = layers[i + 1] as? ActivationLayer {
                try affine.forward(current, activation: act.activation, into: y)
                i += 2
            } else {
                try layers[i].forward(current, into: y)
                i += 1
            }
            current = y
            step += 1
        }
        return current
    }

    /// A pooled workspace for `rows`, or a new one; give it back after the results are read.
    private func takeWorkspace(rows: Int) throws -> Workspace {
        if let ws = pool.withLock({ $0[rows]?.popLast() }) { return ws }
        return try makeWorkspace(rows: rows)
    }

    /// A new workspace for `rows`, outside the pool.
    private func makeWorkspace(rows: Int) throws -> Workspace {
        var outputs: [DeviceMatrix] = []
        var width = inputSize
        var i = 0
        while i < layers.count {
            width = try layers[i].outputColumns(forInput: width)
            if layers[i] is Affine, i + 1 < layers.count, layers[i + 1] is ActivationLayer { i += 2 } else { i += 1 }
            outputs.append(try backend.makeMatrix(rows: rows, cols: width))
        }
        return Workspace(rows: rows, input: try backend.makeMatrix(rows: rows, cols: inputSize), outputs: outputs)
    }

    private func giveBack(_ ws: Workspace) {
        pool.withLock { $0[ws.rows, default: []].append(ws) }
    }
}

/// What a batch inference produced.
public struct InferenceResult: Sendable {
    /// Row-major (count, classes) probabilities.
    public let probabilities: [Float]
    /// argmax of each row (NumPy's rule: first maximum, NaN wins).
    public let predictions: [Int]
    /// Number of classes (10 for MNIST).
    public let classes: Int

    /// Fraction of predictions equal to `labels` (the book's `accuracy_cnt / len(x)`).
    public func accuracy<L: Collection>(labels: L) -> Double where L.Element: BinaryInteger {
        guard !predictions.isEmpty else { return 0 }
        let correct = zip(predictions, labels).reduce(0) { $0 + ($1.0 == Int($1.1) ? 1 : 0) }
        return Double(correct) / Double(predictions.count)
    }
}
