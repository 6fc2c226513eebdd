// Tests of Reference, the naive scalar ops every backend is compared with: hand-computed results, the
// accumulation order, and shape errors.

import Testing
import ScratchNet

@Suite("Reference")
struct ReferenceTests {
    @Test("matmul of small matrices by hand")
    func matmulByHand() throws {
        let a = try Tensor(rows: [[1, 2, 3], [4, 5, 6]])
        let b = try Tensor(rows: [[7, 8], [9, 10], [11, 12]])
        let c = try Reference.matmul(a, b)
        #expect(c.shape == [2, 2])
        #expect(c.scalars == [58, 64, 139, 154])
    }

    @Test("matmul accumulates from +0 with fma in increasing k")
    func accumulationOrder() throws {
        // k order matters: 1e8 + 1 - 1e8 = 0 in float when added left to right, 1 the other way round.
        let a = try Tensor(rows: [[1, 1, 1]])
        let b = try Tensor(rows: [[1e8], [1], [-1e8]])
        #expect(try Reference.matmul(a, b).scalars == [0])
        let b2 = try Tensor(rows: [[1e8], [-1e8], [1]])
        #expect(try Reference.matmul(a, b2).scalars == [1])
        // fma, not a rounded product: acc = -(1+2^-11), then fma(e, e, acc) with e = 1+2^-12 is exactly
        // 2^-24; rounding e*e first (a tie, to even) would give 0.
        let e: Float = 1 + 0x1p-12
        let g = try Reference.matmul(try Tensor(rows: [[1, e]]), try Tensor(rows: [[-(1 + 0x1p-11)], [e]]))
        #expect(g.scalars == [0x1p-24])
        // Starts from +0: a single -0 product gives +0 (+0 + -0), and K = 0 gives +0.
        let z = try Reference.matmul(try Tensor(rows: [[-0.0]]), try Tensor(rows: [[1]]))
        #expect(z.scalars[0].bitPattern == Float(0).bitPattern)
        let empty = try Reference.matmul(Tensor(zeros: [2, 0]), Tensor(zeros: [0, 3]))
        #expect(empty.shape == [2, 3] && empty.scalars.allSatisfy { $0.bitPattern == 0 })
    }

    @Test("affine adds the bias once after the sum, then the activation")
    func affine() throws {
        let x = try Tensor(rows: [[1, -2]])
        let w = try Tensor(rows: [[1, 0, 2], [0, 1, 1]])
        let b = try Tensor(shape: [3], scalars: [0.5, 1, -1])
        #expect(try Reference.affine(x, w, bias: b, activation: .identity).scalars == [1.5, -1, -1])
        #expect(try Reference.affine(x, w, bias: b, activation: .relu).scalars == [1.5, 0, 0])
        let s = try Reference.affine(x, w, bias: b, activation: .sigmoid).scalars
        #expect(s == [1.5, -1, -1].map { Numerics.sigmoid($0) })
        let b2 = try Tensor(rows: [[0.5, 1, -1]])
        #expect(try Reference.affine(x, w, bias: b2, activation: .identity).scalars == [1.5, -1, -1])
    }

    @Test("apply, softmaxRows and argmaxRows work row by row")
    func rowOps() throws {
        let x = try Tensor(rows: [[0.3, 2.9, 4.0], [1010, 1000, 990], [1, .nan, 0]])
        let s = try Reference.softmaxRows(x)
        #expect(s.shape == [3, 3])
        #expect(abs(s.scalars[2] - 0.73659691) < 1e-7)
        #expect(abs(s.scalars[3] - 0.9999546) < 1e-6)
        #expect(s.scalars[6...].allSatisfy { $0.isNaN })
        #expect(try Reference.argmaxRows(x) == [2, 0, 1])
        #expect(try Reference.argmaxRows(Tensor(zeros: [0, 4])) == [])
        #expect(try Reference.argmaxRows(Tensor(zeros: [2, 0])) == [0, 0])
        let r = try Reference.apply(.relu, try Tensor(rows: [[-1, 2], [.nan, -0.0]]))
        #expect(r.scalars[0] == 0 && r.scalars[1] == 2 && r.scalars[2].isNaN)
        #expect(r.scalars[3].bitPattern == 0)
        #expect(Comparison(try Reference.apply(.identity, x).scalars, x.scalars).isBitwiseEqual)
    }

    @Test("shape errors name the shapes")
    func shapeErrors() throws {
        let a = Tensor(zeros: [2, 3])
        #expect(throws: ShapeError.self) { try Reference.matmul(a, Tensor(zeros: [2, 3])) }
        #expect(throws: ShapeError.self) {
            try Reference.affine(a, Tensor(zeros: [3, 4]), bias: Tensor(zeros: [3]), activation: .identity)
        }
        #expect(throws: ShapeError.self) {
            try Reference.affine(a, Tensor(zeros: [3, 4]), bias: Tensor(zeros: [2, 4]), activation: .identity)
        }
        let cube = Tensor(zeros: [2, 2, 2])
        #expect(throws: ShapeError.self) { try Reference.apply(.sigmoid, cube) }
        #expect(throws: ShapeError.self) { try Reference.softmaxRows(cube) }
        #expect(throws: ShapeError.self) { try Reference.argmaxRows(cube) }
        do {
            _ = try Reference.matmul(a, Tensor(zeros: [4, 1]))
            Issue.record("expected a ShapeError")
        } catch {
            #expect(error.message.contains("(2,3)") && error.message.contains("(4,1)"))
        }
    }
}
