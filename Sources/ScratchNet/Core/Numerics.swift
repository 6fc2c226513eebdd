// The one definition of ScratchNet's transcendental math: exp, log, sigmoid and softmax, in scalar and SIMD8
// form. Kernels/sn_math.cl is the same code in OpenCL C, operation for operation; any change here must be
// made there too (the parity tests fail otherwise).
//
// Why our own exp: built-in exp/expf/native_exp differ between libm versions, GPUs and pocl by an ulp or
// more, which would break bitwise parity. This one uses only operations IEEE 754 defines exactly
// (+, -, *, fma, rint, comparisons, exponent-bit arithmetic), so it gives the same bits everywhere.
// Accuracy: within 2 ulp of the true exp on [-87, 88.72] (checked against Double in the tests).
//
// NaN: IEEE 754 leaves the sign and payload of a NaN result open (x86 makes 0xFFC00000 from inf - inf, ARM and
// most GPUs 0x7FC00000, and compilers may flip a NaN's sign), so every op output that is NaN is replaced by the
// one canonical NaN (``Numerics/canonicalNaN``). That keeps NaN outputs bitwise identical too.

/// Bit-exact float32 math shared by every backend.
public enum Numerics {
    // Constants as hex floats: decimal Float literals are rounded twice on x86 (through Float80).
    /// log2(e) rounded to float.
    @usableFromInline static let log2e: Float = 0x1.715476p+0
    /// ln 2 split for Cody–Waite reduction: hi has few bits so n * hi is exact for |n| ≤ 128.
    @usableFromInline static let ln2Hi: Float = 0x1.62e400p-1
    @usableFromInline static let ln2Lo: Float = 0x1.7f7d1cp-20
    /// Cephes expf polynomial for e^r - 1 - r on |r| ≤ ln2/2 (coefficients rounded to float).
    @usableFromInline static let p0: Float = 0x1.a0d2cep-13
    @usableFromInline static let p1: Float = 0x1.6e879cp-10
    @usableFromInline static let p2: Float = 0x1.111210p-7
    @usableFromInline static let p3: Float = 0x1.555382p-5
    @usableFromInline static let p4: Float = 0x1.555554p-3
    @usableFromInline static let p5: Float = 0x1.000000p-1
    /// Above this, exp overflows to +inf (largest float whose exp is finite).
    @usableFromInline static let expHi: Float = 0x1.62e42ep+6
    /// Below this, exp is flushed to +0 (decided on the input, so no device ever produces a denormal;
    /// e^-87 ≈ 1.6e-38 is the smallest value returned).
    @usableFromInline static let expLo: Float = -0x1.5cp+6
    /// 1.5 * 2^23: adding it to an integer-valued float |n| < 2^22 puts n in the low mantissa bits.
    @usableFromInline static let magic: Float = 0x1.8p+23
    @usableFromInline static let magicBits: UInt32 = 0x4B40_0000

    /// The only NaN ScratchNet's ops produce: a positive quiet NaN with an empty payload (0x7FC00000).
    public static let canonicalNaN = Float(bitPattern: 0x7FC0_0000)

    /// `x`, or ``canonicalNaN`` if `x` is any NaN.
    @inlinable
    public static func canonical(_ x: Float) -> Float {
        x.isNaN ? canonicalNaN : x
    }

    /// Each lane of `x`, or ``canonicalNaN`` where the lane is any NaN.
    @inlinable @inline(__always)
    public static func canonical(_ x: SIMD8<Float>) -> SIMD8<Float> {
        x.replacing(with: canonicalNaN, where: x .!= x)
    }

    /// e^x, bit-identical on every backend. NaN → canonical NaN, x > 88.72 → +inf, x < -87 → +0.
    @inlinable
    public static func exp(_ x: Float) -> Float {
        if x.isNaN { return canonicalNaN }
        if x > expHi { return .infinity }
        if x < expLo { return 0 }
        // n = round(x / ln2), r = x - n ln2 in [-ln2/2, ln2/2]
        let n = (x * log2e).rounded(.toNearestOrEven)
        var r = x.addingProduct(-n, ln2Hi)
        r = r.addingProduct(-n, ln2Lo)
        // e^r = 1 + r + r^2 * P(r)
        var p = p0
        p = p1.addingProduct(p, r)
        p = p2.addingProduct(p, r)
        p = p3.addingProduct(p, r)
        p = p4.addingProduct(p, r)
        p = p5.addingProduct(p, r)
        let rr = r * r
        let y = r.addingProduct(p, rr) + 1
        // y * 2^n as (y * 2^n1) * 2^n2 with n1 = floor(n/2), n2 = n - n1: both factors normal, both
        // products exact unless the result overflows.
        let n1 = (n * 0.5).rounded(.down)
        let n2 = n - n1
        return (y * pow2(n1)) * pow2(n2)
    }

