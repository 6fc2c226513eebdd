// Tests of Numerics: SIMD8 forms equal the scalar forms bit for bit, exp and log are within 2 ulp of the
// true value, and the book's sigmoid/softmax numbers come out.

import Foundation
import Testing
import ScratchNet

/// Values that stress exp/sigmoid: specials, signed zeros, denormals, the flush/overflow thresholds and
/// their neighbours, rounding-boundary points (x·log2e near k + 0.5) and a spread of ordinary values.
private func specialInputs() -> [Float] {
    var v: [Float] = [
        0, -0, 1, -1, .nan, -.nan, Float(bitPattern: 0x7FA0_0001), .infinity, -.infinity,
        .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, -.leastNormalMagnitude,
        Float(bitPattern: 0x0040_0000), .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
        -87, 88.72, 88.7228, 88.72284, -87.33654, -103.97, 104, 0.5, -0.5, 1e-8, -1e-8, 1e-30,
        Float.ulpOfOne, 127, -126, 2e9, -2e9, 1e38, -1e38,
    ]
    for t in [Float(-87), 88.72283935546875, 0x1.62e42ep+6, -0x1.5cp+6] {
        v += [t.nextDown, t, t.nextUp, t.nextUp.nextUp, t.nextDown.nextDown]
    }
    for k in -130...130 {
        let x = (Float(k) + 0.5) * 0x1.62e430p-1
        v += [x.nextDown, x, x.nextUp]
    }
    var g = SeededGenerator(seed: 7)
    for _ in 0..<20_000 { v.append(Float.random(in: -100...100, using: &g)) }
    for _ in 0..<5_000 { v.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &g))) }
    return v
}

/// Evaluates `simd` 8 lanes at a time (the tail padded) and `scalar` one at a time.
private func simdAndScalar(
    _ xs: [Float], simd: (SIMD8<Float>) -> SIMD8<Float>, scalar: (Float) -> Float
) -> (simd: [Float], scalar: [Float]) {
    var out: [Float] = []
    out.reserveCapacity(xs.count + 8)
    var i = 0
    while i < xs.count {
        var v = SIMD8<Float>(repeating: 0)
        for l in 0..<8 where i + l < xs.count { v[l] = xs[i + l] }
        let r = simd(v)
        for l in 0..<8 where i + l < xs.count { out.append(r[l]) }
        i += 8
    }
    return (out, xs.map(scalar))
}

@Suite("Numerics")
struct NumericsTests {
    @Test("SIMD8 exp equals scalar exp bit for bit")
    func simdExpEqualsScalar() {
        let xs = specialInputs()
        // Shifted starts, so each value is seen in every lane position.
        for shift in 0..<8 {
            let shifted = Array(xs.dropFirst(shift))
            let (s, c) = simdAndScalar(shifted, simd: Numerics.exp, scalar: Numerics.exp)
            #expect(Comparison(s, c).isBitwiseEqual, "shift \(shift): \(Comparison(s, c))")
            #expect(Comparison(s.filter { !$0.isNaN }, c.filter { !$0.isNaN }).isBitwiseEqual)
        }
    }

    @Test("SIMD8 sigmoid and relu equal their scalar forms bit for bit")
    func simdSigmoidReluEqualScalar() {
        let xs = specialInputs()
        let (s1, c1) = simdAndScalar(xs, simd: Numerics.sigmoid, scalar: Numerics.sigmoid)
        #expect(Comparison(s1, c1).isBitwiseEqual, "sigmoid: \(Comparison(s1, c1))")
        #expect(Comparison(s1.filter { !$0.isNaN }, c1.filter { !$0.isNaN }).isBitwiseEqual)
        let (s2, c2) = simdAndScalar(xs, simd: Numerics.relu, scalar: Numerics.relu)
        #expect(Comparison(s2, c2).isBitwiseEqual, "relu: \(Comparison(s2, c2))")
        #expect(Comparison(s2.filter { !$0.isNaN }, c2.filter { !$0.isNaN }).isBitwiseEqual)
    }

    @Test("SIMD8 exp equals scalar exp across [-1, 1] and on every float near the thresholds")
    func simdExpExhaustiveSlices() {
        // Every float with |x| <= 1 is ~2.1e9 values, too many for a unit test (all 2^32 inputs were checked
        // once offline: no difference outside NaN payloads); take every 509th bit pattern, plus every
        // float within 2^16 ulps of each threshold.
        var xs: [Float] = []
        var bits: UInt32 = 0
        while bits <= 0x3F80_0000 {
            xs.append(Float(bitPattern: bits)); xs.append(-Float(bitPattern: bits)); bits += 509
        }
        for t in [Float(-87), 0x1.62e42ep+6] {
            for d in -65_536...65_536 { xs.append(Float(bitPattern: UInt32(Int(t.magnitude.bitPattern) + d)) * (t < 0 ? -1 : 1)) }
        }
        let (s, c) = simdAndScalar(xs, simd: Numerics.exp, scalar: Numerics.exp)
        #expect(Comparison(s, c).isBitwiseEqual, "\(Comparison(s, c))")
    }

