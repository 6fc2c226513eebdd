// Every OpenCL kernel against the scalar Reference loops, compared BITWISE: odd sizes that are not multiples
// of the gemm register tile (6×16), batch 1, empty batches, K = 0, and NaN/±inf/denormal inputs.

import Foundation
import ScratchNet
import ScratchNetOpenCL
import Testing

/// (N, K, M) shapes: 1, 7, 33, 1000, tile remainders in both directions, batch 1, empty dims.
let gemmShapes: [(Int, Int, Int)] = [
    (1, 1, 1), (7, 7, 7), (33, 33, 33), (1, 784, 50), (5, 3, 17), (6, 16, 16), (12, 5, 32), (3, 5, 15),
    (17, 9, 31), (13, 9, 48),
    (1000, 33, 7), (33, 1000, 33), (1000, 784, 50), (100, 50, 100), (64, 100, 10), (9, 0, 5), (0, 5, 3),
    (6, 4, 0), (0, 0, 0),
]

@Test(arguments: gemmShapes.indices)
func matmulMatchesReferenceBitwise(_ index: Int) throws {
    guard let be = TestDevice.backend() else { return }
    let (n, k, m) = gemmShapes[index]
    var rng = TestRandom(seed: UInt64(100 + index))
    let a = rng.tensor(n, k), b = rng.tensor(k, m)
    let c = try be.makeMatrix(rows: n, cols: m)
    try be.matmul(try be.upload(a), try be.upload(b), into: c)
    expectBitwise(try be.download(c), try Reference.matmul(a, b), "matmul (\(n),\(k))·(\(k),\(m))")
}

@Test(arguments: gemmShapes.indices, Activation.allCases)
func affineMatchesReferenceBitwise(_ index: Int, _ activation: Activation) throws {
    guard let be = TestDevice.backend() else { return }
    let (n, k, m) = gemmShapes[index]
    var rng = TestRandom(seed: UInt64(200 + index))
    // Scale 4 drives sigmoid through its whole range (large |x| after the sum over k).
    let x = rng.tensor(n, k, scale: 4), w = rng.tensor(k, m), bias = rng.tensor(1, m, scale: 2)
    let y = try be.makeMatrix(rows: n, cols: m)
    try be.affine(try be.upload(x), try be.upload(w), bias: try be.upload(bias), activation: activation, into: y)
    let want = try Reference.affine(x, w, bias: bias, activation: activation)
    expectBitwise(try be.download(y), want, "affine \(activation) (\(n),\(k))·(\(k),\(m))")
}

@Test(arguments: Activation.allCases)
func gemmPropagatesSpecialValuesLikeReference(_ activation: Activation) throws {
    guard let be = TestDevice.backend() else { return }
    var rng = TestRandom(seed: 7)
    var x = rng.tensor(9, 13), w = rng.tensor(13, 21)
    x.scalars[0] = .nan; x.scalars[14] = .infinity; x.scalars[30] = -.infinity; x.scalars[40] = -0.0
    x.scalars[50] = .leastNonzeroMagnitude; w.scalars[5] = .nan; w.scalars[60] = .infinity
    w.scalars[100] = .greatestFiniteMagnitude; w.scalars[101] = 0x1p-140  // a denormal weight
    let bias = try Tensor(shape: [21], scalars: (0..<21).map { specialValues[$0 % specialValues.count] })
    let (dx, dw, db) = (try be.upload(x), try be.upload(w), try be.upload(bias))
    let c = try be.makeMatrix(rows: 9, cols: 21)
    try be.matmul(dx, dw, into: c)
    expectBitwise(try be.download(c), try Reference.matmul(x, w), "matmul with NaN/inf")
    try be.affine(dx, dw, bias: db, activation: activation, into: c)
    expectBitwise(
        try be.download(c), try Reference.affine(x, w, bias: bias, activation: activation),
        "affine \(activation) with NaN/inf")
}