    /// 2^n for an integer-valued float n in [-126, 127], built from exponent bits.
    @inlinable
    static func pow2(_ n: Float) -> Float {
        let bits = (n + magic).bitPattern &- magicBits &+ 127
        return Float(bitPattern: bits &<< 23)
    }

    // log: Cephes logf (coefficients rounded to float), with fma in the Horner steps.
    @usableFromInline static let sqrt2: Float = 0x1.6a09e6p+0
    @usableFromInline static let l0: Float = 0x1.204376p-4
    @usableFromInline static let l1: Float = -0x1.d7a370p-4
    @usableFromInline static let l2: Float = 0x1.de4a34p-4
    @usableFromInline static let l3: Float = -0x1.fcba9ep-4
    @usableFromInline static let l4: Float = 0x1.23d37ep-3
    @usableFromInline static let l5: Float = -0x1.555ca0p-3
    @usableFromInline static let l6: Float = 0x1.999d58p-3
    @usableFromInline static let l7: Float = -0x1.fffff8p-3
    @usableFromInline static let l8: Float = 0x1.555554p-2
    /// ln 2 = logHi + logLo (Cephes' split: logHi = 0.693359375 has few bits).
    @usableFromInline static let logHi: Float = 0x1.63p-1
    @usableFromInline static let logLo: Float = -0x1.bd0106p-13

    /// The book's `1e-7` guard in `np.log(y + 1e-7)`, as the float nearest 1e-7.
    public static let crossEntropyGuard: Float = 0x1.ad7f2ap-24
    /// The book's optimizer epsilon `1e-7` (AdaGrad, Adam), as the float nearest 1e-7.
    public static let optimizerEpsilon: Float = 0x1.ad7f2ap-24

    /// Natural logarithm, bit-identical on every backend (mirrored as `sn_log` in Kernels/sn_math.cl).
    /// NaN or x < 0 → canonical NaN, ±0 → -inf, +inf → +inf. Within 2 ulp of the true log (tests check it
    /// against Double).
    ///
    /// x = m · 2^e with m in (√2/2, √2], f = m - 1 (exact), then Cephes logf:
    /// log x = f - f²/2 + f³·P(f) + e·ln2 with ln2 split in two parts.
    @inlinable
    public static func log(_ x: Float) -> Float {
        if x.isNaN || x < 0 { return canonicalNaN }
        if x == 0 { return -.infinity }
        if x == .infinity { return .infinity }
        var v = x
        var e: Int32 = 0
        if v < Float.leastNormalMagnitude {
            v = v * 0x1p23  // exact: makes a subnormal normal
            e = -23
        }
        let bits = v.bitPattern
        e += Int32(bitPattern: bits >> 23) - 127
        var m = Float(bitPattern: (bits & 0x007F_FFFF) | 0x3F80_0000)  // [1, 2)
        if m > sqrt2 {
            m = m * 0.5  // exact
            e += 1
        }
        let f = m - 1  // exact (Sterbenz)
        let fe = Float(e)  // exact: |e| < 2^24
        let z = f * f
        var p = l0
        p = l1.addingProduct(p, f)
        p = l2.addingProduct(p, f)
        p = l3.addingProduct(p, f)
        p = l4.addingProduct(p, f)
        p = l5.addingProduct(p, f)
        p = l6.addingProduct(p, f)
        p = l7.addingProduct(p, f)
        p = l8.addingProduct(p, f)
        var y = (p * f) * z
        y = y.addingProduct(fe, logLo)
        y = y.addingProduct(z, -0.5)
        var r = f + y
        r = r.addingProduct(fe, logHi)
        return r
    }

    /// 1 / (1 + e^-x); NaN → canonical NaN.
    @inlinable
    public static func sigmoid(_ x: Float) -> Float {
        canonical(1 / (1 + exp(-x)))
    }

