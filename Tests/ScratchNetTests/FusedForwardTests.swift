// Tests of CPUBackend's fused whole-network forward and predict: bitwise equal to the layer-by-layer path
// (affine per layer, then softmaxRows; argmax with Numerics' rule) and to Reference.forward, for 1-4 layers,
// odd widths, every activation, softmax on and off, batches 0/1/7/33/1000, NaN/inf inputs, K = 0, the
// book's 784-50-100-10 shapes, 1-3 threads; plus errors and reuse across calls.

import Testing
import ScratchNet

/// Layer specs as (in, out, activation) chains.
private typealias Spec = [(Int, Int, Activation)]

private let chains: [Spec] = [
    [(784, 50, .sigmoid), (50, 100, .sigmoid), (100, 10, .identity)],  // the book's network
    [(13, 7, .relu)],
    [(33, 1, .sigmoid), (1, 9, .identity)],
    [(7, 17, .relu), (17, 33, .sigmoid), (33, 5, .identity)],
    [(300, 57, .sigmoid), (57, 129, .relu), (129, 23, .identity), (23, 10, .sigmoid)],
    [(0, 9, .sigmoid), (9, 4, .identity)],  // K = 0
    [(600, 3, .identity), (3, 64, .relu), (64, 16, .sigmoid)],
]

private struct Model {
    let tensors: [(weights: Tensor, bias: Tensor, activation: Activation)]
    let dense: [DenseLayer]
}

private func model(_ spec: Spec, on cpu: CPUBackend, seed: UInt64) throws -> Model {
    var tensors: [(weights: Tensor, bias: Tensor, activation: Activation)] = []
    var dense: [DenseLayer] = []
    for (i, (k, m, act)) in spec.enumerated() {
        let w = randomTensor(k, m, in: -0.5...0.5, seed: seed &+ UInt64(2 * i))
        let b = randomTensor(1, m, in: -1...1, seed: seed &+ UInt64(2 * i + 1))
        tensors.append((w, b, act))
        dense.append(DenseLayer(weights: try cpu.upload(w), bias: try cpu.upload(b), activation: act))
    }
    return Model(tensors: tensors, dense: dense)
}

/// The unfused path: affine per layer into fresh matrices, then softmaxRows.
private func layerByLayer(_ x: DeviceMatrix, _ layers: [DenseLayer], softmax: Bool, on cpu: CPUBackend) throws -> [Float] {
    var h = x
    for layer in layers {
        let y = try cpu.makeMatrix(rows: h.rows, cols: layer.weights.cols)
        try cpu.affine(h, layer.weights, bias: layer.bias, activation: layer.activation, into: y)
        h = y
    }
    if softmax { try cpu.softmaxRows(h, into: h) }
    return try cpu.download(h).scalars
}

@Suite("Fused forward")
struct FusedForwardTests {
    @Test("forward and predict equal the layer-by-layer path and Reference, bit for bit", arguments: [1, 2, 3])
    func parity(threads: Int) throws {
        let cpu = CPUBackend(threads: threads)
        for (ci, spec) in chains.enumerated() {
            let net = try model(spec, on: cpu, seed: UInt64(1000 * ci + 1))
            let inWidth = spec[0].0, outWidth = spec[spec.count - 1].1
            for n in [0, 1, 7, 33, 1000] {
                var x = randomTensor(n, inWidth, in: -3...3, seed: UInt64(n + 17 * ci))
                if n >= 7 && inWidth > 2 {
                    x.scalars[0] = .nan  // row 0
                    x.scalars[2 * inWidth + 1] = .infinity  // row 2
                    x.scalars[5 * inWidth] = -.infinity  // row 5
                    for j in 0..<inWidth { x.scalars[6 * inWidth + j] = 1e30 }  // row 6: huge
                }
                let dx = try cpu.upload(x)
                for softmax in [true, false] {
                    let what = "chain \(ci) batch \(n) softmax \(softmax) threads \(threads)"
                    let want = try layerByLayer(dx, net.dense, softmax: softmax, on: cpu)
                    let ref = try Reference.forward(x, layers: net.tensors, softmax: softmax)
                    #expect(Comparison(want, ref.scalars).isBitwiseEqual, "layer by layer vs Reference: \(what)")

                    let y = try cpu.makeMatrix(rows: n, cols: outWidth)
                    #expect(try cpu.forward(dx, layers: net.dense, softmax: softmax, into: y), "\(what)")
                    let got = try cpu.download(y).scalars
                    let cmp = Comparison(got, want)
                    #expect(cmp.isBitwiseEqual, "forward: \(what): \(cmp)")

                    var predictions = [Int32](repeating: -1, count: n)
                    let fused = try predictions.withUnsafeMutableBufferPointer {
                        try cpu.predict(dx, layers: net.dense, softmax: softmax, into: $0)
                    }
                    #expect(fused, "\(what)")
                    let wantArgmax = try Reference.argmaxRows(Tensor(shape: [n, outWidth], scalars: want))
                    #expect(predictions.map { Int($0) } == wantArgmax, "predict: \(what)")
                }
            }
        }
    }

