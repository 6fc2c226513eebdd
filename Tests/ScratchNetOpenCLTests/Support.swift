// Shared helpers for the OpenCL tests: the one OpenCL backend all tests share (device opencl:0; a missing
// device FAILS the tests unless SCRATCHNET_ALLOW_NO_OPENCL=1), deterministic test data, and bitwise checks.

import Foundation
import ScratchNet
import ScratchNetOpenCL
import Testing

enum TestDevice {
    /// Built once: kernel compilation is the slow part.
    static let shared: Result<OpenCLBackend, any Error> = Result { try OpenCLBackend(deviceIndex: 0) }

    /// Whether a machine without OpenCL may skip the device tests.
    static var allowMissing: Bool { ProcessInfo.processInfo.environment["SCRATCHNET_ALLOW_NO_OPENCL"] == "1" }

    /// The shared backend. With no OpenCL device this records a failure (and returns nil) unless
    /// SCRATCHNET_ALLOW_NO_OPENCL=1 is set.
    static func backend(sourceLocation: SourceLocation = #_sourceLocation) -> OpenCLBackend? {
        switch shared {
        case .success(let backend): return backend
        case .failure(let error):
            if allowMissing && OpenCLDevices.enumerate().devices.isEmpty { return nil }
            Issue.record("no usable OpenCL device 0: \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }
}

/// Deterministic pseudo-random floats (SplitMix64), so failures reproduce.
struct TestRandom {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { generator.next() }

    /// Uniform in [-scale, scale), with full float mantissas (so fma rounding differences would show).
    mutating func float(_ scale: Float = 1) -> Float {
        Float(next() >> 40) / Float(1 << 24) * 2 * scale - scale
    }

    mutating func tensor(_ rows: Int, _ cols: Int, scale: Float = 1) -> Tensor {
        // Tensor(shape:scalars:) cannot fail here: the count matches the shape by construction.
        (try? Tensor(shape: [rows, cols], scalars: (0..<(rows * cols)).map { _ in float(scale) }))
            ?? Tensor(zeros: [rows, cols])
    }
}

/// Expects two tensors to have the same shape and bitwise-identical values.
func expectBitwise(
    _ got: Tensor, _ want: Tensor, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(got.shape == want.shape, "\(what): shape \(got.shape) vs \(want.shape)", sourceLocation: sourceLocation)
    let c = Comparison(got.scalars, want.scalars)
    #expect(c.isBitwiseEqual, "\(what): \(c)", sourceLocation: sourceLocation)
}

/// Values that exercise the special cases of every activation.
let specialValues: [Float] = [
    .nan, .infinity, -.infinity, 0, -0.0, 1, -1, 0.5, -0.5, 88.72, 88.73, -87, -87.5, -103, 100, -100,
    .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude,
    -.greatestFiniteMagnitude, 1e-20, -1e-20, 20, -20, 3.5, -3.5,
]

