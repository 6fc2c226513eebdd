// DeviceSelector: turns what the user asked for (`--device auto|cpu|gpu|opencl|opencl:N`) into a running
// backend. `auto` prefers the first OpenCL GPU and falls back to the pure-Swift CPU path with a one-line
// reason; the explicit choices fail with an error that says what was found and what to try instead.
// `SCRATCHNET_FAULT=fake-gpu` (FaultInjection.swift) makes `auto` and `gpu` take the first OpenCL device as a
// GPU, so the fallback can be tested on a machine without one.

import Foundation
import ScratchNet

/// The backend chosen for a ``DeviceSpec``.
public struct DeviceSelection: Sendable {
    /// The backend to run on.
    public let backend: any Backend
    /// Why `auto` did not give an OpenCL GPU (one line, for logs); nil when nothing fell back.
    public let fallbackReason: String?

    /// Wraps a chosen backend and, if it is a fallback, the reason.
    public init(backend: any Backend, fallbackReason: String?) {
        self.backend = backend
        self.fallbackReason = fallbackReason
    }
}

/// Picks and opens a backend for a ``DeviceSpec``.
public enum DeviceSelector {
    /// Opens the backend for `spec`.
    ///
    /// - `auto`: the first OpenCL GPU; if there is none or it cannot build its kernels, ``CPUBackend`` with
    ///   a ``DeviceSelection/fallbackReason``.
    /// - `cpu`: ``CPUBackend``.
    /// - `gpu`: the first OpenCL GPU, else an error listing what was found.
    /// - `opencl`: the first OpenCL device; `opencl:N`: device N, else an error naming the device count.
    /// - Parameter kernelDirectory: kernel sources to build instead of the embedded ones (see
    ///   ``OpenCLBackend/init(deviceIndex:kernelDirectory:)``).
    public static func select(_ spec: DeviceSpec, kernelDirectory: URL? = nil) throws -> DeviceSelection {
        switch spec {
        case .cpu:
            return DeviceSelection(backend: CPUBackend(), fallbackReason: nil)

        case .auto:
            let fakeGPU = try FaultRules.fromEnvironment()?.fakeGPU ?? false
            let found = OpenCLDevices.enumerate()
            guard let gpu = found.devices.first(where: { $0.type == "GPU" || fakeGPU }) else {
                let why = found.devices.isEmpty
                    ? (found.reason ?? "no OpenCL device found")
                    : "no OpenCL GPU: found \(found.summary)"
                return DeviceSelection(backend: CPUBackend(), fallbackReason: "\(why); using the pure-Swift CPU path")
            }
            do {
                return DeviceSelection(
                    backend: try OpenCLBackend(deviceIndex: gpu.index, kernelDirectory: kernelDirectory),
                    fallbackReason: nil)
            } catch {
                let line = (error as? OpenCLError)?.summary
                    ?? "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
                return DeviceSelection(
                    backend: CPUBackend(),
                    fallbackReason: "OpenCL GPU \(gpu.id) (\(gpu.name)) failed to start: \(line); using the pure-Swift CPU path")
            }

        case .gpu:
            let fakeGPU = try FaultRules.fromEnvironment()?.fakeGPU ?? false
            let found = OpenCLDevices.enumerate()
            guard let gpu = found.devices.first(where: { $0.type == "GPU" || fakeGPU }) else {
                let what = found.devices.isEmpty ? (found.reason ?? "no OpenCL device found") : "found \(found.summary)"
                throw BackendError.device(
                    "no OpenCL GPU found (\(what)); use `--device opencl` for any OpenCL device or `--device cpu`, "
                        + "and see `scratchnet devices`")
            }
            return DeviceSelection(
                backend: try OpenCLBackend(deviceIndex: gpu.index, kernelDirectory: kernelDirectory),
                fallbackReason: nil)

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
            return DeviceSelection(
                backend: try OpenCLBackend(deviceIndex: index, kernelDirectory: kernelDirectory),
                fallbackReason: nil)
        }
    }
}