@Test func matmulOfAllNegativeZeroProductsStaysPositiveZero() throws {
    // The contract starts every sum at +0: (-0)·1 accumulated onto +0 gives +0, not -0; matmul adds no bias.
    guard let be = TestDevice.backend() else { return }
    let a = try Tensor(shape: [2, 3], scalars: [-0.0, -0.0, -0.0, 1, -1, 0])
    let b = try Tensor(shape: [3, 2], scalars: [1, 1, 1, 1, 1, 1])
    let c = try be.makeMatrix(rows: 2, cols: 2)
    try be.matmul(try be.upload(a), try be.upload(b), into: c)
    let got = try be.download(c)
    #expect(got.scalars.map(\.bitPattern) == [0, 0, 0, 0])
    expectBitwise(got, try Reference.matmul(a, b), "signed zeros")
}

/// (rows, cols) for the row and element-wise kernels.
let rowShapes: [(Int, Int)] = [(1, 1), (1, 10), (7, 7), (33, 33), (1000, 10), (3, 1000), (0, 10), (5, 0), (0, 0)]

@Test(arguments: rowShapes.indices, Activation.allCases)
func applyMatchesReferenceBitwise(_ index: Int, _ activation: Activation) throws {
    guard let be = TestDevice.backend() else { return }
    let (n, m) = rowShapes[index]
    var rng = TestRandom(seed: UInt64(300 + index))
    var x = rng.tensor(n, m, scale: 30)
    for i in x.scalars.indices where i % 3 == 0 { x.scalars[i] = specialValues[(i / 3) % specialValues.count] }
    let want = try Reference.apply(activation, x)
    let dx = try be.upload(x), dy = try be.makeMatrix(rows: n, cols: m)
    try be.apply(activation, dx, into: dy)
    expectBitwise(try be.download(dy), want, "apply \(activation) (\(n),\(m))")
    try be.apply(activation, dx, into: dx)  // in place
    expectBitwise(try be.download(dx), want, "apply \(activation) in place (\(n),\(m))")
}

@Test func sigmoidCoversEveryFloatRangeBitwise() throws {
    // A sweep over magnitudes from denormals to the overflow edge, both signs, compared lane by lane.
    guard let be = TestDevice.backend() else { return }
    var values: [Float] = specialValues
    for e in -149...7 {
        for significand: Float in [1, 1.3, 1.7] {
            let v = Float(sign: .plus, exponent: e, significand: significand)
            values.append(v)
            values.append(-v)
        }
    }
    for i in 0..<4000 { values.append(Float(i) / 20 - 100) }
    let x = try Tensor(shape: [1, values.count], scalars: values)
    let dx = try be.upload(x), dy = try be.makeMatrix(rows: 1, cols: values.count)
    for activation in Activation.allCases {
        try be.apply(activation, dx, into: dy)
        expectBitwise(try be.download(dy), try Reference.apply(activation, x), "sweep \(activation)")
    }
}

@Test(arguments: rowShapes.indices)
func softmaxMatchesReferenceBitwise(_ index: Int) throws {
    guard let be = TestDevice.backend() else { return }
    let (n, m) = rowShapes[index]
    var rng = TestRandom(seed: UInt64(400 + index))
    let x = rng.tensor(n, m, scale: 20)
    let want = try Reference.softmaxRows(x)
    let dx = try be.upload(x), dy = try be.makeMatrix(rows: n, cols: m)
    try be.softmaxRows(dx, into: dy)
    expectBitwise(try be.download(dy), want, "softmax (\(n),\(m))")
    try be.softmaxRows(dx, into: dx)
    expectBitwise(try be.download(dx), want, "softmax in place (\(n),\(m))")
}

@Test func softmaxSpecialRowsMatchReference() throws {
    guard let be = TestDevice.backend() else { return }
    let rows: [[Float]] = [
        [1, 2, 3, .nan], [.infinity, 0, 1, 2], [-.infinity, -.infinity, -.infinity, -.infinity],
        [-.infinity, 0, 1, -.infinity], [1000, 1000, -1000, 0], [-0.0, 0, -0.0, 0], [88, -88, 200, -200],
        [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, 0, 1],
    ]
    let x = try Tensor(rows: rows)
    let dy = try be.makeMatrix(rows: rows.count, cols: 4)
    try be.softmaxRows(try be.upload(x), into: dy)
    let got = try be.download(dy)
    expectBitwise(got, try Reference.softmaxRows(x), "softmax special rows")
    #expect(got.row(0).allSatisfy { $0.isNaN })  // NaN anywhere -> the row is NaN
    #expect(got.row(1).allSatisfy { $0.isNaN })  // +inf -> inf - inf
}