    @Test("NaN/inf rows: softmax gives canonical NaN rows, predict follows NumPy's argmax rule")
    func specialRows() throws {
        let cpu = CPUBackend(threads: 1)
        let net = try model([(5, 6, .relu), (6, 4, .identity)], on: cpu, seed: 5)
        var x = randomTensor(3, 5, seed: 6)
        x.scalars[0] = .nan
        x.scalars[5] = .infinity
        let dx = try cpu.upload(x)
        let y = try cpu.makeMatrix(rows: 3, cols: 4)
        #expect(try cpu.forward(dx, layers: net.dense, softmax: true, into: y))
        let got = try cpu.download(y).scalars
        #expect(got[0..<4].allSatisfy { $0.bitPattern == Numerics.canonicalNaN.bitPattern })
        #expect(Comparison(got, try Reference.forward(x, layers: net.tensors, softmax: true).scalars).isBitwiseEqual)
        var p = [Int32](repeating: 9, count: 3)
        _ = try p.withUnsafeMutableBufferPointer { try cpu.predict(dx, layers: net.dense, softmax: true, into: $0) }
        #expect(p[0] == 0)
        #expect(p.map { Int($0) } == (try Reference.argmaxRows(Tensor(shape: [3, 4], scalars: got))))
    }

    @Test("repeated calls reuse scratch and give the same bits; batch sizes can change between calls")
    func reuse() throws {
        let cpu = CPUBackend(threads: 2)
        let net = try model(chains[0], on: cpu, seed: 77)
        var first: [Int: [Float]] = [:]
        for round in 0..<3 {
            for n in [1000, 1, 100, 7] {
                let x = randomTensor(n, 784, in: 0...1, seed: UInt64(n))
                let dx = try cpu.upload(x)
                let y = try cpu.makeMatrix(rows: n, cols: 10)
                #expect(try cpu.forward(dx, layers: net.dense, softmax: true, into: y))
                let got = try cpu.download(y).scalars
                if round == 0 {
                    first[n] = got
                    let want = try Reference.forward(x, layers: net.tensors, softmax: true)
                    #expect(Comparison(got, want.scalars).isBitwiseEqual, "batch \(n)")
                } else {
                    #expect(got == first[n], "batch \(n) round \(round)")
                }
            }
        }
    }

    @Test("a Network on the CPU path uses the fused pass and matches its trace")
    func network() throws {
        let cpu = CPUBackend()
        var weights: [String: Tensor] = [:]
        for (i, (k, m)) in [(784, 50), (50, 100), (100, 10)].enumerated() {
            weights["W\(i + 1)"] = randomTensor(k, m, in: -0.3...0.3, seed: UInt64(50 + i))
            weights["b\(i + 1)"] = try randomTensor(1, m, in: -0.3...0.3, seed: UInt64(60 + i)).reshaped([m])
        }
        let net = try Network(weights: weights, backend: cpu)
        let x = randomTensor(37, 784, in: 0...1, seed: 70)
        let probs = try net.predict(x)
        let trace = try net.trace(x)
        #expect(Comparison(probs.scalars, trace[trace.count - 1].output.scalars).isBitwiseEqual)
        let bytes = (0..<(37 * 784)).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 / 7) }
        let classified = try net.classify(bytes: bytes, count: 37, batchSize: 10)
        let inferred = try net.infer(bytes: bytes, count: 37, batchSize: 37)
        #expect(classified == inferred.predictions)
    }

    @Test("errors: shapes, aliasing, foreign matrices; an empty layer list is not fused")
    func errors() throws {
        let cpu = CPUBackend(threads: 1)
        let net = try model([(4, 3, .relu), (3, 2, .identity)], on: cpu, seed: 3)
        let x = try cpu.upload(randomTensor(5, 4, seed: 4))
        let y = try cpu.makeMatrix(rows: 5, cols: 2)
        #expect(try cpu.forward(x, layers: [], softmax: true, into: y) == false)
        var none = [Int32](repeating: 0, count: 5)
        #expect(try none.withUnsafeMutableBufferPointer { try cpu.predict(x, layers: [], softmax: true, into: $0) } == false)
        #expect(throws: BackendError.self) { try cpu.forward(x, layers: net.dense, softmax: true, into: cpu.makeMatrix(rows: 5, cols: 3)) }
        #expect(throws: BackendError.self) { try cpu.forward(x, layers: net.dense.reversed(), softmax: true, into: y) }
        let badBias = DenseLayer(weights: net.dense[0].weights, bias: net.dense[1].bias, activation: .relu)
        #expect(throws: BackendError.self) { try cpu.forward(x, layers: [badBias, net.dense[1]], softmax: true, into: y) }
        let square = try model([(4, 4, .relu)], on: cpu, seed: 8)
        let x4 = try cpu.upload(randomTensor(4, 4, seed: 9))
        #expect(throws: BackendError.self) { try cpu.forward(x4, layers: square.dense, softmax: true, into: x4) }
        #expect(throws: BackendError.self) { try cpu.forward(x4, layers: square.dense, softmax: true, into: square.dense[0].weights) }
        var short = [Int32](repeating: 0, count: 4)
        #expect(throws: BackendError.self) {
            try short.withUnsafeMutableBufferPointer { try cpu.predict(x, layers: net.dense, softmax: true, into: $0) }
        }
        let alien = DeviceMatrix(rows: 5, cols: 4, storage: OtherStorage())
        do {
            _ = try cpu.forward(alien, layers: net.dense, softmax: true, into: y)
            Issue.record("expected foreignBuffer")
        } catch BackendError.foreignBuffer(let op, _) {
            #expect(op == "forward")
        }
    }
}

/// Storage of some other backend.
private final class OtherStorage: DeviceStorage {}
