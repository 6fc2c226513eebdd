// SplitMix64: the one seeded generator of the library, its tests and benchmarks (initialisation, shuffles,
// self-check inputs), so every run with the same seed draws the same numbers everywhere.

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
