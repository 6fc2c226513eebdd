// Trainer: mini-batch training of the book's multi-layer network (chapters 4–6; the sequel's layer style) on
// any backend. Per step:
//
//   x (N,in) bytes / 255 -> Affine1 + act -> ... -> AffineN -> SoftmaxWithLoss(t) -> loss[step] (on device)
//   backward: dz = (y - t) / N; for each Affine from the last: dW = hᵀ·dz, db = Σ dz, dh = dz·Wᵀ; dz = act'(dh)
//   optimizer: every W and b updated in place on the device
//
// Everything random (initial weights, the per-epoch shuffle) happens on the host from one seed, and every
// device op follows the numerics contract of Backend.swift, so the same seed gives bitwise the same weights
// and losses on every device with parity. Losses stay on the device until the end of the epoch: a step never
// waits for the device.

import Foundation

/// Labelled samples stored as bytes, as MNIST keeps them: `count` rows of `features` bytes each, normalised on
/// the device as `Float(byte) / divisor` (the book's `normalize=True`), and one class label per row.
public struct LabeledBytes: Sendable {
    public let images: [UInt8]
    public let labels: [UInt8]
    public let count: Int
    public let features: Int
    public let divisor: Float

    /// Checks that `images` holds `count * features` bytes and `labels` `count` labels.
    public init(images: [UInt8], labels: [UInt8], count: Int, features: Int, divisor: Float = 255) throws {
        guard count >= 0, features > 0, images.count == count * features else {
            throw ModelError("\(count) samples of \(features) bytes need \(count * features) bytes, got \(images.count)")
        }
        guard labels.count == count else {
            throw ModelError("\(count) samples but \(labels.count) labels")
        }
        self.images = images
        self.labels = labels
        self.count = count
        self.features = features
        self.divisor = divisor
    }

    /// The first `n` samples (all if n ≥ count).
    public func prefix(_ n: Int) -> LabeledBytes {
        let k = max(0, min(n, count))
        // Sizes are consistent by construction, so this cannot fail.
        return (try? LabeledBytes(
            images: Array(images[0..<(k * features)]), labels: Array(labels[0..<k]), count: k, features: features,
            divisor: divisor)) ?? self
    }
}

/// What one epoch (or the part of it before a stop) did.
public struct EpochResult: Sendable {
    /// 1-based epoch number.
    public let epoch: Int
    /// Steps run (batches), and the loss of each, in order (bitwise what the device computed).
    public let steps: Int
    public let losses: [Float]
    /// Samples seen.
    public let samples: Int
    /// Wall time of the training steps, including the final wait for the device.
    public let seconds: Double
    /// True when `shouldStop` ended the epoch early.
    public let stopped: Bool

    /// The mean of the batch losses (in Double), NaN if no step ran.
    public var meanLoss: Double {
        losses.isEmpty ? .nan : losses.reduce(0.0) { $0 + Double($1) } / Double(losses.count)
    }
}

/// Trains a fully connected network Affine → act → ... → Affine → SoftmaxWithLoss with one optimizer.
///
/// Not `Sendable`: one training loop owns it. Weights live on the backend; ``weights()`` downloads them.
public final class Trainer {
    public let backend: any Backend
    /// [in, hidden..., classes], e.g. [784, 50, 10].
    public let layerSizes: [Int]
    /// The hidden-layer activation.
    public let activation: Activation
    public let affines: [Affine]
    public let activationLayers: [ActivationLayer]
    public let lossLayer: SoftmaxWithLoss
    public let optimizer: Optimizer
    /// Samples per step (the last batch of an epoch may be smaller).
    public let batchSize: Int
    /// Epochs completed.
    public private(set) var epoch = 0

    private var shuffle: TrainingRandom
    private var buffers: [Int: StepBuffers] = [:]
    private var evalBuffers: [Int: DeviceMatrix] = [:]
    private var lossSlots: DeviceMatrix?

