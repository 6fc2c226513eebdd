// `scratchnet devices`: every OpenCL platform and device, the pure-Swift CPU path, what `auto` picks and
// why, and each device's self-check (the checks `infer`/`train` run before using it: every kernel, bitwise
// against the CPU path), with the failing kernel and first differing output named.

import ArgumentParser
import Foundation
import ScratchNet
import ScratchNetOpenCL

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List OpenCL devices and the CPU path, show what --device auto picks, and self-check each device's kernels.")

    @Flag(name: [.customLong("no-self-check"), .customLong("no-smoke-test")], help: "Skip the per-kernel self-check.")
    var noSelfCheck = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    struct DeviceReport: Codable {
        var id: String
        var name: String
        var type: String
        var platform: String
        var computeUnits: Int
        var globalMemoryMiB: Int
        var version: String
        var driver: String
        var parity: String
        /// Per group (ops, fused, training): "passed", "failed" or "not applicable".
        var selfCheck: [String: String]?
        /// "passed", "fused kernel failed: runs layer by layer when named, never picked by auto", "failed".
        var verdict: String?
        /// The first failing check per failing group, with the kernel and the first differing output.
        var failures: [String]?
        var checks: Int?
        var cachedVerdict: Bool?
        var error: String?
    }

    struct Report: Codable {
        var openclDevices: [DeviceReport]
        var openclNote: String?
        var cpuPath: String
        var auto: String
        var autoReason: String?
    }

    func run() throws {
        let found = OpenCLDevices.enumerate()
        let cpu = try DeviceSelector.select(.cpu).backend
        var reports: [DeviceReport] = []
        for info in found.devices {
            var report = DeviceReport(
                id: "opencl:\(info.index)", name: info.name, type: info.type, platform: info.platformName,
                computeUnits: info.computeUnits, globalMemoryMiB: Int(info.globalMemoryBytes / (1 << 20)),
                version: info.deviceVersion, driver: info.driverVersion, parity: info.parity.description)
            if !noSelfCheck {
                do {
                    let backend = try OpenCLBackend(deviceIndex: info.index)
                    let (selfCheck, cached) = try backend.selfCheck(job: .training, against: cpu)
                    var groups: [String: String] = [:]
                    var failures: [String] = []
                    for group in SelfCheckGroup.allCases {
                        if selfCheck.notApplicable.contains(group) {
                            groups[group.rawValue] = "not applicable"
                        } else if let bad = selfCheck.firstFailure(in: group) {
                            groups[group.rawValue] = "failed"
                            failures.append("\(group.rawValue): \(DeviceSelector.describe(bad, on: backend))")
                        } else {
                            groups[group.rawValue] = "passed"
                        }
                    }
                    report.selfCheck = groups
                    report.failures = failures
                    report.checks = selfCheck.results.count
                    report.cachedVerdict = cached
                    switch SelfCheckVerdict(selfCheck) {
                    case .passed: report.verdict = "passed"
                    case .fusedFailed:
                        report.verdict = "fused kernel failed: never picked by auto; asked for by name it runs layer by layer"
                    case .failed: report.verdict = "failed: never picked by auto; asked for by name it is refused"
                    }
                } catch {
                    report.error = "\(error)"
                }
            }
            reports.append(report)
        }
        let auto = try DeviceSelector.select(.auto)
        let result = Report(
            openclDevices: reports, openclNote: found.devices.isEmpty ? found.reason : nil,
            cpuPath: cpu.device.description, auto: auto.backend.device.id,
            autoReason: auto.fallbackReason ?? "first OpenCL GPU")
        if json { try printJSON(result); return }

        print("OpenCL devices:")
        if reports.isEmpty {
            print("  none. \(found.reason ?? "")")
        }
        for r in reports {
            print("  \(r.id)  \(r.name)")
            print("      type \(r.type), platform \(r.platform), \(r.computeUnits) compute units, \(r.globalMemoryMiB) MiB")
            print("      \(r.version), driver \(r.driver)")
            print("      \(r.parity)")
            if let error = r.error { print("      self-check failed to run: \(error)") }
            if let groups = r.selfCheck, let verdict = r.verdict {
                let parts = SelfCheckGroup.allCases.compactMap { g in groups[g.rawValue].map { "\(g.rawValue) \($0)" } }
                let origin = r.cachedVerdict == true ? ", cached verdict" : ""
                print("      self-check (\(r.checks ?? 0) checks, bitwise against the CPU path\(origin)): \(parts.joined(separator: ", "))")
                for failure in r.failures ?? [] { print("        FAILED \(failure)") }
                print("      verdict: \(verdict)")
            }
        }
        print("CPU path:")
        print("  cpu  \(cpu.device.name) (\(cpu.device.platform)), \(cpu.device.parity) (the reference)")
        print("auto picks: \(result.auto) (\(result.autoReason ?? ""))")
    }
}
