// `scratchnet devices`: every OpenCL platform and device, the pure-Swift CPU path, what `auto` picks and
// why, and a smoke test of each kernel against the CPU path.

import ArgumentParser
import Foundation
import ScratchNet
import ScratchNetOpenCL

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List OpenCL devices and the CPU path, show what --device auto picks, and smoke-test each device's kernels.")

    @Flag(help: "Skip the per-kernel smoke test.")
    var noSmokeTest = false

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
        var smokeTest: [String: Bool]?
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
            if !noSmokeTest {
                do {
                    let backend = try DeviceSelector.select(.opencl(info.index)).backend
                    let results = try SmokeTest.run(backend, against: cpu)
                    report.smokeTest = Dictionary(uniqueKeysWithValues: results.map { ($0.op, $0.comparison.isBitwiseEqual) })
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
            if let error = r.error { print("      smoke test failed to run: \(error)") }
            if let smoke = r.smokeTest {
                let failed = smoke.filter { !$0.value }.keys.sorted()
                print(failed.isEmpty
                    ? "      smoke test: all \(smoke.count) kernel checks bitwise equal to the CPU path"
                    : "      smoke test: \(failed.count) of \(smoke.count) differ from the CPU path: \(failed.joined(separator: "; "))")
            }
        }
        print("CPU path:")
        print("  cpu  \(cpu.device.name) (\(cpu.device.platform)), \(cpu.device.parity) (the reference)")
        print("auto picks: \(result.auto) (\(result.autoReason ?? ""))")
    }
}
