// Helpers shared by the ScratchNet core tests: random tensors from a seeded generator and ulp distances.

import ScratchNet

/// The library's deterministic generator, so failures reproduce.
typealias SeededGenerator = SplitMix64

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