@Test(arguments: rowShapes.indices)
func argmaxMatchesReference(_ index: Int) throws {
    guard let be = TestDevice.backend() else { return }
    let (n, m) = rowShapes[index]
    var rng = TestRandom(seed: UInt64(500 + index))
    let x = rng.tensor(n, m)
    let got = try be.argmaxRows(try be.upload(x))
    #expect(got == (try Reference.argmaxRows(x)))
    #expect(got.count == n)
}

@Test func argmaxFollowsNumPyOnTiesAndNaN() throws {
    guard let be = TestDevice.backend() else { return }
    let rows: [[Float]] = [
        [1, 3, 3, 2], [.nan, 1, 2, 3], [1, 2, .nan, .nan], [-.infinity, -.infinity, -.infinity, -.infinity],
        [0, -0.0, 0, -1], [-0.0, 0, 1, .infinity], [5, 4, 3, 2], [-1, -2, -0.5, -0.5],
    ]
    let x = try Tensor(rows: rows)
    let got = try be.argmaxRows(try be.upload(x))
    #expect(got == [1, 0, 2, 0, 0, 3, 0, 2])
    #expect(got == (try Reference.argmaxRows(x)))
}

@Test func chapter3ShapedNetworkMatchesCPUBackendBitwise() throws {
    // The book's 784-50-100-10 sigmoid/sigmoid/softmax network on random data, OpenCL vs CPUBackend.
    guard let be = TestDevice.backend() else { return }
    let cpu = CPUBackend()
    var rng = TestRandom(seed: 3)
    let x = rng.tensor(333, 784), w1 = rng.tensor(784, 50, scale: 0.1), b1 = rng.tensor(1, 50, scale: 0.1)
    let w2 = rng.tensor(50, 100), b2 = rng.tensor(1, 100), w3 = rng.tensor(100, 10), b3 = rng.tensor(1, 10)
    func run(_ backend: any Backend) throws -> (Tensor, [Int]) {
        let h1 = try backend.makeMatrix(rows: 333, cols: 50)
        let h2 = try backend.makeMatrix(rows: 333, cols: 100)
        let out = try backend.makeMatrix(rows: 333, cols: 10)
        // x (333,784) · W1 (784,50) -> (333,50) -> W2 -> (333,100) -> W3 -> (333,10)
        try backend.affine(try backend.upload(x), try backend.upload(w1), bias: try backend.upload(b1), activation: .sigmoid, into: h1)
        try backend.affine(h1, try backend.upload(w2), bias: try backend.upload(b2), activation: .sigmoid, into: h2)
        try backend.affine(h2, try backend.upload(w3), bias: try backend.upload(b3), activation: .identity, into: out)
        try backend.softmaxRows(out, into: out)
        return (try backend.download(out), try backend.argmaxRows(out))
    }
    let (gotY, gotArg) = try run(be)
    let (wantY, wantArg) = try run(cpu)
    expectBitwise(gotY, wantY, "network OpenCL vs CPU")
    #expect(gotArg == wantArg)
}

@Test func concurrentOpsFromManyThreadsStayCorrect() async throws {
    // Kernel objects are shared: argument setting + enqueue must be serialised by the backend.
    guard let be = TestDevice.backend() else { return }
    try await withThrowingTaskGroup(of: Bool.self) { group in
        for t in 0..<8 {
            group.addTask {
                var rng = TestRandom(seed: UInt64(900 + t))
                let n = 3 + t * 5, k = 11 + t, m = 7 + 3 * t
                let a = rng.tensor(n, k), b = rng.tensor(k, m), bias = rng.tensor(1, m)
                let y = try be.makeMatrix(rows: n, cols: m)
                for _ in 0..<10 {
                    try be.affine(try be.upload(a), try be.upload(b), bias: try be.upload(bias), activation: .sigmoid, into: y)
                }
                let want = try Reference.affine(a, b, bias: bias, activation: .sigmoid)
                return Comparison(try be.download(y).scalars, want.scalars).isBitwiseEqual
            }
        }
        for try await ok in group { #expect(ok) }
    }
}
