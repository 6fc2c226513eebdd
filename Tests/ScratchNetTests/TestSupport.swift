// Helpers shared by the ScratchNet core tests: a seeded random generator, random tensors, and the
// comparisons the tests use (bitwise, and bitwise up to NaN payloads for NaN-propagation cases).

import ScratchNet

/// SplitMix64: a small deterministic generator so failures reproduce.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A rows×cols tensor of uniform values in `range`.
func randomTensor(_ rows: Int, _ cols: Int, in range: ClosedRange<Float> = -2...2, seed: UInt64) -> Tensor {
    var g = SeededGenerator(seed: seed)
    let values = (0..<(rows * cols)).map { _ in Float.random(in: range, using: &g) }
    // Shape and count agree by construction.
    return (try? Tensor(shape: [rows, cols], scalars: values)) ?? Tensor(zeros: [rows, cols])
}

/// Distance in units in the last place between two finite floats of the same sign.
func ulpDistance(_ a: Float, _ b: Float) -> Int {
    func key(_ x: Float) -> Int64 {
        let bits = Int64(x.bitPattern)
        return x.sign == .minus ? -(bits & 0x7FFF_FFFF) : bits
    }
    return Int(abs(key(a) - key(b)))
}
