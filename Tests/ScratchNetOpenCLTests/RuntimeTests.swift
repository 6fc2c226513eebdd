// The runtime around the kernels: error naming, device enumeration and parity flags, kernel folders (good,
// broken, incomplete), memory (empty matrices, write/download, size limits), shape and foreign-buffer errors.

import Foundation
import ScratchNet
import ScratchNetOpenCL
import Testing

@Test func checkNamesTheCodeAndTheCall() throws {
    #expect(throws: Never.self) { try check(0, "clFinish") }
    do {
        try check(-5, "clEnqueueNDRangeKernel")
        Issue.record("check(-5) did not throw")
    } catch {
        #expect(error.code == -5)
        #expect("\(error)" == "CL_OUT_OF_RESOURCES (-5) in clEnqueueNDRangeKernel")
    }
    #expect(OpenCLError.name(of: -1001) == "CL_PLATFORM_NOT_FOUND_KHR")
    #expect(OpenCLError.name(of: -11) == "CL_BUILD_PROGRAM_FAILURE")
    #expect(OpenCLError.name(of: -72) == "CL_MAX_SIZE_RESTRICTION_EXCEEDED")
    #expect("\(OpenCLError(code: -4242, call: "clFoo"))" == "unknown OpenCL error (-4242) in clFoo")
}

@Test func everyStandardCodeHasAName() {
    let codes = Array(Int32(-19)...Int32(-1)) + Array(Int32(-72)...Int32(-30)) + [-1000, -1001]
    for code in codes {
        let name = OpenCLError.name(of: code)
        #expect(name.hasPrefix("CL_"), "code \(code) has no name")
    }
    #expect(Set(codes.map { OpenCLError.name(of: $0) }).count == codes.count, "names must be distinct")
}

@Test func buildErrorCarriesFileAndLog() {
    let e = OpenCLError(code: -11, call: "clBuildProgram", file: "gemm.cl", buildLog: "gemm.cl:3:1: error: boom\n")
    #expect("\(e)" == "CL_BUILD_PROGRAM_FAILURE (-11) in clBuildProgram while building kernel file gemm.cl\nbuild log:\ngemm.cl:3:1: error: boom")
}

@Test func enumerationFindsDevicesOrSaysWhy() {
    let e = OpenCLDevices.enumerate()
    if e.devices.isEmpty {
        #expect(e.reason != nil)
        #expect(TestDevice.allowMissing, "no OpenCL device: \(e.reason ?? "?") (set SCRATCHNET_ALLOW_NO_OPENCL=1 to allow)")
        return
    }
    #expect(e.reason == nil)
    for (i, d) in e.devices.enumerated() {
        #expect(d.index == i)
        #expect(d.id == "opencl:\(i)")
        #expect(!d.name.isEmpty && !d.platformName.isEmpty)
        #expect(["GPU", "CPU", "accelerator", "custom", "unknown"].contains(d.type))
        #expect(d.computeUnits > 0 && d.globalMemoryBytes > 0 && d.maxAllocationBytes > 0)
        #expect(d.openCLCVersion.hasPrefix("OpenCL C"))
        #expect(d.deviceVersion.hasPrefix("OpenCL"))
        // The parity flag is exactly the fma + correctly rounded division + denormals rule.
        let needed = ["fma", "correctly rounded divide/sqrt", "denormals"]
        #expect(d.parity.isGuaranteed == needed.allSatisfy(d.floatCapabilities.contains))
    }
    #expect(e.summary.contains(e.devices[0].name))
}

@Test func parityNeedsFmaCorrectDivisionAndDenormals() {
    let all: UInt64 = 1 | 2 | 4 | 32 | 128  // denorm, inf/nan, nearest, fma, correctly rounded div/sqrt
    #expect(OpenCLDevices.parity(singleFPConfig: all) == .guaranteed)
    guard case .notGuaranteed(let noFMA) = OpenCLDevices.parity(singleFPConfig: all & ~32) else {
        Issue.record("missing FMA must not promise parity"); return
    }
    #expect(noFMA.count == 1 && noFMA[0].contains("CL_FP_FMA"))
    guard case .notGuaranteed(let bare) = OpenCLDevices.parity(singleFPConfig: 2 | 4) else {
        Issue.record("a bare device must not promise parity"); return
    }
    #expect(bare.count == 3)
    #expect(OpenCLDevices.floatCapabilities(all) == ["denormals", "inf/nan", "round to nearest", "fma", "correctly rounded divide/sqrt"])
}

