// Device limits (issue 10, item 4): the fitting of the tuning's fixed local sizes to a device's
// CL_DEVICE_MAX_WORK_ITEM_SIZES / CL_DEVICE_MAX_WORK_GROUP_SIZE / CL_DEVICE_LOCAL_MEM_SIZE and the kernels'
// CL_KERNEL_WORK_GROUP_SIZE / CL_KERNEL_LOCAL_MEM_SIZE, as pure functions; and, on the test device, that
// the effective tuning fits and the ops at those local sizes are bitwise those of the CPU path.
//
// CI runs the device test under small GPU-like limits, e.g.
//   SCRATCHNET_EXPECT_MAX_WGSIZE=16 oclgrind --max-wgsize 16 --local-mem-size 4096 --uninitialized \
//     --data-races swift test -c release --filter DeviceLimitsTests
// and then also checks that the device really has those limits (so the test cannot pass vacuously).

import Foundation
import ScratchNet
import ScratchNetOpenCL
import Testing

// MARK: The pure fitting functions

@Test func fitHalvesTheLargestDimensionUntilTheWorkGroupFits() {
    let items = [32, 32, 32]
    #expect(OpenCLTuning.fit([16, 4], workGroupSize: 32, maxWorkItemSizes: items) == [8, 4])
    #expect(OpenCLTuning.fit([16, 4], workGroupSize: 16, maxWorkItemSizes: items) == [4, 4])
    #expect(OpenCLTuning.fit([16, 4], workGroupSize: 8, maxWorkItemSizes: items) == [4, 2])
    #expect(OpenCLTuning.fit([16, 4], workGroupSize: 1, maxWorkItemSizes: items) == [1, 1])
    #expect(OpenCLTuning.fit([64], workGroupSize: 32, maxWorkItemSizes: items) == [32])
    // Already fitting: unchanged (pocl's 4096 limits, the CPU tuning).
    #expect(OpenCLTuning.fit([1, 8], workGroupSize: 4096, maxWorkItemSizes: [4096, 4096, 4096]) == [1, 8])
    #expect(OpenCLTuning.fit([12, 3], workGroupSize: 36, maxWorkItemSizes: items) == [12, 3])
    // A size that must shrink becomes the largest power of two below it; 0 (a failed query) counts as 1.
    #expect(OpenCLTuning.fit([12], workGroupSize: 8, maxWorkItemSizes: items) == [8])
    #expect(OpenCLTuning.fit([48, 3], workGroupSize: 64, maxWorkItemSizes: items) == [16, 3])
    #expect(OpenCLTuning.fit([64], workGroupSize: 0, maxWorkItemSizes: items) == [1])
}

@Test func fitRespectsEveryDimensionsMaxWorkItemSize() {
    // CL_DEVICE_MAX_WORK_ITEM_SIZES can be smaller than the work-group limit in one dimension.
    #expect(OpenCLTuning.fit([16, 4], workGroupSize: 64, maxWorkItemSizes: [32, 2, 1]) == [16, 2])
    #expect(OpenCLTuning.fit([16, 4], workGroupSize: 1024, maxWorkItemSizes: [8, 64, 64]) == [8, 4])
    #expect(OpenCLTuning.fit([64], workGroupSize: 1024, maxWorkItemSizes: [16]) == [16])
    // Dimensions past the list are not limited by it.
    #expect(OpenCLTuning.fit([4, 4], workGroupSize: 64, maxWorkItemSizes: [2]) == [2, 4])
}