    @Test("exp is within 2 ulp of the true value over [-87, 88.7]")
    func expAccuracy() {
        var worst = 0
        var worstX: Float = 0
        var x: Float = -87
        var count = 0
        while x <= 88.7 {
            let y = Numerics.exp(x)
            let truth = Float(Foundation.exp(Double(x)))
            let d = ulpDistance(y, truth)
            if d > worst { worst = d; worstX = x }
            count += 1
            x += 0.0001 * max(1, abs(x) / 8)
        }
        #expect(count > 500_000)
        #expect(worst <= 2, "worst error \(worst) ulp at x = \(worstX)")
    }

    @Test("exp special values")
    func expSpecials() {
        #expect(Numerics.exp(0) == 1)
        #expect(Numerics.exp(-0.0) == 1)
        #expect(Numerics.exp(.infinity) == .infinity)
        #expect(Numerics.exp(-.infinity).bitPattern == Float(0).bitPattern)
        #expect(Numerics.exp(.nan).bitPattern == Numerics.canonicalNaN.bitPattern)
        #expect(Numerics.exp(-Float.nan).bitPattern == 0x7FC0_0000)
        #expect(Numerics.exp(89) == .infinity)
        #expect(Numerics.exp(0x1.62e42ep+6).isFinite)
        #expect(Numerics.exp(0x1.62e42ep+6) > 3.4e38)
        #expect(Numerics.exp(-87) > 0 && Numerics.exp(-87).isNormal)
        #expect(Numerics.exp(Float(-87).nextDown) == 0)
        #expect(Numerics.exp(-100) == 0)
        #expect(Numerics.exp(1) == 2.7182817)
    }

    @Test("log is within 2 ulp of the true value over every 97th float in [1e-38, 1e38] and the subnormals")
    func logAccuracy() {
        var worst = 0
        var worstX: Float = 0
        var count = 0
        func check(_ x: Float) {
            let y = Numerics.log(x)
            let truth = Float(Foundation.log(Double(x)))
            // Same sign (or both zero) so the ulp distance is meaningful; +0 only at x = 1.
            let d = (y.sign == truth.sign || truth == 0) ? ulpDistance(y, truth) : Int.max
            if d > worst { worst = d; worstX = x }
            count += 1
        }
        var bits = Float(1e-38).bitPattern
        let end = Float(1e38).bitPattern
        while bits <= end { check(Float(bitPattern: bits)); bits += 97 }
        bits = 1
        while bits < 0x0080_0000 { check(Float(bitPattern: bits)); bits += 97 }
        // Dense around 1 (where log is tiny and the reduction is the most delicate) and around √2.
        for t in [Float(1), 0x1.6a09e6p+0, 0.5, 2] {
            for d in -20_000...20_000 { check(Float(bitPattern: UInt32(Int(t.bitPattern) + d))) }
        }
        check(.leastNonzeroMagnitude)
        check(.greatestFiniteMagnitude)
        check(.leastNormalMagnitude)
        #expect(count > 20_000_000)
        #expect(worst <= 2, "worst error \(worst) ulp at x = \(worstX) (\(worstX.bitPattern))")
    }

    @Test("log special values")
    func logSpecials() {
        let nan = Numerics.canonicalNaN.bitPattern
        #expect(Numerics.log(1).bitPattern == Float(0).bitPattern)
        #expect(Numerics.log(.nan).bitPattern == nan)
        #expect(Numerics.log(-Float.nan).bitPattern == nan)
        #expect(Numerics.log(Float(bitPattern: 0x7FA0_0001)).bitPattern == nan)
        #expect(Numerics.log(-1).bitPattern == nan)
        #expect(Numerics.log(-.leastNonzeroMagnitude).bitPattern == nan)
        #expect(Numerics.log(-.infinity).bitPattern == nan)
        #expect(Numerics.log(0) == -.infinity)
        #expect(Numerics.log(-0.0) == -.infinity)
        #expect(Numerics.log(.infinity) == .infinity)
        // Subnormals are finite: log(2^-149) = -103.2789...
        #expect(abs(Numerics.log(.leastNonzeroMagnitude) - -103.27893) <= 1e-4)
        #expect(abs(Numerics.log(Float(bitPattern: 0x0040_0000)) - Float(Foundation.log(Double(Float(bitPattern: 0x0040_0000))))) <= 1e-4)
        #expect(Numerics.log(.greatestFiniteMagnitude).isFinite)
        #expect(abs(Numerics.log(2) - 0.6931472) <= 1e-7)
        #expect(abs(Numerics.log(Float(M_E)) - 1) <= 1.2e-7)
        // The book's guard: log(0 + 1e-7) = -16.118095...
        #expect(abs(Numerics.log(Numerics.crossEntropyGuard) - -16.118095) <= 2e-6)
    }

