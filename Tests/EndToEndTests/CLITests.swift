// The `scratchnet` binary end to end: infer, parity, devices, device selection (flag, environment, no
// OpenCL platform), and the error policy (one line naming the problem, exit status 2).

import Foundation
import ScratchNet
import Testing

@Suite("scratchnet CLI", .serialized)
struct CLITests {
    @Test("infer on the CPU path: 0.9352")
    func inferCPU() throws {
        let report = try CLI.json(["infer", "--device", "cpu", "--json"])
        #expect(report["device"] as? String == "cpu")
        #expect(report["accuracy"] as? Double == 0.9352)
        #expect(report["images"] as? Int == 10_000)
    }

    @Test("with no ../shared, no MNIST_DIR and no SCRATCHNET_WEIGHTS, the data in the box gives 0.9352")
    func dataInTheBox() throws {
        // A current directory whose ../shared does not exist, and the variables CI sets taken away.
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-box-\(UUID().uuidString)")
        let cwd = root.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: cwd, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let unset = ["MNIST_DIR", "SCRATCHNET_WEIGHTS", "SCRATCHNET_DATA"]
        let r = try CLI.run(["infer", "--device", "cpu"], removing: unset, directory: cwd)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("accuracy:   0.9352") || r.stdout.contains("accuracy: 0.9352"), "\(r.stdout)")
        let p = try CLI.run(["parity", "--quick"], removing: unset, directory: cwd)
        #expect(p.status == 0 && p.stdout.contains("PASS"), "\(p.stdout)\n\(p.stderr)")
    }

    @Test("infer on OpenCL: 0.9352")
    func inferOpenCL() throws {
        guard try Book.openCLBackend() != nil else { return }
        let report = try CLI.json(["infer", "--device", "opencl", "--batch-size", "37", "--json"])
        #expect((report["device"] as? String)?.hasPrefix("opencl:") == true)
        #expect(report["accuracy"] as? Double == 0.9352)
    }

    @Test("parity: bitwise identical, exit 0")
    func parity() throws {
        let r = try CLI.run(["parity", "--batch-sizes", "100,37", "--limit", "2000"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("parity: PASS"))
        if try Book.openCLBackend() != nil { #expect(r.stdout.contains("opencl:0")) }
    }

    @Test("parity catches kernels whose exp differs from the CPU path's, names the layer, exits 1")
    func parityDetectsDivergence() throws {
        guard try Book.openCLBackend() != nil else { return }
        // A copy of Kernels/ whose exp polynomial has one coefficient off by an ulp (shared by every kernel's
        // scalar and float8 exp: sigmoid and softmax both change).
        let kernels = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Kernels")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-bad-kernels-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for file in try FileManager.default.contentsOfDirectory(atPath: kernels.path) where file.hasSuffix(".cl") {
            var text = try String(contentsOf: kernels.appendingPathComponent(file), encoding: .utf8)
            if file == "sn_math.cl" {
                let original = "#define SN_P4         0x1.555554p-3f"
                #expect(text.contains(original))
                text = text.replacingOccurrences(of: original, with: "#define SN_P4         0x1.555556p-3f")
            }
            try text.write(to: dir.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        let r = try CLI.run(
            ["parity", "--devices", "cpu,opencl:0", "--batch-sizes", "100", "--limit", "500"],
            environment: ["SCRATCHNET_KERNELS": dir.path])
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("parity: FAIL"))
        let layers = ["Affine", "Sigmoid", "Softmax"]
        #expect(
            r.stdout.split(separator: "\n").contains { $0.hasPrefix("opencl:0") && layers.contains(where: $0.contains) },
            "names the first divergent layer: \(r.stdout)")
    }

    @Test("SCRATCHNET_DEVICE picks the device; --device wins")
    func deviceEnvironment() throws {
        guard try Book.openCLBackend() != nil else { return }
        let env = try CLI.json(["infer", "--json"], environment: ["SCRATCHNET_DEVICE": "opencl:0"])
        #expect(env["device"] as? String == "opencl:0")
        let flag = try CLI.json(["infer", "--json", "--device", "cpu"], environment: ["SCRATCHNET_DEVICE": "opencl:0"])
        #expect(flag["device"] as? String == "cpu")
    }

    @Test("no OpenCL platform: devices lists the CPU path, auto falls back with a reason, gpu fails clearly")
    func noPlatform() throws {
        let env = ["OCL_ICD_VENDORS": try emptyVendorsFolder()]
        let devices = try CLI.run(["devices"], environment: env)
        #expect(devices.status == 0)
        #expect(devices.stdout.contains("pocl-opencl-icd"))
        #expect(devices.stdout.contains("cpu"))
        #expect(devices.stdout.contains("auto picks: cpu"))

        let auto = try CLI.run(["infer", "--json", "--device", "auto"], environment: env)
        #expect(auto.status == 0)
        #expect(auto.stdout.contains("\"device\" : \"cpu\""))
        #expect(auto.stderr.split(separator: "\n").count == 1, "one line on stderr says why: \(auto.stderr)")

        let gpu = try CLI.run(["infer", "--device", "gpu"], environment: env)
        #expect(gpu.status == 2)
        #expect(gpu.stderr.lowercased().contains("gpu"))
        #expect(gpu.stdout.isEmpty)
    }

    @Test("pocl with an unwritable kernel cache: the no-device error names the folder and POCL_CACHE_DIR")
    func poclUnwritableCache() throws {
        guard try Book.openCLBackend() != nil else { return }
        // Only pocl's ICD, so no other platform supplies a device; /dev/null/kcache can never be created.
        let vendors = try emptyVendorsFolder()
        try FileManager.default.copyItem(atPath: "/etc/OpenCL/vendors/pocl.icd", toPath: vendors + "/pocl.icd")
        let r = try CLI.run(
            ["infer", "--device", "opencl"], environment: ["OCL_ICD_VENDORS": vendors, "POCL_CACHE_DIR": "/dev/null/kcache"])
        #expect(r.status == 2, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.contains("/dev/null/kcache cannot be written"), "\(r.stderr)")
        #expect(r.stderr.contains("set POCL_CACHE_DIR to a writable folder"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
    }

    @Test("devices: lists pocl with its parity capability and a passing self-check")
    func devices() throws {
        guard try Book.openCLBackend() != nil else { return }
        let r = try CLI.run(["devices"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("opencl:0"))
        #expect(r.stdout.contains("verdict: passed"))
        #expect(r.stdout.contains("ops passed, fused passed, training passed"))
        #expect(r.stdout.contains("auto picks:"))
    }

    @Test("bad flags and files: one line on stderr naming the problem, exit 2", arguments: [
        (["infer", "--batch-size", "0"], "--batch-size"),
        (["infer", "--device", "tpu"], "tpu"),
        (["infer", "--weights", "/nonexistent/w.pkl"], "/nonexistent/w.pkl"),
        (["infer", "--data", "/nonexistent/mnist"], "/nonexistent/mnist"),
        (["infer", "--weights", "Package.swift"], "Package.swift"),
        (["infer", "--no-such-flag"], "--no-such-flag"),
        (["parity", "--batch-sizes", "1,x"], "--batch-sizes"),
        (["infer", "--activation", "tanh"], "tanh"),
    ])
    func badInput(arguments: [String], mention: String) throws {
        let r = try CLI.run(arguments)
        #expect(r.status == 2, "\(arguments): \(r.stderr)")
        #expect(r.stderr.contains(mention), "\(arguments): \(r.stderr)")
        #expect(r.stderr.hasPrefix("error:"), "\(arguments): \(r.stderr)")
        #expect(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
    }

    @Test("download fails quickly and clearly when the mirror cannot be reached")
    func downloadOffline() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-dl-\(UUID().uuidString)")
        let start = Date()
        let r = try CLI.run(["download", "--dir", dir.path], environment: ["SCRATCHNET_MIRROR": "http://127.0.0.1:9/"])
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("error:"))
        #expect(Date().timeIntervalSince(start) < 60)
        // Every file's reason, on the one error line, and no empty folders left behind.
        let error = try #require(r.stderr.split(separator: "\n").last { $0.hasPrefix("error:") })
        for name in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                     "t10k-labels-idx1-ubyte.gz", "sample_weight.pkl"] {
            #expect(error.contains(name), "\(name) missing from: \(error)")
        }
        #expect(error.contains("5 of 5 files could not be fetched"))
        #expect(!FileManager.default.fileExists(atPath: dir.path), "download left \(dir.path) behind")
    }

    @Test("--help exits 0")
    func help() throws {
        let r = try CLI.run(["--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("parity"))
    }
}