@Test func gpuTuningFittedTo32WorkItemsAnd1KiBOfLocalMemory() {
    let device = OpenCLDeviceLimits(maxWorkGroupSize: 32, maxWorkItemSizes: [32, 32, 32], localMemoryBytes: 1024)
    let capacity = OpenCLTuning.lossGroupCapacity(device: device)
    #expect(capacity == 32)
    let kernel = OpenCLKernelLimits(workGroupSize: 32)
    var kernels = Dictionary(uniqueKeysWithValues: OpenCLTuning.KernelFamily.allCases.map { ($0, kernel) })
    kernels[.loss] = OpenCLKernelLimits(workGroupSize: 32, localMemoryBytes: capacity * 4)
    let t = OpenCLTuning.gpu.fitted(to: device, kernels: kernels, lossGroupCapacity: capacity)
    #expect(t.gemmLocal == [8, 4])
    #expect(t.netLocal == 32)
    #expect(t.rowLocal == 8)
    #expect(t.elementLocal == 32)
    #expect(t.packLocal == 32)
    #expect(t.lossLocal == 32)
    // Nothing else changes.
    #expect(t.tileRows == 4 && t.tileCols == 8 && t.netRows == 1 && t.netMaxWidth == 256 && t.netMaxLayers == 4)
    #expect(!t.packedGEMM)
    #expect(t.description.contains("gemm local 8x4"), "\(t)")
    #expect(t.description.contains("loss group 32"), "\(t)")
}

@Test func theStrictestKernelOfAFamilyDecides() {
    let device = OpenCLDeviceLimits(maxWorkGroupSize: 1024, maxWorkItemSizes: [1024, 1024, 64], localMemoryBytes: 65536)
    // e.g. sn_affine fine at 1024 but sn_matmul_tn limited to 32 by its registers
    let gemm = OpenCLKernelLimits.strictest([
        OpenCLKernelLimits(workGroupSize: 1024), OpenCLKernelLimits(workGroupSize: 32, privateMemoryBytes: 128),
    ])
    #expect(gemm == OpenCLKernelLimits(workGroupSize: 32, privateMemoryBytes: 128))
    let t = OpenCLTuning.gpu.fitted(to: device, kernels: [.gemm: gemm ?? OpenCLKernelLimits(workGroupSize: 1)],
                                    lossGroupCapacity: 64)
    #expect(t.gemmLocal == [8, 4])
    // Families without kernel limits are bound by the device only: the GPU preset fits unchanged.
    #expect(t.netLocal == 64 && t.elementLocal == 64 && t.lossLocal == 64)
    #expect(OpenCLKernelLimits.strictest([]) == nil)
}

@Test func lossGroupDropsToSmallerGroupsOrToOneWorkItem() {
    let device = OpenCLDeviceLimits(maxWorkGroupSize: 256, maxWorkItemSizes: [256, 256, 256], localMemoryBytes: 128)
    // 128 bytes of local memory hold 32 floats: train.cl is built with SN_LOSS_WG=32.
    #expect(OpenCLTuning.lossGroupCapacity(device: device) == 32)
    var small = device
    small.localMemoryBytes = 100
    #expect(OpenCLTuning.lossGroupCapacity(device: small) == 16)
    small.localMemoryBytes = 2
    #expect(OpenCLTuning.lossGroupCapacity(device: small) == 1)
    small = device
    small.maxWorkItemSizes = [8, 256, 256]
    #expect(OpenCLTuning.lossGroupCapacity(device: small) == 8)
    let fitting = OpenCLKernelLimits(workGroupSize: 256, localMemoryBytes: 128)
    #expect(OpenCLTuning.fitLossGroup(64, capacity: 32, device: device, kernel: fitting) == 32)
    #expect(OpenCLTuning.fitLossGroup(7, capacity: 32, device: device, kernel: fitting) == 7)
    #expect(OpenCLTuning.fitLossGroup(1, capacity: 32, device: device, kernel: fitting) == 1)
    // The kernel's local memory does not fit (or is unknown), or it cannot run: sn_loss, one work-item.
    let tooBig = OpenCLKernelLimits(workGroupSize: 256, localMemoryBytes: 256)
    #expect(OpenCLTuning.fitLossGroup(64, capacity: 64, device: device, kernel: tooBig) == 1)
    let unknown = OpenCLKernelLimits(workGroupSize: 256, localMemoryBytes: Int.max)
    #expect(OpenCLTuning.fitLossGroup(64, capacity: 64, device: device, kernel: unknown) == 1)
    #expect(OpenCLTuning.fitLossGroup(64, capacity: 32, device: device, kernel: OpenCLKernelLimits(workGroupSize: 0)) == 1)
    #expect(OpenCLTuning.fitLossGroup(64, capacity: 32, device: device, kernel: OpenCLKernelLimits(workGroupSize: 16)) == 16)
    let t = OpenCLTuning.gpu.fitted(to: device, kernels: [.loss: tooBig], lossGroupCapacity: 64)
    #expect(t.lossLocal == 1)
    #expect(t.description.contains("loss 1 work-item"), "\(t)")
}