    /// A trainer starting from `weights` (W1..Wn, b1..bn, as ``Network`` takes them).
    ///
    /// `seed` drives the per-epoch shuffle (initial weights come from the caller, e.g. ``WeightInit/weights(layerSizes:activation:seed:)``).
    public init(
        weights: [String: Tensor], activation: Activation, optimizer: Optimizer, batchSize: Int, seed: UInt64,
        backend: any Backend
    ) throws {
        guard batchSize > 0 else { throw ModelError("batch size must be at least 1, got \(batchSize)") }
        var n = 0
        while weights["W\(n + 1)"] != nil { n += 1 }
        guard n > 0 else { throw ModelError("no W1 in the weights: expected W1..Wn and b1..bn") }
        var sizes: [Int] = []
        var affines: [Affine] = []
        var acts: [ActivationLayer] = []
        for i in 1...n {
            guard let W = weights["W\(i)"], let b = weights["b\(i)"] else { throw ModelError("missing W\(i) or b\(i)") }
            guard W.rank == 2 else { throw ShapeError("W\(i) must be a matrix, got shape \(W.shape)") }
            if i == 1 { sizes.append(W.shape[0]) }
            guard W.shape[0] == sizes.last else {
                throw ShapeError("W\(i) has shape \(W.shape) but the layer before outputs \(sizes.last ?? 0) columns")
            }
            sizes.append(W.shape[1])
            affines.append(try Affine(name: "Affine\(i)", W: W, b: b, backend: backend))
            if i < n {
                acts.append(ActivationLayer(name: "\(activation.rawValue.capitalized)\(i)", activation: activation, backend: backend))
            }
        }
        guard optimizer.backend === backend else {
            throw ModelError("the optimizer runs on \(optimizer.backend.device.id) but the trainer on \(backend.device.id)")
        }
        self.backend = backend
        self.layerSizes = sizes
        self.activation = activation
        self.affines = affines
        self.activationLayers = acts
        self.lossLayer = SoftmaxWithLoss(backend: backend)
        self.optimizer = optimizer
        self.batchSize = batchSize
        self.shuffle = TrainingRandom(seed: seed ^ 0x5348_5546_464C_4531)
    }

    /// A trainer for a new network: weights drawn by `initialization` from `seed`, biases zero.
    public convenience init(
        layerSizes: [Int], activation: Activation, initialization: WeightInit = .auto, optimizer: OptimizerKind,
        learningRate: Double? = nil, batchSize: Int, seed: UInt64, backend: any Backend
    ) throws {
        let weights = try initialization.weights(layerSizes: layerSizes, activation: activation, seed: seed)
        try self.init(
            weights: weights, activation: activation,
            optimizer: Optimizer(optimizer, learningRate: learningRate, backend: backend),
            batchSize: batchSize, seed: seed, backend: backend)
    }

    /// Input width and number of classes.
    public var inputSize: Int { layerSizes[0] }
    public var classes: Int { layerSizes[layerSizes.count - 1] }

