// Test support for ScratchNetIOTests: locating the committed fixtures (made by Fixtures/make_fixtures.py) and the
// shared book/MNIST data, the arrays every fixture holds (rebuilt from the same formulas as the script), and
// bitwise comparison helpers.

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

enum Fixtures {
    /// The Fixtures folder next to this file (it is also copied as a resource; the source path works everywhere).
    static let directory: URL = {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        if FileManager.default.fileExists(atPath: here.path) { return here }
        return Bundle.module.resourceURL?.appendingPathComponent("Fixtures") ?? here
    }()

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    static func data(_ name: String) throws -> Data { try Data(contentsOf: url(name)) }

    /// The path make_fixtures.py's hostile pickles would `touch` if anything executed them.
    static let pwnedPath = "/tmp/scratchnet-io-test-pwned"
}

enum SharedData {
    /// `$MNIST_DIR` if set, else /work/shared/mnist.
    static var mnistDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["MNIST_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        return URL(fileURLWithPath: "/work/shared/mnist")
    }

    static var bookWeights: URL {
        if let path = ProcessInfo.processInfo.environment["SCRATCHNET_WEIGHTS"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return URL(fileURLWithPath: "/work/shared/book/sample_weight.pkl")
    }
}

/// The arrays of make_fixtures.py's `arrays()`, rebuilt from the same formulas.
enum FixtureArrays {
    static func make(_ shape: [Int], _ f: (Int) -> Float) -> Tensor {
        let n = shape.reduce(1, *)
        return (try? Tensor(shape: shape, scalars: (0..<n).map(f))) ?? Tensor(zeros: [0])
    }

    /// (3,5) C order: i*5 + j - 7.5, NaN at [0,1], +inf at [1,2], -inf at [2,3].
    static var c: Tensor {
        var t = make([3, 5]) { Float($0) - 7.5 }
        t.scalars[0 * 5 + 1] = .nan
        t.scalars[1 * 5 + 2] = .infinity
        t.scalars[2 * 5 + 3] = -.infinity
        return t
    }

    /// (7,4), stored in Fortran order: i*0.25 - j*3.
    static var f: Tensor { make([7, 4]) { Float($0 / 4) * 0.25 - Float($0 % 4) * 3 } }
    /// (2,3,4), stored in Fortran order: i*100 + j*10 + k.
    static var f3: Tensor { make([2, 3, 4]) { Float(($0 / 12) * 100 + (($0 / 4) % 3) * 10 + $0 % 4) } }
    /// float64 values narrowed to float32 (round to nearest; 1e40 overflows to inf, 1e-50 underflows to 0).
    static var d: Tensor { make([5]) { [Float(0.1 as Double), -2.5, .infinity, 0, Float(Double.pi)][$0] } }
    /// (2,3) big-endian float32: k * -1.5.
    static var be: Tensor { make([2, 3]) { Float($0) * -1.5 } }
    /// (3,) big-endian float64.
    static var be8: Tensor { make([3]) { [1.0, -0.0, Float(sign: .plus, exponent: -30, significand: 1)][$0] } }
    static var one: Tensor { make([1]) { _ in 42 } }
    static var empty: Tensor { Tensor(zeros: [0]) }
    static var empty2: Tensor { Tensor(zeros: [0, 3]) }
    /// (33,1) stored in Fortran order: k / 8.
    static var col: Tensor { make([33, 1]) { Float($0) / 8 } }
    static var u8: Tensor { make([4]) { [0, 1, 128, 255][$0] } }
    static var i8: Tensor { make([3]) { [-3, 0, Float(1 << 40)][$0] } }

    static var all: [String: Tensor] {
        ["c": c, "f": f, "f3": f3, "d": d, "be": be, "be8": be8, "one": one, "empty": empty, "empty2": empty2,
         "col": col, "u8": u8, "i8": i8]
    }
}

/// Bitwise equality of shape and every value (so NaN == NaN and -0.0 != 0.0).
func bitwiseEqual(_ a: Tensor, _ b: Tensor) -> Bool {
    a.shape == b.shape && a.scalars.map(\.bitPattern) == b.scalars.map(\.bitPattern)
}

/// Checks that `body` throws, and that what it throws is a LoadError; returns it.
@discardableResult
func expectLoadError(_ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: () throws -> Void) -> LoadError? {
    do {
        try body()
        Issue.record(comment ?? "expected a LoadError", sourceLocation: sourceLocation)
        return nil
    } catch let error as LoadError {
        return error
    } catch {
        Issue.record("expected a LoadError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