@Test func lossGroupCapacityIsADefineOnlyWhenItIsNotTheDefault() {
    let t = OpenCLTuning.gpu
    #expect(!t.defines(lossGroupCapacity: 64).contains { $0.0 == "SN_LOSS_WG" })
    #expect(t.defines(lossGroupCapacity: 64).map(\.0) == ["SN_TM", "SN_TN", "SN_NET_ROWS", "SN_NET_MAXW"])
    #expect(t.defines(lossGroupCapacity: 16).contains { $0 == ("SN_LOSS_WG", 16) })
}

@Test func anUnrunnableNetworkKernelNarrowsThenRunsLayerByLayer() {
    var t = OpenCLTuning.gpu
    #expect(t.narrowerNetWidth == 128)
    t.netMaxWidth = 40
    #expect(t.narrowerNetWidth == 16)
    t.netMaxWidth = 8
    #expect(t.narrowerNetWidth == nil)
    let device = OpenCLDeviceLimits(maxWorkGroupSize: 256, maxWorkItemSizes: [256, 256, 256], localMemoryBytes: 32768)
    let off = t.fitted(to: device, kernels: [.net: OpenCLKernelLimits(workGroupSize: 0)], lossGroupCapacity: 64)
    #expect(off.netMaxLayers == 0)
    #expect(off.netLocal == 1)
    #expect(off.description.contains("layer by layer"), "\(off)")
    let on = t.fitted(to: device, kernels: [.net: OpenCLKernelLimits(workGroupSize: 1)], lossGroupCapacity: 64)
    #expect(on.netMaxLayers == 4 && on.netLocal == 1)
}

// MARK: The device

/// The work-group limit CI promises the device has (`oclgrind --max-wgsize N`), if set.
private let expectedMaxWorkGroupSize = ProcessInfo.processInfo.environment["SCRATCHNET_EXPECT_MAX_WGSIZE"]
    .flatMap { Int($0) }

/// The GPU tuning with packed right-hand sides and two rows per network work-item, so the packed kernels and
/// sn_pack_panels also run at fitted local sizes.
private let packedTuned: Result<OpenCLBackend, any Error> = Result {
    var t = OpenCLTuning.gpu
    t.packedGEMM = true
    t.panelCacheBytes = 1 << 20
    t.netRows = 2
    return try OpenCLBackend(deviceIndex: 0, tuning: t)
}

/// Every local size of `t` with the limits it must meet.
private func expectFits(_ be: OpenCLBackend, sourceLocation: SourceLocation = #_sourceLocation) {
    let t = be.tuning
    let limit = min(be.info.maxWorkGroupSize, expectedMaxWorkGroupSize ?? Int.max)
    let sizes: [(String, [Int])] = [
        ("gemm", t.gemmLocal), ("net", [t.netLocal]), ("row", [t.rowLocal]), ("element", [t.elementLocal]),
        ("pack", [t.packLocal]), ("loss", [t.lossLocal]),
    ]
    for (name, local) in sizes {
        #expect(local.reduce(1, *) <= limit, "\(name) local \(local) > \(limit): \(t)", sourceLocation: sourceLocation)
        for (d, size) in local.enumerated() where d < be.info.maxWorkItemSizes.count {
            #expect(size <= be.info.maxWorkItemSizes[d], "\(name) local \(local) vs \(be.info.maxWorkItemSizes)",
                    sourceLocation: sourceLocation)
        }
    }
    #expect(t.lossLocal == 1 || t.lossLocal <= be.lossGroupCapacity, sourceLocation: sourceLocation)
}

