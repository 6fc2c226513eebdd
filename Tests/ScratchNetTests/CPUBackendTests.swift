// Tests of CPUBackend: every op equals Reference bit for bit over odd sizes (tile tails, batch 1, empty,
// K = 0), NaN/±inf inputs, thread-count independence, the packed-weight cache, and the errors.

import Testing
import ScratchNet

/// A DeviceStorage of some other backend, to provoke foreignBuffer.
private final class AlienStorage: DeviceStorage {}

/// (N, K, M) shapes: 1, 7, 33, 1000, the 6-row and 8/16-column tile boundaries, the book's layers, K = 0.
private let shapes: [(Int, Int, Int)] = [
    (1, 1, 1), (1, 7, 33), (7, 33, 1), (33, 1, 7), (1000, 7, 33), (7, 1000, 33), (33, 33, 1000),
    (6, 5, 16), (5, 6, 8), (12, 3, 9), (13, 17, 15), (11, 4, 17), (6, 9, 24), (7, 2, 25), (2, 8, 32),
    (19, 64, 40), (1, 784, 50), (100, 784, 50), (100, 50, 100), (100, 100, 10), (4, 0, 5), (0, 5, 3),
    (5, 4, 0), (0, 0, 0),
]

@Suite("CPUBackend")
struct CPUBackendTests {
    let cpu = CPUBackend()

    private func run(_ x: Tensor, _ w: Tensor, _ b: Tensor, _ act: Activation, on backend: CPUBackend)
        throws -> (matmul: Tensor, affine: Tensor)
    {
        let (n, m) = (x.shape[0], w.shape[1])
        let dx = try backend.upload(x), dw = try backend.upload(w), db = try backend.upload(b)
        let c = try backend.makeMatrix(rows: n, cols: m), y = try backend.makeMatrix(rows: n, cols: m)
        try backend.matmul(dx, dw, into: c)
        try backend.affine(dx, dw, bias: db, activation: act, into: y)
        return (try backend.download(c), try backend.download(y))
    }

    @Test("matmul and affine equal Reference bitwise", arguments: Activation.allCases)
    func gemmParity(activation: Activation) throws {
        for (i, (n, k, m)) in shapes.enumerated() {
            let x = randomTensor(n, k, seed: UInt64(3 * i + 1))
            let w = randomTensor(k, m, in: -1...1, seed: UInt64(3 * i + 2))
            let b = randomTensor(1, m, in: -3...3, seed: UInt64(3 * i + 3))
            let got = try run(x, w, b, activation, on: cpu)
            let wantC = try Reference.matmul(x, w)
            let wantY = try Reference.affine(x, w, bias: b, activation: activation)
            #expect(got.matmul.shape == [n, m] && got.affine.shape == [n, m])
            let c1 = Comparison(got.matmul.scalars, wantC.scalars)
            let c2 = Comparison(got.affine.scalars, wantY.scalars)
            #expect(c1.isBitwiseEqual, "matmul (\(n),\(k),\(m)): \(c1)")
            #expect(c2.isBitwiseEqual, "affine \(activation) (\(n),\(k),\(m)): \(c2)")
        }
    }

    @Test("matmul keeps -0 (no bias add), K = 0 gives +0, affine adds the bias once")
    func signedZeros() throws {
        // a row of -0 times anything: fma(-0, b, +0) = +0; with a negative b: fma(-0, -1, +0) = +0 too.
        let x = try Tensor(rows: [[-0.0, -0.0], [1, -1]])
        let w = try Tensor(rows: [[-1, 1], [1, 1]])
        let got = try run(x, w, try Tensor(rows: [[-0.0, 0]]), .identity, on: cpu)
        let want = try Reference.matmul(x, w)
        #expect(Comparison(got.matmul.scalars, want.scalars).isBitwiseEqual)
        let wantY = try Reference.affine(x, w, bias: try Tensor(rows: [[-0.0, 0]]), activation: .identity)
        #expect(Comparison(got.affine.scalars, wantY.scalars).isBitwiseEqual)
    }

