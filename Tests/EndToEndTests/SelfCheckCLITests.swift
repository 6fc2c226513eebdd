// What the `scratchnet` binary does with a device that fails its self-check (FaultyKernels: one kernel
// deliberately wrong, via SCRATCHNET_KERNELS): auto skips it, a named device whose fused kernel is wrong runs
// layer by layer and still scores 0.9352, a named device with any other wrong kernel is refused in one line
// (exit 2) unless --unchecked; and `parity --quick` checks a sample and says so.
import Foundation
import ScratchNetOpenCL
import Testing

@Suite("CLI: the device self-check", .serialized)
struct SelfCheckCLITests {
    func lines(_ text: String) -> [Substring] { text.split(separator: "\n") }

    @Test("auto (a GPU faked) never picks a device whose fused kernel is wrong: the CPU path, 0.9352, one note naming sn_net")
    func autoSkipsAFailingDevice() throws {
        guard try Book.openCLBackend() != nil else { return }
        let dir = try FaultyKernels.fusedNet()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(
            ["infer", "--device", "auto", "--json"],
            environment: ["SCRATCHNET_FAULT": "fake-gpu", "SCRATCHNET_KERNELS": dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(lines(r.stderr).count == 1, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("sn_net"), "\(r.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(report["device"] as? String == "cpu")
        #expect(report["accuracy"] as? Double == 0.9352)
    }

    @Test("a named device whose fused kernel is wrong runs layer by layer, says so in one line, and scores 0.9352")
    func namedDeviceFallsBackToLayers() throws {
        guard try Book.openCLBackend() != nil else { return }
        let dir = try FaultyKernels.fusedNet()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["infer", "--device", "opencl:0", "--json"], environment: ["SCRATCHNET_KERNELS": dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(lines(r.stderr).count == 1, "stderr: \(r.stderr)")
        #expect(r.stderr.hasPrefix("note: ") && r.stderr.contains("sn_net") && r.stderr.contains("layer by layer"), "\(r.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(report["device"] as? String == "opencl:0")
        #expect(report["accuracy"] as? Double == 0.9352)
    }

    @Test("a named device with a wrong sn_apply is refused in one line (exit 2); --unchecked runs it with a note")
    func namedDeviceRefused() throws {
        guard try Book.openCLBackend() != nil else { return }
        let dir = try FaultyKernels.apply()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["infer", "--device", "opencl:0"], environment: ["SCRATCHNET_KERNELS": dir.path])
        #expect(r.status == 2, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(lines(r.stderr).count == 1, "one line: \(r.stderr)")
        #expect(r.stderr.contains("opencl:0") && r.stderr.contains("sn_apply") && r.stderr.contains("--unchecked"), "\(r.stderr)")
        let unchecked = try CLI.run(["infer", "--device", "opencl:0", "--unchecked"], environment: ["SCRATCHNET_KERNELS": dir.path])
        #expect(unchecked.status == 0, "\(unchecked.stderr)")
        #expect(unchecked.stderr.contains("unchecked"), "\(unchecked.stderr)")
        #expect(unchecked.stdout.contains("accuracy"))
    }

    @Test("parity --quick checks an evenly spread sample of 500 images on every device, says so, and passes")
    func parityQuick() throws {
        guard try Book.openCLBackend() != nil else { return }
        let r = try CLI.run(["parity", "--devices", "cpu,opencl:0", "--quick", "--batch-sizes", "1,100"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("checked a sample of 500 of 10000 images"), "\(r.stdout)")
        #expect(r.stdout.contains("parity: PASS"))
        #expect(r.stdout.contains("self-check: passed"))
    }
}
