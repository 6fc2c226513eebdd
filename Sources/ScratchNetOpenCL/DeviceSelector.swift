// DeviceSelector: turns what the user asked for (`--device auto|cpu|gpu|opencl|opencl:N`) into a running
// backend that has proved itself. Every OpenCL device runs the self-check of the job (SelfCheck.swift:
// every kernel the job launches, with the device's own tunables, bitwise against the CPU path; the verdict
// is cached) before it is handed out:
//  - `auto` takes the first OpenCL GPU that passes every check and falls back to the pure-Swift CPU path with
//    a one-line reason; a device that fails any check is never picked.
//  - A device asked for by name that fails only the fused whole-network kernel runs layer by layer instead
//    (checked too) and says so in one note; one that fails any other check is refused with one line naming
//    the device, the kernel and the first differing output.
//  - `checked: false` (the CLI's `--unchecked`) skips the check for a deliberate run, with a note.
// `SCRATCHNET_FAULT=fake-gpu` (FaultInjection.swift) makes `auto` and `gpu` take every OpenCL device as a
// GPU, so the fallback can be tested on a machine without one.

import Foundation
import ScratchNet

/// The backend chosen for a `DeviceSpec` (module ScratchNet).
public struct DeviceSelection: Sendable {
    /// The backend to run on.
    public let backend: any Backend
    /// Why `auto` did not give an OpenCL GPU (one line, for logs); nil when nothing fell back.
    public let fallbackReason: String?
    /// One-line notes for the user: a path replaced after a failed check, an unchecked device.
    public let notes: [String]
    /// The chosen device's self-check (nil for the CPU path or an unchecked device).
    public let selfCheck: SelfCheckReport?

    /// Wraps a chosen backend and, if it is a fallback, the reason.
    public init(
        backend: any Backend, fallbackReason: String?, notes: [String] = [], selfCheck: SelfCheckReport? = nil
    ) {
        self.backend = backend
        self.fallbackReason = fallbackReason
        self.notes = notes
        self.selfCheck = selfCheck
    }
}

/// What the self-check concluded about one opened device.
public enum SelfCheckVerdict: Sendable {
    /// Every check passed.
    case passed(SelfCheckReport)
    /// Only the fused whole-network kernel failed; the layer-by-layer path passed.
    case fusedFailed(SelfCheckReport, SelfCheckResult)
    /// A check outside the fused kernel failed: the device cannot run the job.
    case failed(SelfCheckReport, SelfCheckResult)

    /// The report behind the verdict.
    public var report: SelfCheckReport {
        switch self {
        case .passed(let r), .fusedFailed(let r, _), .failed(let r, _): return r
        }
    }

    /// The verdict of `report`.
    public init(_ report: SelfCheckReport) {
        if let bad = SelfCheckGroup.allCases.filter({ $0 != .fused }).lazy.compactMap({ report.firstFailure(in: $0) }).first {
            self = .failed(report, bad)
        } else if let bad = report.firstFailure(in: .fused) {
            self = .fusedFailed(report, bad)
        } else {
            self = .passed(report)
        }
    }
}