    @Test("NaN and ±inf inputs propagate exactly as in Reference")
    func specials() throws {
        for (n, k, m) in [(7, 9, 17), (13, 33, 8), (1, 5, 3)] {
            var x = randomTensor(n, k, seed: 99)
            var w = randomTensor(k, m, seed: 98)
            x.scalars[0] = .nan
            x.scalars[x.count / 2] = .infinity
            x.scalars[x.count - 1] = -.infinity
            w.scalars[w.count - 1] = .infinity
            w.scalars[w.count / 3] = 0
            let b = randomTensor(1, m, seed: 97)
            for act in Activation.allCases {
                let got = try run(x, w, b, act, on: cpu)
                let wantC = try Reference.matmul(x, w)
                let wantY = try Reference.affine(x, w, bias: b, activation: act)
                #expect(got.matmul.scalars.contains { $0.isNaN })
                // NaN payloads/signs are not part of the contract (x86 keeps whichever NaN operand comes
                // first in the instruction); every other value must match bit for bit.
                #expect(Comparison(got.matmul.scalars, wantC.scalars).isBitwiseEqual)
                #expect(Comparison(got.affine.scalars, wantY.scalars).isBitwiseEqual)
            }
        }
    }

    @Test("apply equals Reference bitwise, in place too", arguments: Activation.allCases)
    func applyParity(activation: Activation) throws {
        for (n, m) in [(1, 1), (1, 7), (7, 33), (33, 8), (1000, 17), (0, 5), (3, 0)] {
            var x = randomTensor(n, m, in: -100...100, seed: UInt64(n * 31 + m))
            let specials: [Float] = [.nan, .infinity, -.infinity, -0.0, 0, 88.8, -88.8, -87.5, Float(bitPattern: 0x0001_0000)]
            for (i, s) in specials.enumerated() where i < x.count { x.scalars[i * 3 % x.count] = s }
            let want = try Reference.apply(activation, x)
            let dx = try cpu.upload(x)
            let dy = try cpu.makeMatrix(rows: n, cols: m)
            try cpu.apply(activation, dx, into: dy)
            // NaN in, canonical NaN out (Numerics.canonicalNaN): bit for bit.
            let got = try cpu.download(dy).scalars
            #expect(Comparison(got, want.scalars).isBitwiseEqual, "(\(n),\(m)): \(Comparison(got, want.scalars))")
            #expect(got.filter(\.isNaN).count == want.scalars.filter(\.isNaN).count)
            try cpu.apply(activation, dx, into: dx)
            #expect(Comparison(try cpu.download(dx).scalars, want.scalars).isBitwiseEqual, "in place (\(n),\(m))")
        }
    }

    @Test("softmaxRows and argmaxRows equal Reference, in place too")
    func softmaxArgmaxParity() throws {
        for (n, m) in [(1, 1), (1, 10), (7, 33), (33, 7), (1000, 10), (3, 16), (2, 17), (0, 10), (4, 0)] {
            var x = randomTensor(n, m, in: -20...20, seed: UInt64(n * 7 + m))
            if n > 2 && m > 2 {
                x.scalars[1] = .nan  // row 0 all NaN
                x.scalars[m + 2] = .infinity  // row 1 all NaN (inf - inf)
                for j in 0..<m { x.scalars[2 * m + j] = 1000 + Float(j) }  // row 2 large
            }
            let want = try Reference.softmaxRows(x)
            let dx = try cpu.upload(x)
            #expect(try cpu.argmaxRows(dx) == Reference.argmaxRows(x))
            let dy = try cpu.makeMatrix(rows: n, cols: m)
            try cpu.softmaxRows(dx, into: dy)
            let got = try cpu.download(dy)
            #expect(Comparison(got.scalars, want.scalars).isBitwiseEqual, "(\(n),\(m))")
            #expect(Comparison(got.scalars.filter { !$0.isNaN }, want.scalars.filter { !$0.isNaN }).isBitwiseEqual)
            try cpu.softmaxRows(dx, into: dx)
            #expect(Comparison(try cpu.download(dx).scalars, want.scalars).isBitwiseEqual, "in place (\(n),\(m))")
            #expect(try cpu.argmaxRows(dy) == Reference.argmaxRows(want))
        }
        // Book numbers through the backend.
        let d = try cpu.upload([0.3, 2.9, 4.0, 1010, 1000, 990], rows: 2, cols: 3)
        try cpu.softmaxRows(d, into: d)
        let s = try cpu.download(d).scalars
        for (got, want) in zip(s, [0.01821127, 0.24519181, 0.73659691, 9.99954600e-01, 4.53978686e-05, 2.06106005e-09] as [Double]) {
            #expect(abs(Double(got) - want) <= 1e-6 * want, "\(s)")
        }
    }

