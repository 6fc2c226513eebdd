// Mesa rusticl (llvmpipe), the third OpenCL implementation CI runs: its self-check verdict must agree with
// what its kernels really compute. The ground truth here is independent of SelfCheck: the book-sized network
// (784-50-100-10, sigmoid, softmax) on the fused path, unchecked, against the CPU path layer by layer.
// If the fused kernel computes wrong bits the verdict must say so and name sn_net, and the checked selection
// must still give the CPU path's bits (layer by layer); if it computes the right bits the device must pass.
//
// Enabled with SCRATCHNET_RUSTICL_TEST=1 (CI sets it with RUSTICL_ENABLE=llvmpipe; then a missing rusticl
// device is a failure). SCRATCHNET_RUSTICL_EXPECT=passed|fused-failed pins the verdict CI expects, so a
// driver upgrade or a lost workaround shows up as a red test rather than a silent change.
import Foundation
import ScratchNet
import ScratchNetOpenCL
import Testing

/// Whether the rusticl suite runs (outside the suite's type: a trait cannot refer to its own suite).
enum RusticlGate {
    static let environment = ProcessInfo.processInfo.environment
    static var enabled: Bool { environment["SCRATCHNET_RUSTICL_TEST"] == "1" }
}

@Suite("Mesa rusticl", .serialized, .enabled(if: RusticlGate.enabled, "set SCRATCHNET_RUSTICL_TEST=1 with RUSTICL_ENABLE=llvmpipe"))
struct RusticlTests {

    /// The book's shapes with deterministic weights (sigmoid hidden layers, softmax output).
    static func bookSizedWeights() throws -> [String: Tensor] {
        var r = TestRandom(seed: 3)
        var weights: [String: Tensor] = [:]
        for (n, (rows, cols)) in [(784, 50), (50, 100), (100, 10)].enumerated() {
            weights["W\(n + 1)"] = r.tensor(rows, cols, scale: 0.1)
            weights["b\(n + 1)"] = try Tensor(shape: [cols], scalars: r.tensor(1, cols, scale: 0.1).scalars)
        }
        return weights
    }

    @Test("the self-check verdict agrees with what rusticl's fused kernel computes, and the checked device gives the CPU path's bits")
    func verdictAgreesWithTheDevice() throws {
        let devices = OpenCLDevices.enumerate().devices
        let found = devices.first { $0.platformName == "rusticl" }
        let info = try #require(
            found, "no rusticl device (found: \(devices.map(\.description))); install mesa-opencl-icd and set RUSTICL_ENABLE=llvmpipe")
        let weights = try Self.bookSizedWeights()
        var random = TestRandom(seed: 5)
        // 13 rows: more than two row blocks of the CPU tuning (6 rows per work-item) with a ragged tail.
        let x = try Tensor(shape: [13, 784], scalars: random.tensor(13, 784).scalars.map { abs($0) })
        let want = try Network(weights: weights, backend: CPUBackend(), fusedPath: false).predict(x)

        // What the device computes on the fused path, with no self-check in the way.
        let unchecked = try DeviceSelector.select(.opencl(info.index), checked: false)
        let fused = try Network(weights: weights, backend: unchecked.backend).predict(x)
        let fusedIsRight = Comparison(fused.scalars, want.scalars).isBitwiseEqual

        let opencl = try #require(unchecked.backend as? OpenCLBackend)
        let verdict = try DeviceSelector.verify(opencl, job: .inference)
        let kind: String
        switch verdict {
        case .passed:
            kind = "passed"
            #expect(fusedIsRight, "rusticl passed its self-check but its fused kernel gives wrong bits on the book's shapes")
        case .fusedFailed(let report, let bad):
            kind = "fused-failed"
            #expect(!fusedIsRight, "the self-check failed sn_net on rusticl but the fused kernel gives the right bits here")
            #expect(DeviceSelector.describe(bad, on: opencl).hasPrefix("sn_net ("))
            #expect(report.firstFailure(in: .ops) == nil)
        case .failed(_, let bad):
            kind = "failed"
            Issue.record("rusticl failed a non-fused check: \(DeviceSelector.describe(bad, on: opencl))")
        }
        if let expected = RusticlGate.environment["SCRATCHNET_RUSTICL_EXPECT"] {
            #expect(kind == expected, "rusticl's verdict is \(kind), CI expects \(expected) (SCRATCHNET_RUSTICL_EXPECT)")
        }

        // Checked: whatever the verdict, the selected device gives the CPU path's bits (fused or layer by layer).
        let checked = try DeviceSelector.select(.opencl(info.index))
        let got = try Network(weights: weights, backend: checked.backend).predict(x)
        expectBitwise(got, want, "rusticl after its self-check (\(kind))")
        let fusedOn = (checked.backend as? OpenCLBackend)?.fusedPathEnabled
        #expect(fusedOn == (kind == "passed"))
        #expect(checked.notes.contains { $0.contains("sn_net") } == (kind == "fused-failed"))
    }
}