@Test func backendDescribesItsDevice() {
    guard let be = TestDevice.backend() else { return }
    #expect(be.device.id == "opencl:0")
    #expect(be.device.name == be.info.name)
    #expect(be.device.parity == be.info.parity)
    #expect(be.kernelOrigin == "embedded" || ProcessInfo.processInfo.environment["SCRATCHNET_KERNELS"] != nil)
}

/// A fresh folder holding the embedded kernel files, with `overrides` replacing or (nil) removing files.
func kernelFolder(_ overrides: [String: String?]) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-kernels-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    for name in [KernelSources.mathFile] + KernelSources.kernelFiles {
        let text: String?
        if let override = overrides[name] { text = override } else { text = KernelSources.embeddedText(name) }
        guard let text else { continue }
        try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }
    return dir
}

@Test func kernelsBuildFromAFolder() throws {
    guard TestDevice.backend() != nil else { return }
    let dir = try kernelFolder([:])
    defer { try? FileManager.default.removeItem(at: dir) }
    let be = try OpenCLBackend(deviceIndex: 0, kernelDirectory: dir)
    #expect(be.kernelOrigin == dir.path)
    var rng = TestRandom(seed: 11)
    let a = rng.tensor(5, 6), b = rng.tensor(6, 19)
    let c = try be.makeMatrix(rows: 5, cols: 19)
    try be.matmul(try be.upload(a), try be.upload(b), into: c)
    expectBitwise(try be.download(c), try Reference.matmul(a, b), "matmul from folder kernels")
}

@Test func brokenKernelReportsFileNameAndBuildLog() throws {
    guard TestDevice.backend() != nil else { return }
    let broken = "__kernel void sn_apply(int n) { this_is_not_declared_anywhere = n; }\n"
    let dir = try kernelFolder(["activation.cl": broken])
    defer { try? FileManager.default.removeItem(at: dir) }
    do {
        _ = try OpenCLBackend(deviceIndex: 0, kernelDirectory: dir)
        Issue.record("a broken kernel file built")
    } catch let error as OpenCLError {
        #expect(error.code == -11)
        #expect(error.call == "clBuildProgram")
        #expect(error.file == dir.appendingPathComponent("activation.cl").path)
        #expect(error.buildLog?.contains("this_is_not_declared_anywhere") == true)
        #expect("\(error)".contains("activation.cl"))
        #expect("\(error)".contains("CL_BUILD_PROGRAM_FAILURE"))
    }
}

@Test func missingKernelFileIsNamed() throws {
    guard TestDevice.backend() != nil else { return }
    let dir = try kernelFolder(["softmax.cl": String?.none])
    defer { try? FileManager.default.removeItem(at: dir) }
    do {
        _ = try OpenCLBackend(deviceIndex: 0, kernelDirectory: dir)
        Issue.record("a folder without softmax.cl was accepted")
    } catch {
        #expect("\(error)".contains("softmax.cl"))
        #expect("\(error)".contains(dir.path))
    }
}

@Test func missingKernelEntryPointIsNamed() throws {
    guard TestDevice.backend() != nil else { return }
    let dir = try kernelFolder(["argmax.cl": "__kernel void something_else(int n) {}\n"])
    defer { try? FileManager.default.removeItem(at: dir) }
    do {
        _ = try OpenCLBackend(deviceIndex: 0, kernelDirectory: dir)
        Issue.record("a kernel file without sn_argmax_rows was accepted")
    } catch let error as OpenCLError {
        #expect(error.code == -46)  // CL_INVALID_KERNEL_NAME
        #expect("\(error)".contains("sn_argmax_rows"))
    }
}

@Test func buildOptionsNeverRelaxMath() {
    let o = KernelSources.buildOptions(correctlyRoundedDivide: true, defines: [("SN_TM", 6), ("SN_TN", 16)])
    #expect(o == "-cl-fp32-correctly-rounded-divide-sqrt -D SN_TM=6 -D SN_TN=16")
    #expect(!o.contains("fast") && !o.contains("mad") && !o.contains("unsafe"))
}

@Test func kernelFolderComesFromArgumentThenEnvironment() {
    #expect(KernelSources(kernelDirectory: nil, environment: [:]).origin == "embedded")
    #expect(KernelSources(kernelDirectory: nil, environment: ["SCRATCHNET_KERNELS": ""]).origin == "embedded")
    #expect(KernelSources(kernelDirectory: nil, environment: ["SCRATCHNET_KERNELS": "/tmp/k"]).origin == "/tmp/k")
    let arg = URL(fileURLWithPath: "/opt/k")
    #expect(KernelSources(kernelDirectory: arg, environment: ["SCRATCHNET_KERNELS": "/tmp/k"]).origin == "/opt/k")
    // Every embedded file opens with its purpose and keeps contraction off.
    for name in KernelSources.kernelFiles {
        let text = KernelSources.embeddedText(name) ?? ""
        #expect(text.hasPrefix("// \(name) — "), "\(name) must open with its purpose")
    }
}