    /// max(x, 0); NaN → canonical NaN, -0 becomes +0.
    @inlinable
    public static func relu(_ x: Float) -> Float {
        x > 0 ? x : (x.isNaN ? canonicalNaN : 0)
    }

    /// Applies an activation to one value.
    @inlinable
    public static func activate(_ x: Float, _ activation: Activation) -> Float {
        switch activation {
        case .identity: return canonical(x)
        case .sigmoid: return sigmoid(x)
        case .relu: return relu(x)
        }
    }

    /// Softmax of one row in place: m = max (by `x > m`, from -inf), e = exp(x - m), s = sum of e
    /// from left to right starting at +0, y = e / s. A NaN or +inf anywhere makes the row (canonical) NaN.
    @inlinable
    public static func softmax(_ row: UnsafeMutableBufferPointer<Float>) {
        var m = -Float.infinity
        for v in row where v > m { m = v }
        var s: Float = 0
        for j in row.indices {
            let e = exp(row[j] - m)
            row[j] = e
            s += e
        }
        for j in row.indices { row[j] = canonical(row[j] / s) }
    }

    /// Index of the first maximum of a row; the first NaN wins if there is one (NumPy's rule). 0 if empty.
    @inlinable
    public static func argmax(_ row: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        guard !row.isEmpty else { return 0 }
        if row[0].isNaN { return 0 }
        for j in 1..<row.count {
            let v = row[j]
            if v.isNaN { return j }
            if v > row[best] { best = j }
        }
        return best
    }

    // MARK: SIMD8 forms (same operations lane by lane; used by the CPU backend's vector loops)

    /// e^x on 8 lanes; bitwise equal to ``exp(_:)`` on each lane.
    @inlinable @inline(__always)
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let n = (x * log2e).rounded(.toNearestOrEven)
        var r = x.addingProduct(-n, SIMD8(repeating: ln2Hi))
        r = r.addingProduct(-n, SIMD8(repeating: ln2Lo))
        var p = SIMD8<Float>(repeating: p0)
        p = SIMD8(repeating: p1).addingProduct(p, r)
        p = SIMD8(repeating: p2).addingProduct(p, r)
        p = SIMD8(repeating: p3).addingProduct(p, r)
        p = SIMD8(repeating: p4).addingProduct(p, r)
        p = SIMD8(repeating: p5).addingProduct(p, r)
        let rr = r * r
        let y = r.addingProduct(p, rr) + 1
        // Clamp n so the exponent arithmetic stays in range on lanes the selects below replace anyway.
        let nc = n.replacing(with: 0, where: .!(x .<= expHi) .| (x .< expLo))
        let n1 = (nc * 0.5).rounded(.down)
        let n2 = nc - n1
        var result = (y * pow2(n1)) * pow2(n2)
        result.replace(with: .infinity, where: x .> expHi)
        result.replace(with: 0, where: x .< expLo)
        result.replace(with: canonicalNaN, where: x .!= x)
        return result
    }

    @inlinable @inline(__always)
    static func pow2(_ n: SIMD8<Float>) -> SIMD8<Float> {
        let bits = (n + magic).bitPattern &- magicBits &+ 127
        return unsafeBitCast(bits &<< 23, to: SIMD8<Float>.self)
    }

    /// 1 / (1 + e^-x) on 8 lanes; NaN → canonical NaN.
    @inlinable @inline(__always)
    public static func sigmoid(_ x: SIMD8<Float>) -> SIMD8<Float> {
        canonical(1 / (1 + exp(-x)))
    }

    /// max(x, 0) on 8 lanes; NaN → canonical NaN.
    @inlinable @inline(__always)
    public static func relu(_ x: SIMD8<Float>) -> SIMD8<Float> {
        canonical(x.replacing(with: 0, where: .!(x .> 0) .& (x .== x)))
    }

    /// An activation on 8 lanes (identity canonicalises NaN, like every op output).
    @inlinable @inline(__always)
    public static func activate(_ x: SIMD8<Float>, _ activation: Activation) -> SIMD8<Float> {
        switch activation {
        case .identity: return canonical(x)
        case .sigmoid: return sigmoid(x)
        case .relu: return relu(x)
        }
    }
}

extension SIMD8 where Scalar == Float {
    /// The raw bits of each lane.
    @inlinable @inline(__always)
    var bitPattern: SIMD8<UInt32> { unsafeBitCast(self, to: SIMD8<UInt32>.self) }
}
