// NaN and ±inf in the inputs, the weights and the biases give defined outputs, with the same bits on the CPU
// path and on OpenCL, through every path: Network.predict (fused whole network), Network.trace (op by op,
// unfused), a 5-layer network (layer by layer on OpenCL), infer's host argmax, the device argmax of
// Backend.predict/argmaxRows and Network.classify. argmax of a row with a NaN is the index of the first NaN
// (NumPy's rule), on the host and on the device.

import Foundation
import ScratchNet
import ScratchNetOpenCL
import Testing

@Suite("NaN and infinity edge cases", .serialized)
struct NaNEdgeCaseTests {
    static let inputs = 8

    /// Deterministic values in [-1, 1).
    struct Values {
        var state: UInt64
        mutating func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 23) - 1
        }
        mutating func tensor(_ shape: [Int]) throws -> Tensor {
            try Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in next() })
        }
    }

    /// Input rows: ordinary, then each special value in one place, then mixtures.
    static func inputRows() throws -> Tensor {
        var v = Values(state: 7)
        var rows: [[Float]] = []
        let base = (0..<inputs).map { _ in v.next() }
        rows.append(base)
        for special: Float in [.nan, .infinity, -.infinity, .greatestFiniteMagnitude, 0] {
            for at in [0, 3] {
                var r = base
                r[at] = special
                rows.append(r)
            }
        }
        rows.append([Float](repeating: .infinity, count: inputs))
        rows.append([Float](repeating: -.infinity, count: inputs))
        rows.append([Float](repeating: 0, count: inputs))
        rows.append((0..<inputs).map { $0 % 2 == 0 ? .infinity : -.infinity })
        rows.append([Float](repeating: .nan, count: inputs))
        return try Tensor(shape: [rows.count, inputs], scalars: rows.flatMap { $0 })
    }

    /// Weights of an inputs-16-10 (or deeper) network with `poison` applied.
    static func weights(layers: [Int], poison: (inout [String: Tensor]) -> Void) throws -> [String: Tensor] {
        var v = Values(state: 11)
        var w: [String: Tensor] = [:]
        for i in 1..<layers.count {
            w["W\(i)"] = try v.tensor([layers[i - 1], layers[i]])
            w["b\(i)"] = try v.tensor([layers[i]])
        }
        poison(&w)
        return w
    }

    static func set(_ w: inout [String: Tensor], _ name: String, _ index: Int, _ value: Float) {
        guard let t = w[name] else { return }
        var s = t.scalars
        s[index] = value
        if let changed = try? Tensor(shape: t.shape, scalars: s) { w[name] = changed }
    }

    /// The poisoned variants: clean, and NaN/±inf in W1, b1, W2 and b2.
    static let cases: [(String, @Sendable (inout [String: Tensor]) -> Void)] = [
        ("clean weights", { _ in }),
        ("NaN in W1", { set(&$0, "W1", 3 * 16 + 5, .nan) }),
        ("+inf in W1", { set(&$0, "W1", 1 * 16 + 4, .infinity) }),
        ("-inf in W1", { set(&$0, "W1", 6 * 16 + 2, -.infinity) }),
        ("NaN in b1", { set(&$0, "b1", 9, .nan) }),
        ("±inf in b1", { set(&$0, "b1", 0, .infinity); set(&$0, "b1", 1, -.infinity) }),
        ("NaN in W2", { set(&$0, "W2", 7 * 10 + 3, .nan) }),
        ("+inf in W2", { set(&$0, "W2", 2 * 10 + 8, .infinity) }),
        ("+inf in b2", { set(&$0, "b2", 2, .infinity) }),
        ("-inf in b2", { set(&$0, "b2", 7, -.infinity) }),
        ("±inf in b2", { set(&$0, "b2", 4, .infinity); set(&$0, "b2", 5, .infinity); set(&$0, "b2", 6, -.infinity) }),
    ]

    static func backends() throws -> [any Backend] {
        [CPUBackend(), CPUBackend(threads: 1)] + [try Book.openCLBackend()].compactMap { $0 }
    }

    /// Everything one backend computes for one network.
    struct Outputs {
        var fused: Tensor
        var traced: Tensor
        var hostArgmax: [Int]
        var deviceArgmax: [Int]
        var fusedArgmax: [Int]
    }

    static func outputs(_ weights: [String: Tensor], _ activation: Activation, _ output: OutputFunction,
                        _ x: Tensor, on backend: any Backend) throws -> Outputs {
        let network = try Network(weights: weights, activation: activation, output: output, backend: backend)
        let fused = try network.predict(x)
        let traced = try #require(try network.trace(x).last?.output)
        let rows = x.matrixShape.rows
        let hostArgmax = try network.infer(count: rows, batchSize: 5) { r in
            try Tensor(shape: [r.count, inputs], scalars: Array(x.scalars[(r.lowerBound * inputs)..<(r.upperBound * inputs)]))
        }.predictions
        let deviceArgmax = try backend.argmaxRows(backend.upload(fused))
        // Backend.predict on the fused network (argmax on the device for OpenCL's sn_net).
        var dense: [DenseLayer] = []
        var i = 1
        while let w = weights["W\(i)"], let b = weights["b\(i)"] {
            let last = weights["W\(i + 1)"] == nil
            dense.append(DenseLayer(
                weights: try backend.upload(w), bias: try backend.upload(b.reshaped([1, b.count])),
                activation: last ? .identity : activation))
            i += 1
        }
        var predictions = [Int32](repeating: -1, count: rows)
        let done = try predictions.withUnsafeMutableBufferPointer {
            try backend.predict(try backend.upload(x), layers: dense, softmax: output == .softmax, into: $0)
        }
        return Outputs(
            fused: fused, traced: traced, hostArgmax: hostArgmax, deviceArgmax: deviceArgmax,
            fusedArgmax: done ? predictions.map { Int($0) } : deviceArgmax)
    }

    /// Numerics.argmax of each row.
    static func argmax(_ t: Tensor) -> [Int] {
        let (rows, cols) = t.matrixShape
        return t.scalars.withUnsafeBufferPointer { all in
            (0..<rows).map { Numerics.argmax(UnsafeBufferPointer(rebasing: all[($0 * cols)..<(($0 + 1) * cols)])) }
        }
    }

    func run(layers: [Int]) throws {
        let x = try Self.inputRows()
        let backends = try Self.backends()
        #expect(backends.count == 3 || ProcessInfo.processInfo.environment["SCRATCHNET_ALLOW_NO_OPENCL"] == "1")
        for (name, poison) in Self.cases {
            let weights = try Self.weights(layers: layers, poison: poison)
            for activation in [Activation.sigmoid, .relu] {
                for output in OutputFunction.allCases {
                    let what = "\(layers) \(name), \(activation), \(output)"
                    let reference = try Self.outputs(weights, activation, output, x, on: backends[0])
                    // Defined outputs: the fused and the op-by-op paths agree, and every argmax follows the rule.
                    let ref = Comparison(reference.fused.scalars, reference.traced.scalars)
                    #expect(ref.isBitwiseEqual, "\(what): fused vs traced on the CPU path: \(ref)")
                    let rule = Self.argmax(reference.fused)
                    #expect(reference.hostArgmax == rule, "\(what)")
                    #expect(reference.deviceArgmax == rule, "\(what)")
                    #expect(reference.fusedArgmax == rule, "\(what)")
                    for backend in backends.dropFirst() {
                        let got = try Self.outputs(weights, activation, output, x, on: backend)
                        let on = "\(what) on \(backend.device.id) (\(backend.device.platform))"
                        let fused = Comparison(got.fused.scalars, reference.fused.scalars)
                        #expect(fused.isBitwiseEqual, "\(on): fused: \(fused)")
                        let traced = Comparison(got.traced.scalars, reference.traced.scalars)
                        #expect(traced.isBitwiseEqual, "\(on): traced: \(traced)")
                        #expect(got.hostArgmax == rule, "\(on): infer's argmax")
                        #expect(got.deviceArgmax == rule, "\(on): argmaxRows")
                        #expect(got.fusedArgmax == rule, "\(on): Backend.predict")
                    }
                }
            }
        }
    }

    @Test("8-16-10 networks with NaN/±inf in x, W and b: same bits on every path and device")
    func twoLayers() throws {
        try run(layers: [Self.inputs, 16, 10])
    }

    @Test("a 5-layer network (layer by layer on OpenCL) with NaN/±inf: same bits on every path and device")
    func fiveLayers() throws {
        try run(layers: [Self.inputs, 16, 10, 12, 9, 10])
    }

    @Test("defined values: a NaN input or bias makes the row NaN and its prediction 0; -inf bias gives probability 0")
    func definedValues() throws {
        let x = try Self.inputRows()
        for backend in try Self.backends() {
            let clean = try Network(weights: Self.weights(layers: [Self.inputs, 16, 10]) { _ in }, backend: backend)
            let y = try clean.predict(x)
            // Row 1 has a NaN input: every probability NaN, prediction 0 (the first NaN).
            #expect(y.scalars[10..<20].allSatisfy { $0.isNaN }, "\(backend.device.id)")
            #expect(Self.argmax(y)[1] == 0)
            // Row 0 is ordinary: probabilities sum to about 1.
            #expect(abs(y.scalars[0..<10].reduce(0, +) - 1) < 1e-5)
            let nanBias = try Network(weights: Self.weights(layers: [Self.inputs, 16, 10]) { Self.set(&$0, "b1", 9, .nan) }, backend: backend)
            let all = try nanBias.predict(x)
            #expect(all.scalars.allSatisfy { $0.isNaN }, "\(backend.device.id)")
            let minusInf = try Network(weights: Self.weights(layers: [Self.inputs, 16, 10]) { Self.set(&$0, "b2", 7, -.infinity) }, backend: backend)
            let p = try minusInf.predict(x)
            #expect(p.scalars[7] == 0 && p.scalars[7].sign == .plus, "\(backend.device.id)")
        }
    }

    @Test("argmax with NaN: the first NaN wins (NumPy), else the first maximum, on the host and on the device")
    func argmaxRule() throws {
        let rows: [([Float], Int)] = [
            ([1, .nan, 5, .nan], 1), ([.nan, 9, 9, 9], 0), ([3, 7, 7, .nan], 3), ([-.infinity, -.infinity, -.infinity, -.infinity], 0),
            ([1, .infinity, .infinity, 2], 1), ([-1, -0.0, 0, -2], 1), ([2, 2, 2, 2], 0), ([-.infinity, -5, .nan, .infinity], 2),
        ]
        let t = try Tensor(shape: [rows.count, 4], scalars: rows.flatMap(\.0))
        #expect(Self.argmax(t) == rows.map(\.1))
        for backend in try Self.backends() {
            #expect(try backend.argmaxRows(backend.upload(t)) == rows.map(\.1), "\(backend.device.id)")
        }
    }
}
