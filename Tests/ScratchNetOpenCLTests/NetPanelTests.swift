// The whole-network kernel's narrow last panels and vectorised softmax, and the non-blocking byte upload,
// BITWISE against the CPU path: every layer width around the 8-column boundary of a 16-wide panel (first
// layer and later layers, k crossing the first layer's chunk), softmax widths around 8 with inf/NaN/huge
// inputs, and byte uploads whose source memory is reused or freed at once, written twice in a row, or
// whose matrix is dropped while the upload may still be in flight.

import ScratchNet
import ScratchNetOpenCL
import Testing

/// Widths 1...25 and 47...50: last panels of 1-8 columns (narrow) and of 9-16 (full), for SN_TN 16 and 8.
let panelWidths: [Int] = Array(1...25) + [47, 48, 49, 50]

@Test(arguments: panelWidths)
func narrowLastPanelsEqualCPU(_ width: Int) throws {
    // First layer `width` wide (K 803: two 392 k chunks and a tail chunk of 19, not a multiple of 8), then
    // a later layer `width` wide; softmax and plain outputs; 13 rows: two full 6-row blocks and a partial one.
    for (index, widths) in [[803, width, 10], [20, 37, width]].enumerated() {
        let net = TestNet(widths: widths, activations: [.sigmoid, .relu], seed: UInt64(2100 + width * 2 + index))
        var rng = TestRandom(seed: UInt64(2300 + width))
        let x = rng.tensor(13, widths[0], scale: 2)
        let cpu = CPUBackend()
        let cpuLayers = try net.dense(on: cpu)
        for softmax in [true, false] {
            let want = try cpu.download(net.layerByLayer(cpu, try cpu.upload(x), cpuLayers, softmax: softmax))
            for be in TunedDevices.all() {
                let layers = try net.dense(on: be)
                let label = "net \(widths) softmax \(softmax) \(be.tuning)"
                let y = try be.makeMatrix(rows: 13, cols: widths[2])
                let fits = widths.dropFirst().allSatisfy { $0 <= be.tuning.netMaxWidth }
                #expect(try be.forward(try be.upload(x), layers: layers, softmax: softmax, into: y) == fits, "\(label)")
                guard fits else { continue }
                expectBitwise(try be.download(y), want, label)
                var predictions = [Int32](repeating: -1, count: 13)
                _ = try predictions.withUnsafeMutableBufferPointer {
                    try be.predict(try be.upload(x), layers: layers, softmax: softmax, into: $0)
                }
                #expect(predictions.map { Int($0) } == rowArgmax(want, width: widths[2]), "\(label): predict")
            }
        }
    }
}

@Test(arguments: [7, 8, 9, 15, 16, 17, 24, 33])
func vectorSoftmaxEqualsCPUOnExtremeRows(_ width: Int) throws {
    // One identity layer with W = I (exact), so the softmax sees chosen values: +inf, -inf, NaN, huge
    // spreads (exp flushes to +0), ties, all equal.
    var w = Tensor(zeros: [width, width])
    for i in 0..<width { w.scalars[i * width + i] = 1 }
    let bias = Tensor(zeros: [1, width])
    var rows: [[Float]] = []
    rows.append((0..<width).map { Float($0) })
    rows.append((0..<width).map { $0 == width / 2 ? .infinity : Float($0) })
    rows.append((0..<width).map { $0 == width - 1 ? .nan : Float($0) })
    rows.append((0..<width).map { Float($0) * -30 })
    rows.append((0..<width).map { _ in -.infinity })
    rows.append((0..<width).map { _ in 3 })
    rows.append((0..<width).map { $0 % 2 == 0 ? 88 : -88 })
    let x = try Tensor(shape: [rows.count, width], scalars: rows.flatMap { $0 })
    let cpu = CPUBackend()
    let cpuLayer = DenseLayer(weights: try cpu.upload(w), bias: try cpu.upload(bias), activation: .identity)
    let want = try cpu.download(try {
        let y = try cpu.makeMatrix(rows: rows.count, cols: width)
        try cpu.affine(try cpu.upload(x), cpuLayer.weights, bias: cpuLayer.bias, activation: .identity, into: y)
        try cpu.softmaxRows(y, into: y)
        return y
    }())
    for be in TunedDevices.all() {
        let layer = DenseLayer(weights: try be.upload(w), bias: try be.upload(bias), activation: .identity)
        let y = try be.makeMatrix(rows: rows.count, cols: width)
        #expect(try be.forward(try be.upload(x), layers: [layer], softmax: true, into: y) == true)
        expectBitwise(try be.download(y), want, "softmax width \(width) \(be.tuning)")
    }
}

@Test func byteUploadsSurviveReusedAndFreedSources() throws {
    guard let be = TestDevice.backend() else { return }
    let net = TestNet(widths: [784, 50, 100, 10], activations: [.sigmoid, .sigmoid, .identity], seed: 31)
    let layers = try net.dense(on: be)
    let rows = 100
    let x = try be.makeMatrix(rows: rows, cols: 784)
    let batches: [[UInt8]] = (0..<3).map { b in (0..<(rows * 784)).map { UInt8(truncatingIfNeeded: $0 &* (7 + b) &+ $0 / 13) } }
    // The wanted predictions: floats converted on the host, through the CPU path.
    let cpu = CPUBackend()
    let cpuLayers = try net.dense(on: cpu)
    func want(_ bytes: [UInt8]) throws -> [Int] {
        let t = try Tensor(shape: [rows, 784], scalars: bytes.map { Float($0) / 255 })
        let y = try net.layerByLayer(cpu, try cpu.upload(t), cpuLayers, softmax: true)
        return rowArgmax(try cpu.download(y), width: 10)
    }
    for round in 0..<4 {
        // Two writes in a row: the second reuses the staging memory of a possibly unfinished first one.
        var scratch = batches[round % 3]
        try scratch.withUnsafeBufferPointer { try be.write(bytes: $0, dividedBy: 255, to: x) }
        scratch = batches[(round + 1) % 3]
        try scratch.withUnsafeBufferPointer { try be.write(bytes: $0, dividedBy: 255, to: x) }
        // The source is overwritten at once: the device must still see what was written.
        for i in scratch.indices { scratch[i] = 0 }
        var predictions = [Int32](repeating: -1, count: rows)
        _ = try predictions.withUnsafeMutableBufferPointer { try be.predict(x, layers: layers, softmax: true, into: $0) }
        #expect(predictions.map { Int($0) } == (try want(batches[(round + 1) % 3])), "round \(round)")
    }
    // A matrix dropped right after its upload was enqueued.
    for _ in 0..<8 {
        let dropped = try be.makeMatrix(rows: rows, cols: 784)
        try batches[0].withUnsafeBufferPointer { try be.write(bytes: $0, dividedBy: 255, to: dropped) }
    }
    try be.synchronize()
    // Bytes then a plain download (the conversion kernel reads the uploaded bytes).
    try batches[2].withUnsafeBufferPointer { try be.write(bytes: $0, dividedBy: 255, to: x) }
    #expect(try be.download(x).scalars.map(\.bitPattern) == batches[2].map { (Float($0) / 255).bitPattern })
}
