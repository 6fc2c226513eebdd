// Comparison: the one way ScratchNet compares two arrays of floats, used by the parity command, the
// `devices` smoke test and every test (exact bitwise equality where parity is promised, tolerances elsewhere).

/// How two equally long float arrays differ.
public struct Comparison: Sendable, Equatable, CustomStringConvertible {
    /// Number of values compared (0 if the lengths differ; see ``lengthsMatch``).
    public let count: Int
    /// Values whose bit patterns are identical (any NaN equals only the same NaN bits).
    public let bitwiseEqual: Int
    /// Largest |a - b| over pairs where both are finite numbers; 0 when all pairs are equal.
    public let maxAbsDifference: Float
    /// Pairs where one side is NaN/inf and the other is not the same special value.
    public let specialMismatches: Int
    /// Index of the first pair that is not bitwise equal.
    public let firstMismatch: Int?
    /// False if the arrays had different lengths (then nothing else was compared).
    public let lengthsMatch: Bool

    /// Compares `a` and `b` element by element.
    public init<A: Collection<Float>, B: Collection<Float>>(_ a: A, _ b: B) {
        guard a.count == b.count else {
            self.count = 0; self.bitwiseEqual = 0; self.maxAbsDifference = .infinity
            self.specialMismatches = 0; self.firstMismatch = 0; self.lengthsMatch = false
            return
        }
        var equal = 0, special = 0
        var maxDiff: Float = 0
        var first: Int? = nil
        for (i, (x, y)) in zip(a, b).enumerated() {
            if x.bitPattern == y.bitPattern { equal += 1; continue }
            if first == nil { first = i }
            if x.isFinite && y.isFinite {
                maxDiff = Swift.max(maxDiff, abs(x - y))
            } else if !(x.isNaN && y.isNaN) {
                special += 1
            } else {
                // Two NaNs with different payloads: not bitwise equal, but not a numeric difference either.
            }
        }
        self.count = a.count
        self.bitwiseEqual = equal
        self.maxAbsDifference = maxDiff
        self.specialMismatches = special
        self.firstMismatch = first
        self.lengthsMatch = true
    }

    /// Every value has identical bits.
    public var isBitwiseEqual: Bool { lengthsMatch && bitwiseEqual == count }

    /// All finite pairs within the absolute `tolerance`, and every
    /// special value (NaN, ±inf) matched by the same kind on the other side.
    public func isClose(tolerance: Float) -> Bool {
        lengthsMatch && specialMismatches == 0 && maxAbsDifference <= tolerance
    }

    public var description: String {
        guard lengthsMatch else { return "lengths differ" }
        return "\(bitwiseEqual)/\(count) bitwise equal, max |Δ| \(maxAbsDifference)"
            + (specialMismatches > 0 ? ", \(specialMismatches) NaN/inf mismatches" : "")
            + (firstMismatch.map { ", first difference at \($0)" } ?? "")
    }
}