@Test func emptyMatricesNeedNoBuffer() throws {
    guard let be = TestDevice.backend() else { return }
    for (r, c) in [(0, 0), (0, 5), (5, 0)] {
        let m = try be.makeMatrix(rows: r, cols: c)
        let t = try be.download(m)
        #expect(t.shape == [r, c] && t.scalars.isEmpty)
        let u = try be.upload(Tensor(zeros: [r, c]))
        #expect(try be.download(u).shape == [r, c])
    }
    #expect(try be.argmaxRows(try be.makeMatrix(rows: 0, cols: 3)) == [])
    #expect(try be.argmaxRows(try be.makeMatrix(rows: 3, cols: 0)) == [0, 0, 0])
}

@Test func writeAndDownloadRoundTrip() throws {
    guard let be = TestDevice.backend() else { return }
    let values: [Float] = [1, -0.0, .nan, .infinity, -.infinity, 0x1p-149, 3, 4, 5, 6]
    let m = try be.makeMatrix(rows: 2, cols: 5)
    try values.withUnsafeBufferPointer { try be.write($0, to: m) }
    let t = try be.download(m)
    #expect(t.shape == [2, 5])
    #expect(t.scalars.map(\.bitPattern) == values.map(\.bitPattern))
    let bias = try be.upload(Tensor(shape: [3], scalars: [1, 2, 3]))  // rank 1 -> 1×3
    #expect(bias.rows == 1 && bias.cols == 3)
    #expect(throws: BackendError.self) {
        try [Float](repeating: 0, count: 3).withUnsafeBufferPointer { try be.write($0, to: m) }
    }
    #expect(throws: BackendError.self) { try be.upload(Tensor(zeros: [2, 2, 2])) }
}

@Test func tooLargeAndNegativeShapesAreRejected() {
    guard let be = TestDevice.backend() else { return }
    #expect(throws: BackendError.self) { try be.makeMatrix(rows: -1, cols: 3) }
    #expect(throws: BackendError.self) { try be.makeMatrix(rows: 1 << 16, cols: 1 << 16) }  // > 2^31-1 values
    #expect(throws: BackendError.self) { try be.makeMatrix(rows: Int.max, cols: 2) }
}

@Test func shapeMismatchesAreReported() throws {
    guard let be = TestDevice.backend() else { return }
    let a = try be.makeMatrix(rows: 3, cols: 4), b = try be.makeMatrix(rows: 5, cols: 2)
    let c = try be.makeMatrix(rows: 3, cols: 2), bias = try be.makeMatrix(rows: 1, cols: 3)
    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }
    #expect(message { try be.matmul(a, b, into: c) } == "shape mismatch: matmul: a (3,4) · b (5,2) -> c (3,2)")
    let w = try be.makeMatrix(rows: 4, cols: 2)
    #expect(message { try be.affine(a, w, bias: bias, activation: .relu, into: c) }.contains("bias (1,3)"))
    #expect(message { try be.apply(.sigmoid, a, into: c) }.contains("apply"))
    #expect(message { try be.softmaxRows(a, into: c) }.contains("softmaxRows"))
}

@Test func foreignBuffersAreRejected() throws {
    guard let be = TestDevice.backend() else { return }
    let cpu = CPUBackend(threads: 1)
    let mine = try be.makeMatrix(rows: 2, cols: 2)
    let theirs = try cpu.makeMatrix(rows: 2, cols: 2)
    func isForeign(_ body: () throws -> Void) -> Bool {
        do { try body() } catch BackendError.foreignBuffer { return true } catch { return false }
        return false
    }
    #expect(isForeign { try be.matmul(theirs, mine, into: mine) })
    #expect(isForeign { try be.matmul(mine, mine, into: theirs) })
    #expect(isForeign { _ = try be.download(theirs) })
    #expect(isForeign { try be.apply(.relu, theirs, into: mine) })
    #expect(isForeign { _ = try be.argmaxRows(theirs) })
    // A second OpenCL backend has its own context: its buffers are foreign here too.
    let other = try OpenCLBackend(deviceIndex: 0)
    let otherMatrix = try other.makeMatrix(rows: 2, cols: 2)
    #expect(isForeign { try be.softmaxRows(otherMatrix, into: mine) })
    #expect(isForeign { try cpu.apply(.relu, mine, into: theirs) })  // and the CPU path refuses ours
}