    @Test("sigmoid values")
    func sigmoidValues() {
        #expect(Numerics.sigmoid(0) == 0.5)
        #expect(abs(Numerics.sigmoid(1) - 0.7310586) <= 1e-7)
        #expect(abs(Numerics.sigmoid(-1) - 0.26894143) <= 1e-7)
        #expect(abs(Numerics.sigmoid(2) - 0.880797) <= 1e-6)
        #expect(Numerics.sigmoid(100) == 1)
        #expect(Numerics.sigmoid(-100) == 0)
        #expect(Numerics.sigmoid(.infinity) == 1)
        #expect(Numerics.sigmoid(-.infinity) == 0)
        #expect(Numerics.sigmoid(.nan).bitPattern == 0x7FC0_0000)
        #expect(Numerics.sigmoid(-Float.nan).bitPattern == 0x7FC0_0000)
        #expect(Numerics.sigmoid(Float(bitPattern: 0xFFA0_0001)).bitPattern == 0x7FC0_0000)
        // The book's example: sigmoid([-1, 1, 2]) = [0.26894142, 0.73105858, 0.88079708].
        for (x, want) in zip([Float(-1), 1, 2], [0.26894142, 0.73105858, 0.88079708] as [Double]) {
            #expect(abs(Double(Numerics.sigmoid(x)) - want) <= 1e-7 * want)
        }
    }

    @Test("relu: positive passes, negative and -0 become +0, NaN stays NaN")
    func reluValues() {
        #expect(Numerics.relu(3) == 3)
        #expect(Numerics.relu(-3) == 0)
        #expect(Numerics.relu(-0.0).bitPattern == Float(0).bitPattern)
        #expect(Numerics.relu(.nan).bitPattern == 0x7FC0_0000)
        #expect(Numerics.relu(Float(bitPattern: 0xFFC0_0000)).bitPattern == 0x7FC0_0000)
        #expect(Numerics.relu(.infinity) == .infinity)
        #expect(Numerics.relu(-.infinity) == 0)
    }

    @Test("softmax: the book's numbers, including the overflow case")
    func softmaxBook() {
        func softmax(_ v: [Float]) -> [Float] {
            var r = v
            r.withUnsafeMutableBufferPointer { Numerics.softmax($0) }
            return r
        }
        // The book prints 8 digits, so its values carry up to half a unit of the 8th digit of rounding
        // (1.8e-7 relative for 0.01821127): allow 1e-7 relative plus that. Against float64 softmax of
        // the same float32 inputs the result must be within 1e-7 relative.
        let x: [Float] = [0.3, 2.9, 4.0]
        let a = softmax(x)
        for (got, want) in zip(a, [0.01821127, 0.24519181, 0.73659691] as [Double]) {
            #expect(abs(Double(got) - want) <= 1e-7 * want + 5e-9, "\(a)")
        }
        let e = x.map { Foundation.exp(Double($0) - 4) }
        for (got, want) in zip(a, e.map { $0 / e.reduce(0, +) }) {
            #expect(abs(Double(got) - want) <= 1e-7 * want, "\(a) vs \(want)")
        }
        #expect(abs(a.reduce(0, +) - 1) <= 2e-7)
        let b = softmax([1010, 1000, 990])
        for (got, want) in zip(b, [9.99954600e-01, 4.53978686e-05, 2.06106005e-09] as [Double]) {
            #expect(abs(Double(got) - want) <= 1e-6 * want, "\(b)")
        }
        #expect(softmax([]) == [])
        #expect(softmax([5]) == [1])
        #expect(softmax([1, .nan, 2]).allSatisfy { $0.isNaN })
        #expect(softmax([1, .infinity]).allSatisfy { $0.isNaN })
        #expect(softmax([-.infinity, 0]) == [0, 1])
    }

    @Test("argmax: first maximum, first NaN wins, empty row gives 0")
    func argmaxRule() {
        func argmax(_ v: [Float]) -> Int { v.withUnsafeBufferPointer { Numerics.argmax($0) } }
        #expect(argmax([1, 3, 3, 2]) == 1)
        #expect(argmax([1, .nan, 5, .nan]) == 1)
        #expect(argmax([.nan, 5]) == 0)
        #expect(argmax([-.infinity, -.infinity]) == 0)
        #expect(argmax([]) == 0)
        #expect(argmax([-0.0, 0.0]) == 0)
    }
}