    @Test("results do not depend on the thread count")
    func threadIndependence() throws {
        let x = randomTensor(1001, 300, seed: 5)
        let w = randomTensor(300, 77, seed: 6)
        let b = randomTensor(1, 77, seed: 8)
        let one = try run(x, w, b, .sigmoid, on: CPUBackend(threads: 1))
        let want = try Reference.affine(x, w, bias: b, activation: .sigmoid)
        #expect(Comparison(one.affine.scalars, want.scalars).isBitwiseEqual)
        for t in [2, 3, 7] {
            let other = try run(x, w, b, .sigmoid, on: CPUBackend(threads: t))
            #expect(Comparison(other.matmul.scalars, one.matmul.scalars).isBitwiseEqual, "threads \(t)")
            #expect(Comparison(other.affine.scalars, one.affine.scalars).isBitwiseEqual, "threads \(t)")
        }
        #expect(CPUBackend(threads: 0).threads == 1)
        #expect(CPUBackend(threads: 3).device.platform == "pure Swift, 3 threads")
    }

    @Test("rewriting a weight matrix invalidates its packed copy")
    func packedCacheInvalidation() throws {
        let x = randomTensor(9, 20, seed: 11)
        let w1 = randomTensor(20, 19, seed: 12), w2 = randomTensor(20, 19, seed: 13)
        let dx = try cpu.upload(x), dw = try cpu.upload(w1)
        let c = try cpu.makeMatrix(rows: 9, cols: 19)
        try cpu.matmul(dx, dw, into: c)
        #expect(try cpu.download(c).scalars == Reference.matmul(x, w1).scalars)
        try w2.scalars.withUnsafeBufferPointer { try cpu.write($0, to: dw) }
        try cpu.matmul(dx, dw, into: c)
        #expect(try cpu.download(c).scalars == Reference.matmul(x, w2).scalars)
        // A matrix that was an op's output and then a right-hand operand.
        let sq = try cpu.makeMatrix(rows: 20, cols: 20)
        let x20 = try cpu.upload(randomTensor(20, 20, seed: 14))
        try cpu.matmul(x20, x20, into: sq)
        let out = try cpu.makeMatrix(rows: 9, cols: 20)
        try cpu.matmul(dx, sq, into: out)
        try cpu.apply(.sigmoid, sq, into: sq)
        try cpu.matmul(dx, sq, into: out)
        let want = try Reference.matmul(x, try cpu.download(sq))
        #expect(Comparison(try cpu.download(out).scalars, want.scalars).isBitwiseEqual)
    }

