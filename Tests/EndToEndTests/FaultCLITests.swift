// The `scratchnet` binary under injected OpenCL faults (SCRATCHNET_FAULT, see FaultInjection.swift): a kernel
// build failure is one error line (exit 2) with `--device opencl` and one note line plus a CPU run with
// `--device auto`; an allocation failure on a large batch is split and gives the same predictions (the same
// error-grid PNG bytes); a failed launch or read in the middle of the run is one error line, exit 2, nothing
// on stdout and no output file.

import Foundation
import ScratchNet
import Testing

@Suite("scratchnet CLI under OpenCL faults", .serialized)
struct FaultCLITests {
    /// A fresh temporary folder, removed by the caller.
    func scratchFolder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-fault-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The non-empty lines of `text`, without the line pocl's compiler itself prints to stderr on a failed
    /// build ("1 error generated."), which is not ScratchNet's output.
    func lines(_ text: String) -> [Substring] {
        text.split(separator: "\n").filter { !($0.hasSuffix(" generated.") && $0.first?.isNumber == true) }
    }

    @Test("build failure with --device opencl: one line naming the code, file and build log; exit 2")
    func buildFailureExplicit() throws {
        guard try Book.openCLBackend() != nil else { return }
        let r = try CLI.run(
            ["infer", "--device", "opencl"], environment: ["SCRATCHNET_FAULT": "build", "SCRATCHNET_NO_CACHE": "1"])
        #expect(r.status == 2)
        #expect(r.stdout.isEmpty)
        #expect(lines(r.stderr).count == 1, "stderr: \(r.stderr)")
        #expect(lines(r.stderr).first?.hasPrefix("error: CL_BUILD_PROGRAM_FAILURE (-11) in clBuildProgram while building kernel file gemm.cl; build log: ") == true)
        #expect(r.stderr.contains("injected build failure"))
    }

    @Test("build failure with --device auto (a GPU faked): one note line, then the CPU path scores 0.9352")
    func buildFailureAuto() throws {
        guard try Book.openCLBackend() != nil else { return }
        let r = try CLI.run(
            ["infer", "--device", "auto", "--json"],
            environment: ["SCRATCHNET_FAULT": "fake-gpu,build", "SCRATCHNET_NO_CACHE": "1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(lines(r.stderr).count == 1, "stderr: \(r.stderr)")
        #expect(lines(r.stderr).first?.hasPrefix("note: OpenCL GPU opencl:0 ") == true)
        #expect(r.stderr.contains("failed to start: CL_BUILD_PROGRAM_FAILURE (-11)"))
        #expect(r.stderr.contains("using the pure-Swift CPU path"))
        let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(report["device"] as? String == "cpu")
        #expect(report["accuracy"] as? Double == 0.9352)
        // Control: with the GPU faked and no fault, auto really runs on OpenCL (so the fallback above was
        // the build failure's doing).
        let healthy = try CLI.json(["infer", "--device", "auto", "--json", "--batch-size", "1000"], environment: ["SCRATCHNET_FAULT": "fake-gpu"])
        #expect((healthy["device"] as? String)?.hasPrefix("opencl:") == true)
    }

    @Test("allocation failure on a 10000-image batch: split and retried; the same predictions, byte for byte")
    func allocationSplit() throws {
        guard try Book.openCLBackend() != nil else { return }
        let dir = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let clean = dir.appendingPathComponent("clean.png").path
        let split = dir.appendingPathComponent("split.png").path
        let want = try CLI.json(["infer", "--device", "opencl", "--batch-size", "10000", "--json", "--errors", clean])
        // (10000,784) floats are 31 MB: every buffer of 20 MB or more fails, so batches become 5000 rows.
        let got = try CLI.json(
            ["infer", "--device", "opencl", "--batch-size", "10000", "--json", "--errors", split],
            environment: ["SCRATCHNET_FAULT": "alloc>=20000000"])
        #expect(got["accuracy"] as? Double == 0.9352)
        #expect(got["correct"] as? Int == want["correct"] as? Int)
        #expect(try Data(contentsOf: URL(fileURLWithPath: split)) == Data(contentsOf: URL(fileURLWithPath: clean)))
    }

    @Test("allocation failure for every buffer: one line, exit 2")
    func allocationEverywhere() throws {
        guard try Book.openCLBackend() != nil else { return }
        let r = try CLI.run(["infer", "--device", "opencl"], environment: ["SCRATCHNET_FAULT": "alloc"])
        #expect(r.status == 2)
        #expect(lines(r.stderr).count == 1, "stderr: \(r.stderr)")
        #expect(r.stderr.hasPrefix("error: CL_MEM_OBJECT_ALLOCATION_FAILURE (-4) in clCreateBuffer"))
    }

    @Test("a failed launch or read in the middle of the run: one line, exit 2, no output, no file")
    func midRunFailure() throws {
        guard try Book.openCLBackend() != nil else { return }
        let dir = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        // batch 100: 100 batches, one sn_net launch and one read each (plus 6 weight packs first).
        for (fault, call) in [("enqueue:50", "clEnqueueNDRangeKernel(sn_net)"), ("read:50", "clEnqueueReadBuffer")] {
            let png = dir.appendingPathComponent("errors.png")
            for json in [false, true] {
                let r = try CLI.run(
                    ["infer", "--device", "opencl", "--errors", png.path] + (json ? ["--json"] : []),
                    environment: ["SCRATCHNET_FAULT": fault])
                #expect(r.status == 2, "\(fault): \(r.stdout) \(r.stderr)")
                #expect(r.stdout.isEmpty, "\(fault): \(r.stdout)")
                #expect(lines(r.stderr) == ["error: CL_OUT_OF_RESOURCES (-5) in \(call)"], "\(fault): \(r.stderr)")
                #expect(!FileManager.default.fileExists(atPath: png.path), "\(fault) left \(png.path)")
            }
        }
    }

    @Test("a mistyped SCRATCHNET_FAULT is one line naming the variable, exit 2; the CPU path ignores it")
    func badVariable() throws {
        guard try Book.openCLBackend() != nil else { return }
        let r = try CLI.run(["infer", "--device", "opencl"], environment: ["SCRATCHNET_FAULT": "allocate"])
        #expect(r.status == 2)
        #expect(lines(r.stderr).count == 1 && r.stderr.hasPrefix("error: SCRATCHNET_FAULT='allocate': cannot read 'allocate'"))
        let cpu = try CLI.json(["infer", "--device", "cpu", "--json"], environment: ["SCRATCHNET_FAULT": "allocate"])
        #expect(cpu["accuracy"] as? Double == 0.9352)
    }
}
