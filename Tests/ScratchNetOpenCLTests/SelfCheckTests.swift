// The device self-check on OpenCL: a correct device passes every check of every job; a kernel folder with
// one deliberately wrong kernel is caught with that kernel named; the verdict decides what DeviceSelector
// does (run, run layer by layer, refuse); the verdict cache returns the same report and ignores damaged files.

import Foundation
import ScratchNet
import ScratchNetOpenCL
import Testing

@Suite("Device self-check", .serialized)
struct SelfCheckTests {
    /// A program/verdict cache in a fresh temporary folder.
    static func freshCache() -> ProgramCacheOptions {
        ProgramCacheOptions(
            directory: FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-selfcheck-\(UUID().uuidString)"))
    }

    @Test("the device under test passes every check of both jobs, bitwise")
    func devicePasses() throws {
        guard let be = TestDevice.backend() else { return }
        for job in SelfCheckJob.allCases {
            let report = try SelfCheck.run(be, against: CPUBackend(), job: job)
            #expect(report.passed, "\(job): \(report.firstFailure.map { DeviceSelector.describe($0, on: be) } ?? "")")
            #expect(report.notApplicable.isEmpty, "the fused pass must be exercised: \(report.notApplicable)")
            #expect(report.results.count == SelfCheck.cases(for: job).count)
            #expect(Set(report.results.map(\.op.group)) == Set(job.groups))
        }
    }

    @Test("the CPU path against itself passes, and covers every checked op")
    func cpuAgainstItself() throws {
        let report = try SelfCheck.run(CPUBackend(), against: CPUBackend(), job: .training)
        #expect(report.passed)
        #expect(Set(report.results.map(\.op)) == Set(CheckedOp.allCases))
    }

    @Test("a wrong fused kernel fails only the fused group, names sn_net, and the device runs layer by layer")
    func faultyFusedKernel() throws {
        guard TestDevice.backend() != nil else { return }
        let dir = try FaultyKernels.fusedNet()
        defer { try? FileManager.default.removeItem(at: dir) }
        let be = try OpenCLBackend(deviceIndex: 0, kernelDirectory: dir, cache: Self.freshCache())
        let verdict = try DeviceSelector.verify(be, job: .training)
        guard case .fusedFailed(let report, let bad) = verdict else {
            Issue.record("expected a fused-kernel failure, got \(verdict)")
            return
        }
        #expect(bad.op.group == .fused)
        #expect(report.firstFailure(in: .ops) == nil && report.firstFailure(in: .training) == nil)
        #expect(DeviceSelector.describe(bad, on: be).hasPrefix("sn_net (forward 784-50-100-10"))

        let selection = try DeviceSelector.select(.opencl(0), kernelDirectory: dir)
        let opencl = try #require(selection.backend as? OpenCLBackend)
        #expect(!opencl.fusedPathEnabled)
        #expect(selection.notes.count == 1)
        #expect(selection.notes.first?.contains("sn_net") == true)
        #expect(selection.notes.first?.contains("layer by layer") == true)
        // Layer by layer on the faulty device equals the CPU path bitwise.
        let weights = try networkWeights()
        var random = TestRandom(seed: 9)
        let x = random.tensor(21, 40)
        let want = try Network(weights: weights, backend: CPUBackend()).predict(x)
        let got = try Network(weights: weights, backend: opencl).predict(x)
        expectBitwise(got, want, "layer-by-layer path on a device whose fused kernel is wrong")
        // Unchecked, the faulty kernel really runs (so the check above was not vacuous).
        let unchecked = try DeviceSelector.select(.opencl(0), kernelDirectory: dir, checked: false)
        let wrong = try Network(weights: weights, backend: unchecked.backend).predict(x)
        #expect(!Comparison(wrong.scalars, want.scalars).isBitwiseEqual)
        #expect(unchecked.notes.first?.contains("unchecked") == true)
    }

    @Test("a wrong element-wise kernel refuses the named device in one line naming the kernel and element")
    func faultyApplyKernel() throws {
        guard TestDevice.backend() != nil else { return }
        let dir = try FaultyKernels.apply()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            _ = try DeviceSelector.select(.opencl(0), kernelDirectory: dir)
            Issue.record("a device with a wrong sn_apply was accepted")
        } catch {
            let text = "\(error)"
            #expect(text.hasPrefix("opencl:0 ("))
            #expect(text.contains("failed its self-check: sn_apply (identity"))
            #expect(text.contains("output 0 of"))
            #expect(text.contains("--unchecked"))
            #expect(!text.contains("\n"))
        }
        let unchecked = try DeviceSelector.select(.opencl(0), kernelDirectory: dir, checked: false)
        #expect(unchecked.selfCheck == nil)
    }