/// Picks and opens a backend for a `DeviceSpec` (module ScratchNet).
public enum DeviceSelector {
    /// Opens the backend for `spec` and self-checks it for `job`.
    ///
    /// - `auto`: the first OpenCL GPU that starts and passes every check; else `CPUBackend` with a
    ///   ``DeviceSelection/fallbackReason``.
    /// - `cpu`: `CPUBackend`.
    /// - `gpu`: the first OpenCL GPU, else an error listing what was found.
    /// - `opencl`: the first OpenCL device; `opencl:N`: device N, else an error naming the device count.
    ///
    /// A named device that fails the check throws (see the file header), unless only the fused kernel failed.
    /// - Parameters:
    ///   - spec: the device asked for, e.g. `--device` parsed by `DeviceSpec(parsing:)`.
    ///   - kernelDirectory: kernel sources to build instead of the embedded ones (see
    ///     ``OpenCLBackend/init(deviceIndex:kernelDirectory:cache:tuning:)``).
    ///   - job: which ops the device must prove (inference, or training too).
    ///   - checked: false skips the self-check (a note says so).
    public static func select(
        _ spec: DeviceSpec, kernelDirectory: URL? = nil, job: SelfCheckJob = .inference, checked: Bool = true
    ) throws -> DeviceSelection {
        switch spec {
        case .cpu:
            return DeviceSelection(backend: CPUBackend(), fallbackReason: nil)

        case .auto:
            let fakeGPU = try FaultRules.fromEnvironment()?.fakeGPU ?? false
            let found = OpenCLDevices.enumerate()
            let gpus = found.devices.filter { $0.type == "GPU" || fakeGPU }
            guard !gpus.isEmpty else {
                let why = found.devices.isEmpty
                    ? (found.reason ?? "no OpenCL device found")
                    : "no OpenCL GPU: found \(found.summary)"
                return DeviceSelection(backend: CPUBackend(), fallbackReason: "\(why); using the pure-Swift CPU path")
            }
            var rejected: [String] = []
            for gpu in gpus {
                let backend: OpenCLBackend
                do {
                    backend = try OpenCLBackend(deviceIndex: gpu.index, kernelDirectory: kernelDirectory)
                } catch {
                    rejected.append("OpenCL GPU \(gpu.id) (\(gpu.name)) failed to start: \(firstLine(error))")
                    continue
                }
                guard checked else {
                    return DeviceSelection(backend: backend, fallbackReason: nil, notes: [uncheckedNote(backend)])
                }
                do {
                    switch try verify(backend, job: job) {
                    case .passed(let report):
                        return DeviceSelection(backend: backend, fallbackReason: nil, selfCheck: report)
                    case .fusedFailed(_, let bad), .failed(_, let bad):
                        rejected.append("\(gpu.id) (\(gpu.name)) failed its self-check: \(describe(bad, on: backend))")
                    }
                } catch {
                    rejected.append("\(gpu.id) (\(gpu.name)): the self-check could not run: \(firstLine(error))")
                }
            }
            return DeviceSelection(
                backend: CPUBackend(),
                fallbackReason: rejected.joined(separator: "; ") + "; using the pure-Swift CPU path")

        case .gpu:
            let fakeGPU = try FaultRules.fromEnvironment()?.fakeGPU ?? false
            let found = OpenCLDevices.enumerate()
            guard let gpu = found.devices.first(where: { $0.type == "GPU" || fakeGPU }) else {
                let what = found.devices.isEmpty ? (found.reason ?? "no OpenCL device found") : "found \(found.summary)"
                throw BackendError.device(
                    "no OpenCL GPU found (\(what)); use `--device opencl` for any OpenCL device or `--device cpu`, "
                        + "and see `scratchnet devices`")
            }
            return try named(gpu.index, kernelDirectory: kernelDirectory, job: job, checked: checked)

        case .opencl(let n):
            let found = OpenCLDevices.enumerate()
            guard !found.devices.isEmpty else {
                throw BackendError.device(
                    "\(spec): \(found.reason ?? "no OpenCL device found"); use `--device cpu` for the pure-Swift CPU path")
            }
            let index = n ?? 0
            guard found.devices.indices.contains(index) else {
                throw BackendError.device(OpenCLDevices.outOfRangeMessage(index: index, count: found.devices.count))
            }
            return try named(index, kernelDirectory: kernelDirectory, job: job, checked: checked)
        }
    }

    /// Runs the self-check of `job` on `backend` against the CPU path (or reads the cached verdict).
    public static func verify(_ backend: OpenCLBackend, job: SelfCheckJob) throws -> SelfCheckVerdict {
        // The reference is built per call: CPUBackend is cheap to make and its worker pool ends with it.
        SelfCheckVerdict(try backend.selfCheck(job: job, against: CPUBackend()).0)
    }

    /// "sn_net (predict 784-50-100-10 ..., bytes): output 3 of 13 is 7.0 (0x40e00000) but the CPU path gives ...".
    public static func describe(_ result: SelfCheckResult, on backend: any Backend) -> String {
        let kernel = backend.kernelName(for: result.op) ?? result.op.rawValue
        return "\(kernel) (\(result.name)): \(result.differenceDescription)"
    }

    /// A device asked for by name: open it, check it, and refuse it, run it without the fused kernel, or run it.
    static func named(_ index: Int, kernelDirectory: URL?, job: SelfCheckJob, checked: Bool) throws -> DeviceSelection {
        let backend = try OpenCLBackend(deviceIndex: index, kernelDirectory: kernelDirectory)
        guard checked else {
            return DeviceSelection(backend: backend, fallbackReason: nil, notes: [uncheckedNote(backend)])
        }
        let who = "\(backend.device.id) (\(backend.device.name))"
        switch try verify(backend, job: job) {
        case .passed(let report):
            return DeviceSelection(backend: backend, fallbackReason: nil, selfCheck: report)
        case .fusedFailed(let report, let bad):
            backend.fusedPathEnabled = false
            return DeviceSelection(
                backend: backend, fallbackReason: nil,
                notes: [
                    "\(who) failed its self-check in the fused network kernel: \(describe(bad, on: backend)); "
                        + "running layer by layer instead (those kernels passed)"
                ],
                selfCheck: report)
        case .failed(_, let bad):
            throw BackendError.device(
                "\(who) failed its self-check: \(describe(bad, on: backend)); use `--device cpu` "
                    + "(or another device, see `scratchnet devices`), or `--unchecked` to run it anyway")
        }
    }

    static func uncheckedNote(_ backend: any Backend) -> String {
        "\(backend.device.id) (\(backend.device.name)) runs unchecked (--unchecked): its results are not verified against the CPU path"
    }

    static func firstLine(_ error: any Error) -> String {
        (error as? OpenCLError)?.summary ?? "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
    }
}