/// One test, so that the backends are built on the thread that runs their kernels: under
/// `oclgrind --uninitialized`, kernels launched from another thread than the one that built them (two tests)
/// crashed oclgrind 21.10 (a null dereference inside liboclgrind), and it also crashed when one thread built
/// programs while another ran kernels.
@Test func effectiveTuningFitsTheDeviceAndItsOpsMatchTheCPUPathBitwise() throws {
    guard let be = TestDevice.backend() else { return }
    if let n = expectedMaxWorkGroupSize {
        // The device must really have the promised limit (else the environment is not what CI meant).
        #expect(
            be.info.maxWorkGroupSize <= n,
            "\(be.info.name) allows \(be.info.maxWorkGroupSize) work-items per group, not <= \(n)")
        #expect(be.info.maxWorkItemSizes.allSatisfy { $0 <= n }, "\(be.info.maxWorkItemSizes)")
    }
    print("DeviceLimitsTests: \(be.info.name) (\(be.info.type)): max work-group \(be.info.maxWorkGroupSize), "
          + "work-items \(be.info.maxWorkItemSizes), local memory \(be.info.localMemoryBytes) B; "
          + "SN_LOSS_WG \(be.lossGroupCapacity); effective tuning: \(be.tuning)")
    expectFits(be)
    let packed = try packedTuned.get()
    print("DeviceLimitsTests: packed GPU tuning: \(packed.tuning)")
    expectFits(packed)
    #expect(packed.tuning.packedGEMM)
    let cpu = CPUBackend()
    for backend in [be, packed] {
        try compareWithCPU(backend, cpu)
    }
}

