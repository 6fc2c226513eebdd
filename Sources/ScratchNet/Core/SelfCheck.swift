// SmokeTest: runs every Backend op on small awkward inputs on two backends and compares the results
// bitwise. `scratchnet devices` uses it to check each OpenCL device's kernels against the CPU path.

/// The outcome of one op on two backends.
public struct SmokeResult: Sendable {
    /// Which op and shape, e.g. "affine+sigmoid (33,47)·(47,29)".
    public let op: String
    /// How the candidate's output compares with the reference's.
    public let comparison: Comparison
}

/// Small per-op checks of one backend against another.
public enum SmokeTest {
    /// Runs matmul, affine with each activation, every activation, softmax and argmax on deterministic
    /// pseudo-random inputs (with a NaN and infinities in the element-wise inputs) on both backends.
    public static func run(_ candidate: any Backend, against reference: any Backend) throws -> [SmokeResult] {
        var rng = SplitMix64(seed: 0x5C2A7C4)
        let (n, k, m) = (33, 47, 29)
        let a = try Tensor(shape: [n, k], scalars: (0..<(n * k)).map { _ in rng.nextFloat(in: -2...2) })
        let w = try Tensor(shape: [k, m], scalars: (0..<(k * m)).map { _ in rng.nextFloat(in: -1...1) })
        let b = try Tensor(shape: [m], scalars: (0..<m).map { _ in rng.nextFloat(in: -1...1) })
        var e = try Tensor(shape: [n, m], scalars: (0..<(n * m)).map { _ in rng.nextFloat(in: -100...100) })
        e.scalars[3] = .nan
        e.scalars[5] = .infinity
        e.scalars[7] = -.infinity
        e.scalars[40] = 0x1p-140  // a denormal

        var results: [SmokeResult] = []
        func both(_ name: String, _ body: (any Backend) throws -> [Float]) throws {
            let r = try body(reference)
            let c = try body(candidate)
            results.append(SmokeResult(op: name, comparison: Comparison(c, r)))
        }
        try both("matmul (\(n),\(k))·(\(k),\(m))") { be in
            let c = try be.makeMatrix(rows: n, cols: m)
            try be.matmul(be.upload(a), be.upload(w), into: c)
            return try be.download(c).scalars
        }
        for act in Activation.allCases {
            try both("affine+\(act.rawValue) (\(n),\(k))·(\(k),\(m))") { be in
                let y = try be.makeMatrix(rows: n, cols: m)
                try be.affine(be.upload(a), be.upload(w), bias: be.upload(b), activation: act, into: y)
                return try be.download(y).scalars
            }
            try both("\(act.rawValue) (\(n),\(m)) with NaN/inf") { be in
                let x = try be.upload(e)
                let y = try be.makeMatrix(rows: n, cols: m)
                try be.apply(act, x, into: y)
                return try be.download(y).scalars
            }
        }
        let logits = try Tensor(shape: [n, m], scalars: (0..<(n * m)).map { _ in rng.nextFloat(in: -30...30) })
        try both("softmax (\(n),\(m))") { be in
            let y = try be.makeMatrix(rows: n, cols: m)
            try be.softmaxRows(be.upload(logits), into: y)
            return try be.download(y).scalars
        }
        try both("softmax (\(n),\(m)) with NaN/inf") { be in
            let y = try be.makeMatrix(rows: n, cols: m)
            try be.softmaxRows(be.upload(e), into: y)
            return try be.download(y).scalars
        }
        let pixels = (0..<(n * 31)).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        try both("bytes / 255 (\(n),31)") { be in
            let y = try be.makeMatrix(rows: n, cols: 31)
            try pixels.withUnsafeBufferPointer { try be.write(bytes: $0, dividedBy: 255, to: y) }
            return try be.download(y).scalars
        }
        try both("argmax (\(n),\(m)) with NaN/inf") { be in
            try be.argmaxRows(be.upload(e)).map { Float($0) }
        }
        return results
    }
}

/// A small deterministic generator (SplitMix64) so tests, smoke tests and benchmarks are reproducible
/// without Foundation's random sources.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A uniformly distributed float in `range`.
    public mutating func nextFloat(in range: ClosedRange<Float>) -> Float {
        let unit = Float(next() >> 40) * 0x1p-24
        return range.lowerBound + unit * (range.upperBound - range.lowerBound)
    }
}
