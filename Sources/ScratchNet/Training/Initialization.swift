// Seeded randomness of training, all on the host so that the same seed gives the same run on every device:
// the Gaussian initial weights (the book's `weight_init_std * np.random.randn`, He and Xavier of chapter 6)
// and the per-epoch shuffle. Built on SplitMix64 with our own bounded-integer and Box–Muller code, so the
// sequence does not depend on the Swift standard library's `random(in:)` implementation.

import Foundation

/// How the initial weights are drawn (biases start at 0, as in the book).
public enum WeightInit: Sendable, Equatable, CustomStringConvertible {
    /// N(0, σ²) with a fixed σ: the book's TwoLayerNet uses 0.01.
    case standardDeviation(Double)
    /// He: σ = √(2 / fan-in), the book's choice for ReLU.
    case he
    /// Xavier: σ = √(1 / fan-in), the book's choice for sigmoid.
    case xavier
    /// He for ReLU, Xavier otherwise (the book's MultiLayerNet `weight_init_std='relu'/'sigmoid'`).
    case auto

    /// σ for a layer with `fanIn` inputs and the hidden activation `activation`.
    public func standardDeviation(fanIn: Int, activation: Activation) -> Double {
        switch self {
        case .standardDeviation(let s): return s
        case .he: return (2 / Double(max(fanIn, 1))).squareRoot()
        case .xavier: return (1 / Double(max(fanIn, 1))).squareRoot()
        case .auto: return activation == .relu ? WeightInit.he.standardDeviation(fanIn: fanIn, activation: activation)
            : WeightInit.xavier.standardDeviation(fanIn: fanIn, activation: activation)
        }
    }

    public var description: String {
        switch self {
        case .standardDeviation(let s): return "N(0, \(s)²)"
        case .he: return "He"
        case .xavier: return "Xavier"
        case .auto: return "auto"
        }
    }
}

/// Seeded random numbers for training: uniform integers, Gaussians, permutations.
public struct TrainingRandom: Sendable {
    private var generator: SplitMix64
    private var spare: Double?

    public init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    /// A uniform integer in 0..<bound (bound > 0), by rejection (no modulo bias).
    public mutating func integer(below bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        let b = UInt64(bound)
        let limit = UInt64.max - (UInt64.max % b)
        while true {
            let r = generator.next()
            if r < limit { return Int(r % b) }
        }
    }

    /// A uniform Double in [0, 1) with 53 random bits.
    public mutating func unit() -> Double {
        Double(generator.next() >> 11) * 0x1p-53
    }

    /// A standard normal sample (Box–Muller, pairs cached).
    public mutating func gaussian() -> Double {
        if let s = spare {
            spare = nil
            return s
        }
        var u1 = unit()
        while u1 == 0 { u1 = unit() }
        let u2 = unit()
        let r = (-2 * Foundation.log(u1)).squareRoot()
        spare = r * Foundation.sin(2 * Double.pi * u2)
        return r * Foundation.cos(2 * Double.pi * u2)
    }

    /// A uniformly random permutation of 0..<n (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) {
                p.swapAt(i, integer(below: i + 1))
            }
        }
        return p
    }
}

extension WeightInit {
    /// W1..Wn (σ · N(0,1) as Float) and b1..bn (zeros) for layer sizes [in, h1, ..., out], drawn in the order
    /// W1, W2, ..., row-major, from `seed`.
    public func weights(layerSizes sizes: [Int], activation: Activation, seed: UInt64) throws -> [String: Tensor] {
        guard sizes.count >= 2, sizes.allSatisfy({ $0 > 0 }) else {
            throw ModelError("layer sizes must be at least two positive numbers (inputs, ..., classes), got \(sizes)")
        }
        var rng = TrainingRandom(seed: seed)
        var out: [String: Tensor] = [:]
        for i in 1..<sizes.count {
            let (fanIn, fanOut) = (sizes[i - 1], sizes[i])
            let sigma = standardDeviation(fanIn: fanIn, activation: activation)
            let values = (0..<(fanIn * fanOut)).map { _ in Float(sigma * rng.gaussian()) }
            out["W\(i)"] = try Tensor(shape: [fanIn, fanOut], scalars: values)
            out["b\(i)"] = Tensor(zeros: [fanOut])
        }
        return out
    }
}