/// Small shapes (oclgrind is slow) that still span several work-groups at a local size of 16: matmul/affine
/// (row-major, or packed with sn_pack_panels), apply, softmax, argmax, the losses (sn_loss_group at the
/// tuning's and at an explicit size), byte uploads, and the whole network forward and predict.
private func compareWithCPU(_ be: OpenCLBackend, _ cpu: CPUBackend) throws {
    var rng = TestRandom(seed: 4242)
    let (n, k, h, c) = (37, 20, 17, 10)
    let x = rng.tensor(n, k, scale: 2), w1 = rng.tensor(k, h), b1 = rng.tensor(1, h), w2 = rng.tensor(h, c)
    let b2 = rng.tensor(1, c)
    let labels = try Tensor(shape: [n, 1], scalars: (0..<n).map { Float(($0 * 7) % c) })
    let bytes = (0..<(n * k)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    let what = "\(be.device.id) \(be.tuning)"

    /// The outputs of every op on `b`, by name.
    func outputs(_ b: any Backend) throws -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        let (dx, dw1, db1, dw2, db2) = (try b.upload(x), try b.upload(w1), try b.upload(b1), try b.upload(w2),
                                       try b.upload(b2))
        let m = try b.makeMatrix(rows: n, cols: h)
        try b.matmul(dx, dw1, into: m)
        out.append(("matmul", try b.download(m)))
        try b.affine(dx, dw1, bias: db1, activation: .sigmoid, into: m)
        out.append(("affine sigmoid", try b.download(m)))
        let single = try b.upload(try Tensor(shape: [1, k], scalars: Array(x.scalars.prefix(k))))
        let one = try b.makeMatrix(rows: 1, cols: h)
        try b.affine(single, dw1, bias: db1, activation: .relu, into: one)  // one row: row-major kernels
        out.append(("affine relu 1 row", try b.download(one)))
        try b.apply(.relu, m, into: m)
        out.append(("apply relu", try b.download(m)))
        let logits = try b.makeMatrix(rows: n, cols: c)
        try b.affine(m, dw2, bias: db2, activation: .identity, into: logits)
        let y = try b.makeMatrix(rows: n, cols: c)
        try b.softmaxRows(logits, into: y)
        out.append(("softmax", try b.download(y)))
        let argmax = try b.argmaxRows(y)
        out.append(("argmax", try Tensor(shape: [n, 1], scalars: argmax.map(Float.init))))
        let loss = try b.makeMatrix(rows: 1, cols: 4)
        let t = try b.upload(labels)
        try b.crossEntropy(y, targets: t, into: loss, at: 0)
        try b.sumOfSquares(y, targets: y, into: loss, at: 1)
        if let cl = b as? OpenCLBackend {
            // An explicit sn_loss_group of 64 (more than the test limits allow) shrinks to what the device takes.
            try cl.crossEntropy(y, targets: t, into: loss, at: 2, workGroup: 64)
            try cl.crossEntropy(y, targets: t, into: loss, at: 3, workGroup: 7)
        } else {
            try b.crossEntropy(y, targets: t, into: loss, at: 2)
            try b.crossEntropy(y, targets: t, into: loss, at: 3)
        }
        out.append(("losses", try b.download(loss)))
        let g = try b.makeMatrix(rows: 1, cols: h)
        try b.sumColumns(m, into: g)
        out.append(("sumColumns", try b.download(g)))
        let gw = try b.makeMatrix(rows: k, cols: h)
        try b.matmulTransposedA(dx, m, into: gw)
        out.append(("matmulTransposedA", try b.download(gw)))

        // Bytes: the whole network reads them in-kernel; the CPU path (no fused kernel) runs layer by layer.
        let xb = try b.makeMatrix(rows: n, cols: k)
        try bytes.withUnsafeBufferPointer { try b.write(bytes: $0, dividedBy: 255, to: xb) }
        let layers = [DenseLayer(weights: dw1, bias: db1, activation: .sigmoid),
                      DenseLayer(weights: dw2, bias: db2, activation: .identity)]
        let probabilities = try b.makeMatrix(rows: n, cols: c)
        var predictions = [Int32](repeating: -1, count: n)
        if let cl = b as? OpenCLBackend {
            #expect(try cl.predict(xb, layers: layers, softmax: true, into: &predictions), "predict fused \(what)")
            #expect(try cl.forward(xb, layers: layers, softmax: true, into: probabilities), "forward fused \(what)")
        } else {
            let hidden = try b.makeMatrix(rows: n, cols: h)
            try b.affine(xb, dw1, bias: db1, activation: .sigmoid, into: hidden)
            try b.affine(hidden, dw2, bias: db2, activation: .identity, into: logits)
            try b.softmaxRows(logits, into: probabilities)
            predictions = try b.argmaxRows(probabilities).map { Int32($0) }
        }
        out.append(("net forward", try b.download(probabilities)))
        out.append(("net predict", try Tensor(shape: [n, 1], scalars: predictions.map(Float.init))))
        out.append(("bytes", try b.download(xb)))  // sn_bytes_to_float
        return out
    }

    let got = try outputs(be), want = try outputs(cpu)
    try #require(got.count == want.count)
    for ((name, g), (_, w)) in zip(got, want) {
        expectBitwise(g, w, "\(name) on \(what)")
    }
}

extension OpenCLBackend {
    /// `predict` into an array (test convenience).
    fileprivate func predict(
        _ x: DeviceMatrix, layers: [DenseLayer], softmax: Bool, into predictions: inout [Int32]
    ) throws -> Bool {
        try predictions.withUnsafeMutableBufferPointer { try predict(x, layers: layers, softmax: softmax, into: $0) }
    }
}