    @Test("the verdict is cached beside the programs and read back; a damaged verdict file is recomputed")
    func verdictCache() throws {
        guard TestDevice.backend() != nil else { return }
        let cache = Self.freshCache()
        defer { try? FileManager.default.removeItem(at: cache.directory) }
        let be = try OpenCLBackend(deviceIndex: 0, cache: cache)
        let (first, cached1) = try be.selfCheck(job: .inference, against: CPUBackend())
        #expect(!cached1)
        let files = try FileManager.default.contentsOfDirectory(atPath: cache.directory.path).filter { $0.hasPrefix("selfcheck-") }
        #expect(files.count == 1)
        let (second, cached2) = try be.selfCheck(job: .inference, against: CPUBackend())
        #expect(cached2)
        #expect(second == first)
        // Another job has its own verdict.
        let (_, cachedTraining) = try be.selfCheck(job: .training, against: CPUBackend())
        #expect(!cachedTraining)
        // Damage the inference verdict: it is ignored and rewritten.
        let file = cache.directory.appendingPathComponent(try #require(files.first))
        try Data("scratchnet self-check verdict 1\nmatmul\tnonsense\nend".utf8).write(to: file)
        let (third, cached3) = try be.selfCheck(job: .inference, against: CPUBackend())
        #expect(!cached3)
        #expect(third == first)
        let (_, cached4) = try be.selfCheck(job: .inference, against: CPUBackend())
        #expect(cached4)
    }

    @Test("a failing verdict is cached with its first difference")
    func failingVerdictCached() throws {
        guard TestDevice.backend() != nil else { return }
        let dir = try FaultyKernels.fusedNet()
        let cache = Self.freshCache()
        defer {
            try? FileManager.default.removeItem(at: dir)
            try? FileManager.default.removeItem(at: cache.directory)
        }
        let be = try OpenCLBackend(deviceIndex: 0, kernelDirectory: dir, cache: cache)
        let (first, _) = try be.selfCheck(job: .inference, against: CPUBackend())
        let (second, cached) = try be.selfCheck(job: .inference, against: CPUBackend())
        #expect(cached)
        #expect(!first.passed)
        #expect(second == first)
        #expect(second.firstFailure?.got.bitPattern == first.firstFailure?.got.bitPattern)
    }

    @Test("apply(.identity) in place stores the canonical NaN, as the CPU path does")
    func identityInPlaceCanonicalisesNaN() throws {
        guard let be = TestDevice.backend() else { return }
        let odd: [Float] = [Float(bitPattern: 0xFFC0_0000), Float(bitPattern: 0x7FC0_1234), Float(bitPattern: 0x7F80_0001), 1, -0.0]
        for backend in [be as any Backend, CPUBackend()] {
            let x = try backend.upload(odd, rows: 1, cols: odd.count)
            try backend.apply(.identity, x, into: x)
            let bits = try backend.download(x).scalars.map(\.bitPattern)
            #expect(bits == [0x7FC0_0000, 0x7FC0_0000, 0x7FC0_0000, Float(1).bitPattern, Float(-0.0).bitPattern], "\(backend.device.id)")
        }
    }

    /// A small 40-16-10 network (W1, b1, W2, b2) with deterministic weights.
    func networkWeights() throws -> [String: Tensor] {
        var r = TestRandom(seed: 77)
        return [
            "W1": r.tensor(40, 16, scale: 0.5), "b1": try Tensor(shape: [16], scalars: r.tensor(1, 16).scalars),
            "W2": r.tensor(16, 10, scale: 0.5), "b2": try Tensor(shape: [10], scalars: r.tensor(1, 10).scalars),
        ]
    }
}