    /// The current weights as host tensors: W1..Wn (in, out) and b1..bn (out), the book's layout.
    public func weights() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (i, a) in affines.enumerated() {
            out["W\(i + 1)"] = try backend.download(a.W)
            out["b\(i + 1)"] = try backend.download(a.b).reshaped([a.b.cols])
        }
        return out
    }

    // MARK: Training

    /// One epoch: a seeded shuffle of `data`, then ⌈count / batchSize⌉ steps (the last one smaller if the
    /// batch size does not divide the count). After each step `progress(stepsDone, totalSteps)` is called and
    /// `shouldStop()` asked; when it says yes the epoch ends after that step (the weights are consistent).
    /// `maxSteps` caps the number of steps (nil: the whole epoch).
    public func trainEpoch(
        _ data: LabeledBytes, maxSteps: Int? = nil, shouldStop: () -> Bool = { false },
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> EpochResult {
        try check(data)
        let order = shuffle.permutation(data.count)
        var total = (data.count + batchSize - 1) / batchSize
        if let maxSteps { total = min(total, max(0, maxSteps)) }
        let slots: DeviceMatrix
        if let s = lossSlots, s.cols >= total { slots = s } else {
            slots = try backend.makeMatrix(rows: 1, cols: max(total, 1))
            lossSlots = slots
        }
        let t0 = Date()
        var steps = 0
        var samples = 0
        var stopped = false
        while steps < total {
            let start = steps * batchSize
            let rows = order[start..<min(start + batchSize, data.count)]
            try step(data, rows: rows, lossSlot: slots, index: steps)
            steps += 1
            samples += rows.count
            progress(steps, total)
            if steps < total, shouldStop() {
                stopped = true
                break
            }
        }
        var losses = [Float](repeating: 0, count: slots.count)
        try losses.withUnsafeMutableBufferPointer { try backend.read(slots, into: $0) }  // waits for the device
        let seconds = Date().timeIntervalSince(t0)
        epoch += 1
        return EpochResult(
            epoch: epoch, steps: steps, losses: Array(losses[0..<steps]), samples: samples, seconds: seconds,
            stopped: stopped)
    }

    /// The device buffers of one step with `rows` samples, reused across steps.
    private final class StepBuffers {
        let x: DeviceMatrix  // (N, in)
        let t: DeviceMatrix  // (N, 1) labels as floats
        let h: [DeviceMatrix]  // layer i's output (N, sizes[i+1]); the last is the scores
        let y: DeviceMatrix  // (N, classes) probabilities
        let d: [DeviceMatrix]  // ∂L/∂(layer i's output), then ∂L/∂(its pre-activation), in place
        var bytes: [UInt8]
        var labels: [Float]
        init(rows: Int, sizes: [Int], backend: any Backend) throws {
            x = try backend.makeMatrix(rows: rows, cols: sizes[0])
            t = try backend.makeMatrix(rows: rows, cols: 1)
            h = try sizes.dropFirst().map { try backend.makeMatrix(rows: rows, cols: $0) }
            y = try backend.makeMatrix(rows: rows, cols: sizes[sizes.count - 1])
            d = try sizes.dropFirst().map { try backend.makeMatrix(rows: rows, cols: $0) }
            bytes = [UInt8](repeating: 0, count: rows * sizes[0])
            labels = [Float](repeating: 0, count: rows)
        }
    }

    /// Forward, loss into `lossSlot[index]`, backward and one optimizer update for the samples `rows`.
    private func step(_ data: LabeledBytes, rows: ArraySlice<Int>, lossSlot: DeviceMatrix, index: Int) throws {
        let n = rows.count
        let buf: StepBuffers
        if let b = buffers[n] { buf = b } else {
            buf = try StepBuffers(rows: n, sizes: layerSizes, backend: backend)
            buffers[n] = buf
        }
        // Gather the batch on the host: images stay bytes (4x less to move), labels become floats.
        let f = data.features
        data.images.withUnsafeBufferPointer { src in
            buf.bytes.withUnsafeMutableBufferPointer { dst in
                for (r, i) in rows.enumerated() {
                    _ = UnsafeMutableBufferPointer(rebasing: dst[(r * f)..<((r + 1) * f)])
                        .update(fromContentsOf: src[(i * f)..<((i + 1) * f)])
                }
            }
        }
        for (r, i) in rows.enumerated() { buf.labels[r] = Float(data.labels[i]) }
        try buf.bytes.withUnsafeBufferPointer { try backend.write(bytes: $0, dividedBy: data.divisor, to: buf.x) }
        try buf.labels.withUnsafeBufferPointer { try backend.write($0, to: buf.t) }

        // Forward: h_i = act(h_{i-1} · W_i + b_i), the last Affine without activation.
        let last = affines.count - 1
        var input = buf.x
        for (i, affine) in affines.enumerated() {
            try affine.forward(input, activation: i < last ? activation : .identity, into: buf.h[i])
            input = buf.h[i]
        }
        // scores (N,C) -> y = softmax, loss[index] = cross-entropy(y, t)
        try lossLayer.forward(buf.h[last], targets: buf.t, probabilities: buf.y, loss: lossSlot, at: index)

        // Backward: d_last = (y - t) / N, then through each Affine and activation.
        try lossLayer.backward(probabilities: buf.y, targets: buf.t, into: buf.d[last])
        for i in stride(from: last, through: 0, by: -1) {
            let x = i == 0 ? buf.x : buf.h[i - 1]
            try affines[i].backward(buf.d[i], input: x, output: buf.h[i], into: i == 0 ? nil : buf.d[i - 1])
            if i > 0 {
                // The activation's backward needs only its output h_{i-1}; dx overwrites dy in place.
                try activationLayers[i - 1].backward(buf.d[i - 1], input: buf.h[i - 1], output: buf.h[i - 1], into: buf.d[i - 1])
            }
        }
        try optimizer.step(affines.flatMap { [($0.W, $0.dW), ($0.b, $0.db)] })
    }

    // MARK: Evaluation

    /// The fraction of `data` classified correctly (argmax of the scores, NumPy's rule), in batches of
    /// `batchSize` (default 1000) on the device.
    public func accuracy(_ data: LabeledBytes, batchSize evalBatch: Int = 1000) throws -> Double {
        try check(data)
        guard data.count > 0 else { return .nan }
        let predictions = try predict(data, batchSize: evalBatch)
        var correct = 0
        for i in 0..<data.count where predictions[i] == Int32(data.labels[i]) { correct += 1 }
        return Double(correct) / Double(data.count)
    }

    /// The predicted class of every sample of `data`.
    public func predict(_ data: LabeledBytes, batchSize evalBatch: Int = 1000) throws -> [Int32] {
        try check(data)
        guard evalBatch > 0 else { throw ModelError("batch size must be at least 1, got \(evalBatch)") }
        let last = affines.count - 1
        let dense = affines.enumerated().map { i, a in
            DenseLayer(weights: a.W, bias: a.b, activation: i < last ? activation : .identity)
        }
        var predictions = [Int32](repeating: 0, count: data.count)
        let f = data.features
        try data.images.withUnsafeBufferPointer { all in
            try predictions.withUnsafeMutableBufferPointer { pred in
                var start = 0
                while start < data.count {
                    let end = min(start + evalBatch, data.count)
                    let rows = end - start
                    let x: DeviceMatrix
                    if let m = evalBuffers[rows] { x = m } else {
                        x = try backend.makeMatrix(rows: rows, cols: f)
                        evalBuffers[rows] = x
                    }
                    try backend.write(bytes: UnsafeBufferPointer(rebasing: all[(start * f)..<(end * f)]), dividedBy: data.divisor, to: x)
                    let out = UnsafeMutableBufferPointer(rebasing: pred[start..<end])
                    // Scores are enough: softmax keeps the argmax (and the CPU/OpenCL fused paths skip it).
                    if try !backend.predict(x, layers: dense, softmax: false, into: out) {
                        var h = x
                        for layer in dense {
                            let y = try backend.makeMatrix(rows: rows, cols: layer.weights.cols)
                            try backend.affine(h, layer.weights, bias: layer.bias, activation: layer.activation, into: y)
                            h = y
                        }
                        for (r, c) in try backend.argmaxRows(h).enumerated() { out[r] = Int32(c) }
                    }
                    start = end
                }
            }
        }
        return predictions
    }

    private func check(_ data: LabeledBytes) throws {
        guard data.features == inputSize else {
            throw ShapeError("the samples have \(data.features) features but the network takes \(inputSize) inputs")
        }
        if let bad = data.labels.first(where: { Int($0) >= classes }) {
            throw ModelError("label \(bad) is out of range for \(classes) classes: the last layer needs at least \(Int(bad) + 1) outputs")
        }
    }
}
