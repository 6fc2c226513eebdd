// Injected OpenCL faults (FaultInjection.swift) run the real error paths on a healthy device: an allocation
// failure on a large batch is split and retried with bitwise-identical results (and fails clearly when even
// one row does not fit); a kernel build failure carries the compiler's build log; a rejected cached binary
// is rebuilt from source; a failed launch or read in the middle of a run throws (no partial results) and
// leaves the backend usable. Every failure leaves no OpenCL object alive.

import COpenCL
import Foundation
import ScratchNet
import ScratchNetOpenCL
import Testing

/// A backend on device 0 with `rules` injected (and its own program cache folder, or none).
private func faultyBackend(_ rules: String, cache: URL? = nil) throws -> (OpenCLBackend, FaultInjector) {
    let injector = FaultInjector(try FaultRules(parsing: rules))
    return (try faultyBackend(injector, cache: cache), injector)
}

private func faultyBackend(_ injector: FaultInjector, cache: URL? = nil) throws -> OpenCLBackend {
    let options = ProgramCacheOptions(directory: cache ?? freshCacheFolder(), enabled: cache != nil)
    return try OpenCLBackend(deviceIndex: 0, cache: options, faults: injector)
}

/// A random `inputs`-`hidden`-10 sigmoid network's weights and `rows` random byte images.
private func smallProblem(rows: Int, seed: UInt64, inputs: Int = 784, hidden: Int = 50) -> ([String: Tensor], [UInt8]) {
    var rng = TestRandom(seed: seed)
    let weights = [
        "W1": rng.tensor(inputs, hidden, scale: 0.1),
        "b1": (try? rng.tensor(1, hidden).reshaped([hidden])) ?? Tensor(zeros: [hidden]),
        "W2": rng.tensor(hidden, 10), "b2": (try? rng.tensor(1, 10).reshaped([10])) ?? Tensor(zeros: [10]),
    ]
    let images = (0..<(rows * inputs)).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 56) }
    return (weights, images)
}