    @Test("upload, write and download round-trip, including rank 1 and empty")
    func memory() throws {
        let t = randomTensor(7, 33, seed: 21)
        #expect(try cpu.download(cpu.upload(t)) == t)
        let v = try Tensor(shape: [5], scalars: [1, 2, 3, 4, 5])
        let dv = try cpu.upload(v)
        #expect(dv.rows == 1 && dv.cols == 5)
        #expect(try cpu.download(dv).scalars == v.scalars)
        let e = try cpu.makeMatrix(rows: 0, cols: 784)
        #expect(try cpu.download(e).shape == [0, 784])
        #expect(try cpu.argmaxRows(e) == [])
        try [Float]().withUnsafeBufferPointer { try cpu.write($0, to: e) }
        let m = try cpu.makeMatrix(rows: 2, cols: 2)
        try [Float](arrayLiteral: 1, 2, 3, 4).withUnsafeBufferPointer { try cpu.write($0, to: m) }
        #expect(try cpu.download(m).scalars == [1, 2, 3, 4])
        #expect(throws: BackendError.self) {
            try [Float](arrayLiteral: 1, 2, 3).withUnsafeBufferPointer { try cpu.write($0, to: m) }
        }
        #expect(throws: BackendError.self) { try cpu.upload(Tensor(zeros: [2, 2, 2])) }
        #expect(throws: BackendError.self) { try cpu.makeMatrix(rows: -1, cols: 2) }
        #expect(throws: BackendError.self) { try cpu.makeMatrix(rows: Int.max, cols: 2) }
        #expect(cpu.device.kind == .cpu && cpu.device.id == "cpu" && cpu.device.parity.isGuaranteed)
        #expect(cpu.device.name == "Swift CPU" && cpu.device.type == "host")
    }

    @Test("shape mismatches throw with both shapes in the message")
    func shapeErrors() throws {
        let a = try cpu.makeMatrix(rows: 2, cols: 3), b = try cpu.makeMatrix(rows: 4, cols: 5)
        let c = try cpu.makeMatrix(rows: 2, cols: 5), w = try cpu.makeMatrix(rows: 3, cols: 5)
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        let m1 = message { try cpu.matmul(a, b, into: c) }
        #expect(m1.contains("(2,3)") && m1.contains("(4,5)"), "\(m1)")
        #expect(message { try cpu.matmul(a, w, into: b) }.contains("shape mismatch"))
        let bias = try cpu.makeMatrix(rows: 1, cols: 4)
        #expect(message { try cpu.affine(a, w, bias: bias, activation: .relu, into: c) }.contains("bias (1,4)"))
        #expect(message { try cpu.apply(.sigmoid, a, into: c) }.contains("apply"))
        #expect(message { try cpu.softmaxRows(a, into: c) }.contains("softmaxRows"))
        // Output aliasing an input of a matrix product.
        let sq = try cpu.makeMatrix(rows: 3, cols: 3)
        #expect(throws: BackendError.self) { try cpu.matmul(sq, sq, into: sq) }
        // A DeviceMatrix wrapping CPU storage of the wrong size.
        let liar = DeviceMatrix(rows: 10, cols: 10, storage: a.storage)
        #expect(message { _ = try cpu.download(liar) }.contains("storage of 6 floats"))
    }

    @Test("a matrix from another backend is refused with foreignBuffer")
    func foreignBuffers() throws {
        let alien = DeviceMatrix(rows: 2, cols: 3, storage: AlienStorage())
        let a = try cpu.makeMatrix(rows: 2, cols: 3), w = try cpu.makeMatrix(rows: 3, cols: 3)
        let y = try cpu.makeMatrix(rows: 2, cols: 3)
        let alienBias = DeviceMatrix(rows: 1, cols: 3, storage: AlienStorage())
        let ops: [(String, () throws -> Void)] = [
            ("download", { _ = try cpu.download(alien) }),
            ("write", { try [Float](repeating: 0, count: 6).withUnsafeBufferPointer { try cpu.write($0, to: alien) } }),
            ("matmul", { try cpu.matmul(alien, w, into: y) }),
            ("matmul", { try cpu.matmul(a, w, into: alien) }),
            ("affine", { try cpu.affine(a, w, bias: alienBias, activation: .identity, into: y) }),
            ("apply", { try cpu.apply(.relu, alien, into: y) }),
            ("softmaxRows", { try cpu.softmaxRows(a, into: alien) }),
            ("argmaxRows", { _ = try cpu.argmaxRows(alien) }),
        ]
        for (op, body) in ops {
            do {
                try body()
                Issue.record("\(op): expected foreignBuffer")
            } catch BackendError.foreignBuffer(let o, let expected) {
                #expect(o == op && expected == "CPU")
            } catch {
                Issue.record("\(op): wrong error \(error)")
            }
        }
    }
}