@Suite("OpenCL fault injection", .serialized)
struct FaultInjectionTests {
    @Test("SCRATCHNET_FAULT rules parse; mistakes name the variable and the syntax")
    func parsing() throws {
        let r = try FaultRules(parsing: "alloc:2, build,enqueue:7,read,binary:1,alloc>=4096,fake-gpu")
        #expect(r.fakeGPU)
        #expect(r.rules == [
            .init(site: .alloc, nth: 2), .init(site: .build), .init(site: .enqueue, nth: 7), .init(site: .read),
            .init(site: .binary, nth: 1), .init(site: .alloc, minBytes: 4096),
        ])
        for bad in ["allocate", "alloc:0", "alloc:x", "read:1:2", "alloc>=", "alloc>=-5", "build>=3"] {
            #expect(throws: BackendError.self, "\(bad)") { try FaultRules(parsing: bad) }
            do {
                _ = try FaultRules(parsing: bad)
            } catch {
                #expect("\(error)".contains("SCRATCHNET_FAULT") && "\(error)".contains("alloc, build, enqueue"))
                #expect(!"\(error)".contains("\n"))
            }
        }
        #expect(try FaultRules(parsing: "").rules.isEmpty)
    }

    @Test("inert unless set: the default backend has no injector and this process has no SCRATCHNET_FAULT")
    func inertByDefault() throws {
        guard let shared = TestDevice.backend() else { return }
        #expect(ProcessInfo.processInfo.environment[FaultRules.variable] == nil)
        #expect(try FaultRules.fromEnvironment() == nil)
        #expect(shared.faults == nil)
    }

    @Test("nth-call rules fail exactly that call; alloc>=B only large allocations")
    func counting() throws {
        let injector = FaultInjector(try FaultRules(parsing: "enqueue:3,alloc>=100"))
        #expect((1...5).map { _ in injector.shouldFail(.enqueue) } == [false, false, true, false, false])
        #expect(injector.shouldFail(.alloc, bytes: 99) == false)
        #expect(injector.shouldFail(.alloc, bytes: 100) == true)
        #expect(injector.shouldFail(.read) == false)
        #expect(injector.callCount(.enqueue) == 5 && injector.failureCount(.enqueue) == 1)
        #expect(injector.failureCount(.alloc) == 1)
    }

    // MARK: Allocation

    @Test("allocation failure on a large batch: split and retried, bitwise equal to the unsplit run")
    func allocationSplit() throws {
        guard let healthy = TestDevice.backend() else { return }
        let rows = 3000
        let (weights, images) = smallProblem(rows: rows, seed: 51)
        let want = try Network(weights: weights, backend: healthy).infer(bytes: images, count: rows, batchSize: rows)
        let wantCPU = try Network(weights: weights, backend: CPUBackend()).infer(bytes: images, count: rows, batchSize: rows)
        #expect(Comparison(want.probabilities, wantCPU.probabilities).isBitwiseEqual)
        // (3000,784) floats are 9.4 MB: buffers of 4 MB and more fail, so 3000 -> 1500 -> 750 rows.
        let injector = FaultInjector(try FaultRules(parsing: "alloc>=4000000"))
        do {
            let backend = try faultyBackend(injector)
            let network = try Network(weights: weights, backend: backend)
            let got = try network.infer(bytes: images, count: rows, batchSize: rows)
            #expect(injector.failureCount(.alloc) >= 2, "the large batch never failed: the split path did not run")
            let cmp = Comparison(got.probabilities, want.probabilities)
            #expect(cmp.isBitwiseEqual, "split inference differs: \(cmp)")
            #expect(got.predictions == want.predictions)
            let before = injector.failureCount(.alloc)
            let predictions = try network.classify(bytes: images, count: rows, batchSize: rows)
            #expect(predictions == want.predictions)
            #expect(injector.failureCount(.alloc) > before)
            // infer(count:batchSize:batch:) (host floats) splits the same way.
            let floats = try network.infer(count: rows, batchSize: 2048) { range in
                try Tensor(shape: [range.count, 784], scalars: images[(range.lowerBound * 784)..<(range.upperBound * 784)].map { Float($0) / 255 })
            }
            #expect(Comparison(floats.probabilities, want.probabilities).isBitwiseEqual)
        }
        #expect(injector.liveObjects.isEmpty, "leaked: \(injector.liveObjects)")
    }

    @Test("allocation failure even for one row: a clear error after halving down to 1 row")
    func allocationExhausted() throws {
        guard TestDevice.backend() != nil else { return }
        // Every weight buffer of this 8-5-10 network is far below 4 KiB, while the prediction index buffer
        // is 4 KiB (rounded up): it never fits, however small the batch.
        let (weights, images) = smallProblem(rows: 64, seed: 52, inputs: 8, hidden: 5)
        let (backend, injector) = try faultyBackend("alloc>=4096")
        let network = try Network(weights: weights, backend: backend)
        do {
            _ = try network.classify(bytes: images, count: 64, batchSize: 64)
            Issue.record("classify succeeded although every index buffer allocation fails")
        } catch {
            let text = "\(error)"
            #expect(text.contains("out of device memory"), "\(text)")
            #expect(text.contains("batches of 64 rows down to 1 row"), "\(text)")
            #expect(text.contains("CL_MEM_OBJECT_ALLOCATION_FAILURE (-4) in clCreateBuffer"), "\(text)")
            #expect(!text.contains("\n"))
        }
        // 64 -> 32 -> 16 -> 8 -> 4 -> 2 -> 1: seven attempts.
        #expect(injector.failureCount(.alloc) == 7)
    }

    @Test("alloc:N fails the N-th allocation (backend setup: its first) and leaks nothing")
    func allocationDuringSetup() throws {
        guard TestDevice.backend() != nil else { return }
        let injector = FaultInjector(try FaultRules(parsing: "alloc:1"))
        do {
            _ = try OpenCLBackend(
                deviceIndex: 0, cache: ProgramCacheOptions(directory: freshCacheFolder(), enabled: false), faults: injector)
            Issue.record("the backend started although its first allocation failed")
        } catch let error as OpenCLError {
            #expect(error.code == CL_MEM_OBJECT_ALLOCATION_FAILURE && error.call == "clCreateBuffer")
            #expect(error.isOutOfDeviceMemory)
        }
        #expect(injector.callCount(.alloc) == 1)
        #expect(injector.liveObjects.isEmpty, "leaked: \(injector.liveObjects)")
    }

    @Test("an allocation failure frees the network's cached workspaces before the smaller retry")
    func allocationFailureFreesCachedWorkspaces() throws {
        guard TestDevice.backend() != nil else { return }
        let rows = 3000
        let (weights, images) = smallProblem(rows: rows, seed: 55)
        // Buffers of 4 MB and more fail: 500 and 750 rows (1.6 and 2.4 MB of floats) fit, 1500 and 3000 do not.
        let (backend, injector) = try faultyBackend("alloc>=4000000")
        let network = try Network(weights: weights, backend: backend)
        // Batches of 500 leave one cached 500-row workspace (and the packed weights).
        let first = try network.classify(bytes: images, count: rows, batchSize: 500)
        let holding = injector.liveObjects["buffer", default: 0]
        // One batch of 3000 fails, then 1500: the cache must be emptied before retrying, so afterwards only the
        // 750-row workspace is held (the same number of buffers as the 500-row one), not both.
        let failuresBefore = injector.failureCount(.alloc)
        #expect(try network.classify(bytes: images, count: rows, batchSize: rows) == first)
        #expect(injector.failureCount(.alloc) > failuresBefore, "the 3000-row batch never failed")
        #expect(injector.liveObjects["buffer", default: 0] == holding,
                "buffers held: \(holding) before the split, \(injector.liveObjects["buffer", default: 0]) after")
    }

    // MARK: Build

    @Test("build failure: CL_BUILD_PROGRAM_FAILURE with the compiler's build log; nothing leaks")
    func buildFailure() throws {
        guard TestDevice.backend() != nil else { return }
        for (rules, file) in [("build", "gemm.cl"), ("build:3", "softmax.cl")] {
            let injector = FaultInjector(try FaultRules(parsing: rules))
            do {
                _ = try OpenCLBackend(
                    deviceIndex: 0, cache: ProgramCacheOptions(directory: freshCacheFolder(), enabled: false),
                    faults: injector)
                Issue.record("\(rules): the backend started although a build failed")
            } catch let error as OpenCLError {
                #expect(error.code == CL_BUILD_PROGRAM_FAILURE && error.call == "clBuildProgram")
                #expect(error.file == file)
                let log = try #require(error.buildLog)
                #expect(log.contains("injected build failure"), "build log: \(log)")
                #expect("\(error)".contains("build log:"))
                #expect(error.summary.contains("while building kernel file \(file); build log: "))
                #expect(error.summary.contains("injected build failure") && !error.summary.contains("\n"))
                #expect(!error.isOutOfDeviceMemory)
            }
            #expect(injector.liveObjects.isEmpty, "\(rules) leaked: \(injector.liveObjects)")
        }
    }

    @Test("a build fault bypasses a warm binary cache (the compiler must run)")
    func buildFaultBypassesCache() throws {
        guard TestDevice.backend() != nil else { return }
        let dir = freshCacheFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try OpenCLBackend(deviceIndex: 0, cache: ProgramCacheOptions(directory: dir))
        let injector = FaultInjector(try FaultRules(parsing: "build"))
        #expect(throws: OpenCLError.self) {
            try OpenCLBackend(deviceIndex: 0, cache: ProgramCacheOptions(directory: dir), faults: injector)
        }
        #expect(injector.callCount(.build) == 1)
    }

    // MARK: Cached binaries

    @Test("a rejected cached binary is rebuilt from source and replaced")
    func rejectedBinary() throws {
        guard TestDevice.backend() != nil else { return }
        let dir = freshCacheFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let options = ProgramCacheOptions(directory: dir)
        _ = try OpenCLBackend(deviceIndex: 0, cache: options)
        let count = KernelSources.kernelFiles.count

        // Backdate the cache files: a file rebuilt after its binary was rejected is written again (new date).
        let fm = FileManager.default
        let files = try fm.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".bin") }
        #expect(files.count == count)
        let old = Date(timeIntervalSince1970: 1_000_000_000)
        for f in files { try fm.setAttributes([.modificationDate: old], ofItemAtPath: dir.appendingPathComponent(f).path) }
        let (all, allFaults) = try faultyBackend("binary", cache: dir)
        #expect(allFaults.failureCount(.binary) == count)
        #expect(all.buildSource == "source", "\(all.programOrigins)")
        for f in files {
            let date = try fm.attributesOfItem(atPath: dir.appendingPathComponent(f).path)[.modificationDate] as? Date
            #expect(date.map { $0 > old } == true, "\(f) was not replaced after its binary was rejected")
        }
        let (one, oneFaults) = try faultyBackend("binary:2", cache: dir)
        #expect(oneFaults.callCount(.binary) == count && oneFaults.failureCount(.binary) == 1)
        #expect(one.buildSource == "mixed")
        #expect(one.programOrigins["activation.cl"] == "source")
        #expect(one.programOrigins.values.filter { $0 == "source" }.count == 1)
        // The rebuilt files are valid: a clean backend loads everything from the cache.
        let again = try OpenCLBackend(deviceIndex: 0, cache: options, faults: nil)
        #expect(again.buildSource == "cache")
        // Programs rebuilt after the rejection compute the right bits.
        var rng = TestRandom(seed: 53)
        let x = rng.tensor(9, 13)
        let y = try one.makeMatrix(rows: 9, cols: 13)
        try one.softmaxRows(try one.upload(x), into: y)
        expectBitwise(try one.download(y), try Reference.softmaxRows(x), "softmax after a rejected binary")
    }

    // MARK: Errors in the middle of a run

    @Test("a failed launch or read mid-run throws (classify and infer), then the backend works again")
    func midRunFailures() throws {
        guard let healthy = TestDevice.backend() else { return }
        let rows = 1000
        let (weights, images) = smallProblem(rows: rows, seed: 54)
        let want = try Network(weights: weights, backend: healthy).infer(bytes: images, count: rows, batchSize: 100)
        // Launches: 4 packs (W1, b1, W2, b2) and one sn_net on the first batch, then one per batch, so
        // enqueue:9 is batch 5 of 10. Reads: one per batch.
        for rules in ["enqueue:9", "read:5"] {
            let (backend, injector) = try faultyBackend(rules)
            let network = try Network(weights: weights, backend: backend)
            do {
                let partial = try network.classify(bytes: images, count: rows, batchSize: 100)
                Issue.record("\(rules): classify returned \(partial.count) predictions despite a failed call")
            } catch let error as OpenCLError {
                #expect(error.code == CL_OUT_OF_RESOURCES, "\(error)")
                #expect(error.call.hasPrefix(rules.hasPrefix("read") ? "clEnqueueReadBuffer" : "clEnqueueNDRangeKernel"))
                #expect(!error.isOutOfDeviceMemory)
            }
            #expect(injector.failureCount(rules.hasPrefix("read") ? .read : .enqueue) == 1)
            // The fault was one call: the same network now gives the right results.
            #expect(try network.classify(bytes: images, count: rows, batchSize: 100) == want.predictions)
            let again = try network.infer(bytes: images, count: rows, batchSize: 100)
            #expect(Comparison(again.probabilities, want.probabilities).isBitwiseEqual)
        }
        // One failed call through infer too (it reads probabilities, not predictions): an error, never a
        // partial result, and the next run is right.
        for rules in ["enqueue:9", "read:5"] {
            let (backend, injector) = try faultyBackend(rules)
            let network = try Network(weights: weights, backend: backend)
            #expect(throws: OpenCLError.self, "\(rules)") { _ = try network.infer(bytes: images, count: rows, batchSize: 100) }
            #expect(injector.failureCount(rules.hasPrefix("read") ? .read : .enqueue) == 1)
            let again = try network.infer(bytes: images, count: rows, batchSize: 100)
            #expect(Comparison(again.probabilities, want.probabilities).isBitwiseEqual)
        }
        for rules in ["enqueue", "read"] {
            let injector = FaultInjector(try FaultRules(parsing: rules))
            do {
                let network = try Network(weights: weights, backend: try faultyBackend(injector))
                #expect(throws: OpenCLError.self, "\(rules)") { try network.infer(bytes: images, count: rows, batchSize: 100) }
                let one = try Tensor(shape: [1, 784], scalars: Array(repeating: 0.5, count: 784))
                #expect(throws: OpenCLError.self, "\(rules)") { try network.predict(one) }
            }
            #expect(injector.failureCount(rules == "read" ? .read : .enqueue) >= 2)
            #expect(injector.liveObjects.isEmpty, "\(rules) leaked: \(injector.liveObjects)")
        }
    }

    // MARK: Real handles

    @Test("real OpenCL handles are released (deinit and failed builds): the context's reference count returns")
    func handlesReleased() throws {
        guard TestDevice.backend() != nil else { return }
        // The injector counts Swift wrappers; this counts the driver's own references. Every buffer, program
        // and kernel holds its context, so a handle whose release was skipped leaves the count above the start.
        var platform: cl_platform_id?
        var device: cl_device_id?
        try #require(clGetPlatformIDs(1, &platform, nil) == CL_SUCCESS)
        try #require(clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 1, &device, nil) == CL_SUCCESS)
        let injector = FaultInjector(try FaultRules(parsing: "build:2,binary"))
        let ctx = try CLContext(device: try #require(device), faults: injector)
        func references() -> cl_uint {
            var n: cl_uint = 0
            _ = clGetContextInfo(ctx.handle, cl_context_info(CL_CONTEXT_REFERENCE_COUNT), MemoryLayout<cl_uint>.size, &n, nil)
            return n
        }
        let start = references()
        var driverCounts = false
        let source = "__kernel void sn_probe(__global float *x) { x[get_global_id(0)] = 1.0f; }"
        do {
            let buffer = try CLBuffer(context: ctx, byteCount: 4096)
            let program = try CLProgram(context: ctx, source: source, options: "", fileName: "probe.cl")
            let kernel = try CLKernel(program: program, name: "sn_probe")
            // The spec leaves it to the driver whether objects retain their context (pocl's do); without that
            // the count cannot show a leak and the last check is skipped.
            driverCounts = references() > start
            // Error paths: a failed source build (build:2) and a rejected binary (binary) own nothing.
            #expect(throws: OpenCLError.self) {
                try CLProgram(context: ctx, source: source, options: "", fileName: "probe.cl")
            }
            if let binary = program.binary() {
                #expect(throws: OpenCLError.self) {
                    try CLProgram(context: ctx, binary: binary, options: "", fileName: "probe.cl")
                }
            }
            withExtendedLifetime((buffer, kernel)) {}
        }
        if driverCounts {
            #expect(references() == start, "OpenCL objects leaked: context references \(start) -> \(references())")
        }
        #expect(injector.liveObjects == ["context": 1], "\(injector.liveObjects)")
    }
}
