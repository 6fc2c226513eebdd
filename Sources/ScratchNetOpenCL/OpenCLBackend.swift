// OpenCLBackend: the Backend protocol on one OpenCL device — buffers stay on the device, ops are enqueued on
// one in-order queue, and `download` blocks until everything before it has finished. The kernels
// (Kernels/*.cl) follow the numerics contract, so on a device with parity the results are bitwise those
// of the CPU path. Fast paths: weights are packed once into column panels (cached with the matrix, dropped
// when it is written); a whole MLP runs as one launch (`forward`/`predict`, net.cl); built programs are kept
// in a persistent binary cache (ProgramCache.swift); byte uploads are copied to host staging memory and
// enqueued without waiting. Tunables are chosen per device type (OpenCLTuning).

import COpenCL
import Foundation
import ScratchNet

/// Device memory of an ``OpenCLBackend``: one cl_mem, or none for an empty matrix (OpenCL has no
/// zero-byte buffers).
final class OpenCLStorage: DeviceStorage, Sendable {
    /// nil when `count == 0`.
    let buffer: CLBuffer?
    /// Number of floats.
    let count: Int
    /// The context the buffer belongs to (identifies the owning backend).
    let context: CLContext
    /// The matrix packed into column panels (sn_pack_panels), made on first use as a packed operand and
    /// dropped by every write to the matrix (uploads and op outputs).
    let packed = Locked<CLBuffer?>(nil)
    /// Bytes from `write(bytes:dividedBy:to:)`, kept on the device with their divisor. While `divisor` is
    /// set the floats in `buffer` are stale: the next op that reads the matrix converts them first
    /// (sn_bytes_to_float), and the whole-network kernel reads the bytes directly instead.
    let bytes = Locked<PendingBytes>(PendingBytes())

    init(buffer: CLBuffer?, count: Int, context: CLContext) {
        self.buffer = buffer
        self.count = count
        self.context = context
    }
}

/// The byte upload buffer of one matrix and whether its float conversion is still pending.
struct PendingBytes {
    /// `count` bytes, allocated on the first byte write and reused.
    var buffer: CLBuffer?
    /// Set while the floats have not been converted from `buffer` yet.
    var divisor: Float?
    /// Host copy of the last bytes, the source of the non-blocking upload into `buffer`.
    var staging: CLStaging?
}

/// Kernel tunables (-D defines and fixed local sizes), chosen per device type by ``OpenCLBackend``.
///
/// None of them changes results: every choice keeps the k order of each output (the numerics contract).
/// ``OpenCLBackend/tuning`` is the effective tuning: the requested one with every local size fitted to the
/// device's and the built kernels' limits (DeviceLimits.swift); every launch uses exactly its local sizes.
public struct OpenCLTuning: Sendable, Equatable, CustomStringConvertible {
    /// Rows (SN_TM) of the gemm register tile.
    public var tileRows: Int
    /// Columns (SN_TN, a multiple of 8) of the gemm register tile, and the panel width of packed weights.
    public var tileCols: Int
    /// Fixed 2-D local size of the gemm kernels.
    public var gemmLocal: [Int]
    /// Whether matmul/affine use packed right-hand sides (CPUs: contiguous panels; GPUs read B row-major).
    public var packedGEMM: Bool
    /// A packed panel of at most this many bytes is treated as cache-resident: work-items then walk the rows
    /// of one panel before moving to the next panel (else the panels of one row block).
    public var panelCacheBytes: Int
    /// Rows per work-item of the whole-network kernel (SN_NET_ROWS).
    public var netRows: Int
    /// Fixed 1-D local size of the whole-network kernel.
    public var netLocal: Int
    /// Widest layer the whole-network kernel takes (SN_NET_MAXW, a multiple of tileCols); wider networks
    /// run layer by layer.
    public var netMaxWidth: Int
    /// Most layers the whole-network kernel takes (at most 4; 0 in an effective tuning whose device cannot
    /// run the whole-network kernel: every network then runs layer by layer).
    public var netMaxLayers: Int
    /// Fixed 1-D local size of the row-wise kernels (sn_softmax_rows, sn_argmax_rows).
    public var rowLocal: Int = 8
    /// Fixed 1-D local size of the element-wise kernels (sn_apply, sn_bytes_to_float, sn_sum_columns,
    /// sn_act_backward, sn_softmax_ce_backward, sn_update).
    public var elementLocal: Int = 64
    /// Fixed 1-D local size of sn_pack_panels.
    public var packLocal: Int = 64
    /// Work-group of the losses: 1 runs sn_loss (one work-item, no barriers: pocl runs barriers inside loops
    /// slowly), more runs sn_loss_group as one work-group of that size (at most 64, SN_LOSS_WG). Same bits.
    public var lossLocal: Int = 1

    /// CPUs (pocl): 6×16 float8 register tiles over packed panels, one work-item per 6 rows for the network.
    public static let cpu = OpenCLTuning(
        tileRows: 6, tileCols: 16, gemmLocal: [1, 8], packedGEMM: true, panelCacheBytes: 256 << 10,
        netRows: 6, netLocal: 1, netMaxWidth: 256, netMaxLayers: 4, lossLocal: 1)
    /// GPUs: small tiles, many work-items, coalesced row-major reads of B; one row per work-item in the
    /// network kernel; the losses as one work-group of 64.
    public static let gpu = OpenCLTuning(
        tileRows: 4, tileCols: 8, gemmLocal: [16, 4], packedGEMM: false, panelCacheBytes: 0,
        netRows: 1, netLocal: 64, netMaxWidth: 256, netMaxLayers: 4, lossLocal: 64)

    /// ``gpu`` for GPUs and accelerators, ``cpu`` otherwise.
    public static func forDeviceType(_ type: String) -> OpenCLTuning {
        type == "GPU" || type == "accelerator" ? .gpu : .cpu
    }

    /// The -D defines every program is built with.
    var defines: [(String, Int)] {
        [("SN_TM", tileRows), ("SN_TN", tileCols), ("SN_NET_ROWS", netRows), ("SN_NET_MAXW", netMaxWidth)]
    }

    /// Whether the values are usable (checked by ``OpenCLBackend`` before building).
    var isValid: Bool {
        tileCols >= 8 && tileCols % 8 == 0 && tileRows >= 1 && netRows >= 1
            && netMaxWidth % tileCols == 0 && (1...4).contains(netMaxLayers) && gemmLocal.count == 2
            && gemmLocal.allSatisfy { $0 >= 1 } && netLocal >= 1 && rowLocal >= 1 && elementLocal >= 1
            && packLocal >= 1 && (1...OpenCLBackend.lossGroup).contains(lossLocal)
    }

    /// The tiles and every local size, e.g. "tile 4x8, B row-major, gemm local 4x4, net 1 row/item local 16
    /// width<=256 layers<=4, row local 8, element local 16, pack local 16, loss group 16".
    public var description: String {
        let b = packedGEMM ? "B packed (panel cache \(panelCacheBytes) B)" : "B row-major"
        let net = netMaxLayers == 0
            ? "net kernel off (layer by layer)"
            : "net \(netRows) row/item local \(netLocal) width<=\(netMaxWidth) layers<=\(netMaxLayers)"
        let loss = lossLocal == 1 ? "loss 1 work-item" : "loss group \(lossLocal)"
        return "tile \(tileRows)x\(tileCols), \(b), gemm local \(gemmLocal.map(String.init).joined(separator: "x")), "
            + "\(net), row local \(rowLocal), element local \(elementLocal), pack local \(packLocal), \(loss)"
    }
}

/// Runs ScratchNet's ops on one OpenCL device.
///
/// Create it with the device number of ``OpenCLDevices/enumerate()`` (`opencl:N`). Building the kernels
/// happens in `init`; a kernel that fails to compile throws an ``OpenCLError`` naming the file and carrying
/// the build log. All methods may be called from several threads; ops are executed in the order they were
/// enqueued.
public final class OpenCLBackend: Backend {
    /// The device as `opencl:N`, with its name, type, platform and parity capability.
    public let device: DeviceDescription
    /// Everything ScratchNet knows about the device.
    public let info: OpenCLDeviceInfo
    /// Where the kernel sources came from: "embedded" or a folder path.
    public let kernelOrigin: String

    /// Where the programs came from: "cache" (every program loaded from the persistent binary cache),
    /// "source" (every program compiled) or "mixed".
    public let buildSource: String
    /// "cache" or "source" per kernel file.
    public let programOrigins: [String: String]
    /// The tunables in use: the requested ones (or ``OpenCLTuning/forDeviceType(_:)``'s) with every local size
    /// fitted to the device's limits and the built kernels' CL_KERNEL_WORK_GROUP_SIZE (see
    /// ``OpenCLTuning/description``). Every launch uses exactly these local sizes.
    public let tuning: OpenCLTuning
    /// The program cache in use.
    public let cacheOptions: ProgramCacheOptions
    /// The program cache key of every kernel file, in build order (what the self-check verdict is keyed by).
    package let programKeys: [String]
    /// Whether ``forward(_:layers:softmax:into:)`` and ``predict(_:layers:softmax:into:)`` use the
    /// whole-network kernel (sn_net). ``DeviceSelector`` turns it off when that kernel fails the device's
    /// self-check; callers then run the layers one by one.
    public var fusedPathEnabled: Bool {
        get { fusedEnabled.withLock { $0 } }
        set { fusedEnabled.withLock { $0 = newValue } }
    }
    private let fusedEnabled = Locked(true)

    /// Elements each sn_bytes_to_float work-item converts (SN_BYTES_PER_ITEM in activation.cl).
    static let bytesPerItem = 16

    let context: CLContext
    let queue: CLQueue
    let matmulKernel: CLKernel
    let affineKernel: CLKernel
    let matmulPackedKernel: CLKernel
    let affinePackedKernel: CLKernel
    let packKernel: CLKernel
    let netKernel: CLKernel
    let applyKernel: CLKernel
    let bytesKernel: CLKernel
    let softmaxKernel: CLKernel
    let argmaxKernel: CLKernel
    /// The training kernels (train.cl; OpenCLTraining.swift).
    let training: TrainingKernels
    /// Bound to kernel arguments for empty matrices (a kernel argument must be a valid buffer).
    let placeholder: CLBuffer
    /// Injected faults (tests; `SCRATCHNET_FAULT`), nil normally.
    package let faults: FaultInjector?
    /// Serialises clSetKernelArg + clEnqueueNDRangeKernel (kernel objects are shared).
    let launchLock = NSLock()
    /// Device buffer for per-row indices (argmaxRows, predict), grown on demand and reused; the lock spans
    /// the launch and the download.
    let indices = Locked<CLBuffer?>(nil)

    /// Opens device `deviceIndex` (see ``OpenCLDevices/enumerate()``) and builds the kernels from
    /// `kernelDirectory` if given, else from the folder in `SCRATCHNET_KERNELS` if set, else from the
    /// sources embedded at build time.
    ///
    /// - Parameters:
    ///   - deviceIndex: the device's number in ``OpenCLDevices/enumerate()`` (what `opencl:N` names).
    ///   - kernelDirectory: a folder of `.cl` files to build instead of the embedded kernels (nil: the
    ///     `SCRATCHNET_KERNELS` folder if set, else the embedded ones).
    ///   - cache: where built program binaries are kept between runs; default
    ///     ``ProgramCacheOptions/fromEnvironment(_:)`` (`$XDG_CACHE_HOME/scratchnet`, off with
    ///     `SCRATCHNET_NO_CACHE=1`).
    ///   - tuning: kernel tunables; default ``OpenCLTuning/forDeviceType(_:)`` of the device. Local sizes the
    ///     device cannot run are shrunk (``tuning`` is the result), never rejected.
    ///
    /// `SCRATCHNET_FAULT` (FaultInjection.swift) injects OpenCL failures for testing; it is unset normally.
    public convenience init(
        deviceIndex: Int, kernelDirectory: URL? = nil, cache: ProgramCacheOptions? = nil, tuning: OpenCLTuning? = nil
    ) throws {
        try self.init(
            deviceIndex: deviceIndex, kernelDirectory: kernelDirectory, cache: cache, tuning: tuning,
            faults: FaultRules.fromEnvironment().map(FaultInjector.init))
    }

    /// Like ``init(deviceIndex:kernelDirectory:cache:tuning:)`` with an explicit fault injector (nil: none)
    /// instead of the one `SCRATCHNET_FAULT` describes.
    package init(
        deviceIndex: Int, kernelDirectory: URL? = nil, cache: ProgramCacheOptions? = nil, tuning: OpenCLTuning? = nil,
        faults: FaultInjector?
    ) throws {
        let found = OpenCLDevices.discover()
        guard found.devices.indices.contains(deviceIndex) else {
            if found.devices.isEmpty {
                throw BackendError.device(
                    "opencl:\(deviceIndex): no OpenCL device available (\(found.reason ?? "none found"))")
            }
            throw BackendError.device(OpenCLDevices.outOfRangeMessage(index: deviceIndex, count: found.devices.count))
        }
        let dev = found.devices[deviceIndex]
        info = dev.info
        device = DeviceDescription(
            kind: .opencl(index: deviceIndex), name: dev.info.name, type: dev.info.type,
            platform: dev.info.platformName, parity: dev.info.parity)
        let tuning = tuning ?? OpenCLTuning.forDeviceType(dev.info.type)
        guard tuning.isValid else {
            throw BackendError.device("invalid OpenCL tuning \(tuning)")
        }
        let cacheOptions = cache ?? ProgramCacheOptions.fromEnvironment()
        self.cacheOptions = cacheOptions
        let programCache = ProgramCache(options: cacheOptions)

        let sources = KernelSources(kernelDirectory: kernelDirectory)
        kernelOrigin = sources.origin
        let ctx = try CLContext(
            device: dev.device, faults: faults,
            keepsReleasedBuffers: OclgrindBufferQuirk.applies(toPlatform: dev.info.platformName))
        self.faults = faults
        context = ctx
        queue = try CLQueue(context: ctx)

        let lossCapacity = OpenCLTuning.lossGroupCapacity(device: dev.info.limits)
        var options = KernelSources.buildOptions(
            correctlyRoundedDivide: dev.info.floatCapabilities.contains("correctly rounded divide/sqrt"),
            defines: tuning.defines(lossGroupCapacity: lossCapacity))
        var origins: [String: String] = [:]
        var keys: [String] = []
        func build(_ file: String) throws -> CLProgram {
            let source = try sources.programSource(for: file)
            let name = sources.displayName(of: file)
            let key = ProgramCache.key(
                source: source, options: options, device: dev.info.name, driver: dev.info.driverVersion,
                platform: dev.info.platformVersion)
            keys.append(key)
            // An injected build fault must reach the compiler, so the cache is not read then.
            if faults?.rules.contains(.build) != true, let binary = programCache.load(key: key),
                let program = try? CLProgram(context: ctx, binary: binary, options: options, fileName: name)
            {
                origins[file] = "cache"
                return program
            }
            // No usable cached binary (none, damaged or rejected): build from source and (re)write the file.
            let program = try CLProgram(context: ctx, source: source, options: options, fileName: name)
            if programCache.options.enabled, let binary = program.binary() {
                programCache.store(key: key, binary: binary)
            }
            origins[file] = "source"
            return program
        }
        let gemm = try build("gemm.cl")
        matmulKernel = try CLKernel(program: gemm, name: "sn_matmul")
        affineKernel = try CLKernel(program: gemm, name: "sn_affine")
        matmulPackedKernel = try CLKernel(program: gemm, name: "sn_matmul_packed")
        affinePackedKernel = try CLKernel(program: gemm, name: "sn_affine_packed")
        packKernel = try CLKernel(program: gemm, name: "sn_pack_panels")
        let elementwise = try build("activation.cl")
        applyKernel = try CLKernel(program: elementwise, name: "sn_apply")
        bytesKernel = try CLKernel(program: elementwise, name: "sn_bytes_to_float")
        softmaxKernel = try CLKernel(program: try build("softmax.cl"), name: "sn_softmax_rows")
        argmaxKernel = try CLKernel(program: try build("argmax.cl"), name: "sn_argmax_rows")
        var net = try CLKernel(program: try build("net.cl"), name: "sn_net")
        training = try TrainingKernels(program: try build("train.cl"), lossGroupCapacity: lossCapacity)
        // The effective tuning. sn_net keeps rows of SN_NET_ROWS×SN_NET_MAXW floats in private memory: where it
        // cannot run at all (CL_KERNEL_WORK_GROUP_SIZE 0) net.cl is rebuilt narrower, and at the narrowest the
        // fitted tuning runs every network layer by layer. Then every fixed local size is fitted to the device
        // and to the strictest kernel that launches with it, once: launches use exactly these local sizes.
        var netTuning = tuning
        while net.limits.workGroupSize == 0, let narrower = netTuning.narrowerNetWidth {
            netTuning.netMaxWidth = narrower
            options = KernelSources.buildOptions(
                correctlyRoundedDivide: dev.info.floatCapabilities.contains("correctly rounded divide/sqrt"),
                defines: netTuning.defines(lossGroupCapacity: lossCapacity))
            net = try CLKernel(program: try build("net.cl"), name: "sn_net")
        }
        netKernel = net
        let families: [OpenCLTuning.KernelFamily: [CLKernel]] = [
            .gemm: [matmulKernel, affineKernel, matmulPackedKernel, affinePackedKernel, training.matmulTN,
                    training.matmulNT],
            .net: [net],
            .row: [softmaxKernel, argmaxKernel],
            .element: [applyKernel, bytesKernel, training.sumColumns, training.activationBackward,
                       training.softmaxCrossEntropyBackward, training.update],
            .pack: [packKernel],
            .loss: [training.lossGroup],
        ]
        self.tuning = netTuning.fitted(
            to: dev.info.limits, kernels: families.compactMapValues { OpenCLKernelLimits.strictest($0.map(\.limits)) },
            lossGroupCapacity: lossCapacity)
        placeholder = try CLBuffer(context: ctx, byteCount: 64)
        programOrigins = origins
        programKeys = keys
        let kinds = Set(origins.values)
        buildSource = kinds.count == 1 ? (kinds.first ?? "source") : "mixed"
    }

    // MARK: Memory

    public func makeMatrix(rows: Int, cols: Int) throws -> DeviceMatrix {
        guard rows >= 0, cols >= 0 else {
            throw BackendError.shapeMismatch("makeMatrix: negative shape (\(rows),\(cols))")
        }
        let (count, overflow) = rows.multipliedReportingOverflow(by: cols)
        guard !overflow, count <= Int(Int32.max) else {
            throw BackendError.shapeMismatch(
                "makeMatrix: shape (\(rows),\(cols)) is too large for the OpenCL kernels (at most 2^31-1 values)")
        }
        let bytes = count * MemoryLayout<Float>.stride
        guard UInt64(bytes) <= info.maxAllocationBytes else {
            // The driver's own answer to an oversized buffer, so batch loops split it like an allocation failure.
            throw OpenCLError(
                code: CL_INVALID_BUFFER_SIZE, call: "clCreateBuffer",
                hint: "makeMatrix: (\(rows),\(cols)) needs \(bytes) bytes but the largest buffer \(device.id) "
                    + "(\(info.name)) can allocate is \(info.maxAllocationBytes) bytes; use smaller batches")
        }
        let buffer = count == 0 ? nil : try CLBuffer(context: context, byteCount: bytes)
        return DeviceMatrix(rows: rows, cols: cols, storage: OpenCLStorage(buffer: buffer, count: count, context: context))
    }

    public func upload(_ tensor: Tensor) throws -> DeviceMatrix {
        let (rows, cols) = try ShapeCheck.upload(tensor)
        let m = try makeMatrix(rows: rows, cols: cols)
        try tensor.scalars.withUnsafeBufferPointer { try write($0, to: m) }
        return m
    }

    public func write(_ values: UnsafeBufferPointer<Float>, to matrix: DeviceMatrix) throws {
        let s = try storage(matrix, op: "write")
        try ShapeCheck.write(values.count, "values", to: matrix, op: "write")
        written(matrix)
        guard let buffer = s.buffer, let base = values.baseAddress else { return }
        try queue.write(base, byteCount: values.count * MemoryLayout<Float>.stride, to: buffer)
    }

    public func write(bytes: UnsafeBufferPointer<UInt8>, dividedBy divisor: Float, to matrix: DeviceMatrix) throws {
        let s = try storage(matrix, op: "write(bytes:)")
        try ShapeCheck.write(bytes.count, "bytes", to: matrix, op: "write(bytes:)")
        s.packed.withLock { $0 = nil }
        guard let base = bytes.baseAddress, s.buffer != nil else { return }
        // Upload only; the conversion y = float(byte) / divisor runs when the floats are first read (or
        // inside the whole-network kernel, which then never stores them).
        try s.bytes.withLock { (state: inout PendingBytes) throws in
            let upload: CLBuffer
            if let existing = state.buffer {
                upload = existing
            } else {
                upload = try CLBuffer(context: context, byteCount: bytes.count)
                state.buffer = upload
            }
            let staging: CLStaging
            if let existing = state.staging {
                staging = existing
            } else {
                staging = CLStaging(capacity: bytes.count)
                state.staging = staging
            }
            // Non-blocking: the upload waits together with the next blocking command (one round trip less).
            try queue.write(base, byteCount: bytes.count, to: upload, staging: staging)
            state.divisor = divisor
        }
    }

    /// Converts pending bytes of `s` to its floats (sn_bytes_to_float), once.
    func materialize(_ s: OpenCLStorage) throws(OpenCLError) {
        guard let target = s.buffer else { return }
        try s.bytes.withLock { (state: inout PendingBytes) throws(OpenCLError) in
            guard let divisor = state.divisor, let source = state.buffer else { return }
            // y (n) = float(x (n) bytes) / divisor, 16 elements per work-item
            let n = s.count
            let items = (n + Self.bytesPerItem - 1) / Self.bytesPerItem
            try launch(bytesKernel, global: [Self.roundUp(items, tuning.elementLocal)], local: [tuning.elementLocal]) {
                k throws(OpenCLError) in
                try k.setArg(0, Int32(n))
                try k.setArg(1, divisor)
                try k.setArg(2, source)
                try k.setArg(3, target)
            }
            state.divisor = nil
        }
    }

    public func read(_ matrix: DeviceMatrix, into values: UnsafeMutableBufferPointer<Float>) throws {
        let s = try storage(matrix, op: "read")
        try ShapeCheck.write(values.count, "floats of host memory", to: matrix, op: "read")
        try materialize(s)
        guard let buffer = s.buffer, let p = values.baseAddress else {
            try queue.finish()
            return
        }
        try queue.read(buffer, byteCount: values.count * MemoryLayout<Float>.stride, into: p)
    }

    public func download(_ matrix: DeviceMatrix) throws -> Tensor {
        let s = try storage(matrix, op: "download")
        try materialize(s)
        var values = [Float](repeating: 0, count: matrix.count)
        if let buffer = s.buffer {
            try values.withUnsafeMutableBytes { raw in
                guard let p = raw.baseAddress else { return }
                try queue.read(buffer, byteCount: raw.count, into: p)
            }
        } else {
            try queue.finish()
        }
        return try Tensor(shape: [matrix.rows, matrix.cols], scalars: values)
    }

    // MARK: Ops

    public func matmul(_ a: DeviceMatrix, _ b: DeviceMatrix, into c: DeviceMatrix) throws {
        try ShapeCheck.matmul(a, b, c)
        try gemm(a, b, bias: nil, activation: .identity, into: c, op: "matmul")
    }

    public func affine(
        _ x: DeviceMatrix, _ w: DeviceMatrix, bias: DeviceMatrix, activation: Activation, into y: DeviceMatrix
    ) throws {
        try ShapeCheck.affine(x, w, bias, y)
        try gemm(x, w, bias: bias, activation: activation, into: y, op: "affine")
    }

    /// matmul (bias nil) or affine: the packed kernels when B is packed (or worth packing), else the
    /// row-major ones. Same bits either way: packing is a copy and the k order per output is the same.
    func gemm(
        _ a: DeviceMatrix, _ b: DeviceMatrix, bias: DeviceMatrix?, activation: Activation, into c: DeviceMatrix,
        op: String
    ) throws {
        let (ab, bb) = (try mem(a, op), try mem(b, op))
        let biasBuffer = try bias.map { m in try mem(m, op) }
        let cb = try output(c, op)
        guard c.count > 0 else { return }
        let (n, k, m) = (a.rows, a.cols, b.cols)
        if let packed = try packedOperand(b, reuseRows: n) {
            // c (N,M) = [act](a (N,K) · b (K,M) [+ bias]); b packed in panels of SN_TN columns
            let rowsFast = k * tuning.tileCols * MemoryLayout<Float>.stride <= tuning.panelCacheBytes
            let rowTiles = (n + tuning.tileRows - 1) / tuning.tileRows
            let panels = (m + tuning.tileCols - 1) / tuning.tileCols
            let dims = rowsFast ? [rowTiles, panels] : [panels, rowTiles]
            let global = [Self.roundUp(dims[0], tuning.gemmLocal[0]), Self.roundUp(dims[1], tuning.gemmLocal[1])]
            let kernel = biasBuffer == nil ? matmulPackedKernel : affinePackedKernel
            try launch(kernel, global: global, local: tuning.gemmLocal) { kn throws(OpenCLError) in
                try kn.setArg(0, Int32(n))
                try kn.setArg(1, Int32(k))
                try kn.setArg(2, Int32(m))
                try kn.setArg(3, ab)
                try kn.setArg(4, packed)
                if let biasBuffer {
                    try kn.setArg(5, biasBuffer)
                    try kn.setArg(6, Self.code(activation))
                    try kn.setArg(7, cb)
                    try kn.setArg(8, Int32(rowsFast ? 1 : 0))
                } else {
                    try kn.setArg(5, cb)
                    try kn.setArg(6, Int32(rowsFast ? 1 : 0))
                }
            }
            return
        }
        // c (N,M) = [act](a (N,K) · b (K,M) [+ bias]); one work-item per SN_TM×SN_TN tile of c
        let kernel = biasBuffer == nil ? matmulKernel : affineKernel
        try launch(kernel, global: gemmGlobal(rows: n, cols: m), local: tuning.gemmLocal) { kn throws(OpenCLError) in
            try kn.setArg(0, Int32(n))
            try kn.setArg(1, Int32(k))
            try kn.setArg(2, Int32(m))
            try kn.setArg(3, ab)
            try kn.setArg(4, bb)
            if let biasBuffer {
                try kn.setArg(5, biasBuffer)
                try kn.setArg(6, Self.code(activation))
                try kn.setArg(7, cb)
            } else {
                try kn.setArg(5, cb)
            }
        }
    }

    public func apply(_ activation: Activation, _ x: DeviceMatrix, into y: DeviceMatrix) throws {
        try ShapeCheck.sameShape(x, y, op: "apply")
        let (xb, yb) = (try mem(x, "apply"), try mem(y, "apply"))
        written(y)
        guard x.count > 0 else { return }
        // In place too (identity included): the kernel stores NaNs canonically, as the CPU path does.
        // y (N,M) = act(x (N,M)), one work-item per element
        try launch(applyKernel, global: [Self.roundUp(x.count, tuning.elementLocal)], local: [tuning.elementLocal]) { k throws(OpenCLError) in
            try k.setArg(0, Int32(x.count))
            try k.setArg(1, Self.code(activation))
            try k.setArg(2, xb)
            try k.setArg(3, yb)
        }
    }

    public func softmaxRows(_ x: DeviceMatrix, into y: DeviceMatrix) throws {
        try ShapeCheck.sameShape(x, y, op: "softmaxRows")
        let (xb, yb) = (try mem(x, "softmaxRows"), try mem(y, "softmaxRows"))
        written(y)
        guard x.count > 0 else { return }
        // y (N,M) = softmax of each row of x (N,M), one work-item per row
        try launch(softmaxKernel, global: [Self.roundUp(x.rows, tuning.rowLocal)], local: [tuning.rowLocal]) { k throws(OpenCLError) in
            try k.setArg(0, Int32(x.rows))
            try k.setArg(1, Int32(x.cols))
            try k.setArg(2, xb)
            try k.setArg(3, yb)
        }
    }

    public func argmaxRows(_ x: DeviceMatrix) throws -> [Int] {
        let xb = try mem(x, "argmaxRows")
        guard x.rows > 0 else { return [] }
        var result = [Int32](repeating: 0, count: x.rows)
        try result.withUnsafeMutableBufferPointer { out in
            try withIndexBuffer(rows: x.rows, into: out) { buffer throws(OpenCLError) in
                // out (N) = index of the largest value of each row of x (N,M), one work-item per row
                try launch(argmaxKernel, global: [Self.roundUp(x.rows, tuning.rowLocal)], local: [tuning.rowLocal]) {
                    k throws(OpenCLError) in
                    try k.setArg(0, Int32(x.rows))
                    try k.setArg(1, Int32(x.cols))
                    try k.setArg(2, xb)
                    try k.setArg(3, buffer)
                }
            }
        }
        return result.map { Int($0) }
    }

    // MARK: Whole network

    /// The whole MLP as one launch of sn_net (net.cl): bitwise equal to ``affine(_:_:bias:activation:into:)``
    /// per layer then ``softmaxRows(_:into:)``. Returns false (nothing done) for more than
    /// ``OpenCLTuning/netMaxLayers`` layers or a layer wider than ``OpenCLTuning/netMaxWidth``. Bytes written
    /// with `write(bytes:dividedBy:to:)` into `x` are converted inside the kernel.
    public func forward(_ x: DeviceMatrix, layers: [DenseLayer], softmax: Bool, into y: DeviceMatrix) throws -> Bool {
        guard fusedPathEnabled, let plan = try netPlan(x, layers, op: "forward") else { return false }
        guard y.rows == x.rows, y.cols == plan.outputWidth else {
            throw BackendError.shapeMismatch(
                "forward: output \(y.shapeDescription) must be (\(x.rows),\(plan.outputWidth))")
        }
        let yb = try output(y, "forward")
        guard x.rows > 0 else { return true }
        try launchNet(plan, x: x, softmax: softmax, mode: 0, y: yb, predictions: placeholder)
        return true
    }

    /// Like ``forward(_:layers:softmax:into:)`` but only each row's argmax (Numerics.argmax's rule, on the
    /// softmax outputs when `softmax`) leaves the device, through a reused index buffer.
    public func predict(
        _ x: DeviceMatrix, layers: [DenseLayer], softmax: Bool, into predictions: UnsafeMutableBufferPointer<Int32>
    ) throws -> Bool {
        guard fusedPathEnabled, let plan = try netPlan(x, layers, op: "predict") else { return false }
        guard predictions.count == x.rows else {
            throw BackendError.shapeMismatch("predict: \(predictions.count) prediction slots for \(x.rows) rows")
        }
        guard x.rows > 0 else { return true }
        try withIndexBuffer(rows: x.rows, into: predictions) { buffer in
            try launchNet(plan, x: x, softmax: softmax, mode: 1, y: placeholder, predictions: buffer)
        }
        return true
    }

    /// What one whole-network launch needs: the packed weights and biases and the widths.
    struct NetPlan {
        var weights: [CLBuffer]
        var biases: [CLBuffer]
        var widths: [Int]
        var activations: [Activation]
        var outputWidth: Int { widths.last ?? 0 }
    }

    /// The plan for `layers` on `x`, or nil when the whole-network kernel does not take them (too many
    /// layers, a layer wider than the limit, sizes past int indexing). Shape errors throw.
    func netPlan(_ x: DeviceMatrix, _ layers: [DenseLayer], op: String) throws -> NetPlan? {
        _ = try storage(x, op: op)
        guard !layers.isEmpty, layers.count <= tuning.netMaxLayers else { return nil }
        var width = x.cols
        for (i, layer) in layers.enumerated() {
            _ = try mem(layer.weights, op)
            _ = try mem(layer.bias, op)
            guard layer.weights.rows == width, layer.bias.rows == 1, layer.bias.cols == layer.weights.cols else {
                throw BackendError.shapeMismatch(
                    "\(op): layer \(i + 1) has W \(layer.weights.shapeDescription) and bias "
                        + "\(layer.bias.shapeDescription) but its input has \(width) columns")
            }
            width = layer.weights.cols
            guard width <= tuning.netMaxWidth else { return nil }
        }
        // int indexing inside the kernel: row * K0 and row * M_L, rows rounded up to whole row blocks
        let (cells, overflow) = (x.rows + tuning.netRows).multipliedReportingOverflow(by: max(1, x.cols, width))
        guard !overflow, cells < Int(Int32.max) else { return nil }
        var plan = NetPlan(weights: [], biases: [], widths: [], activations: [])
        for layer in layers {
            guard let w = try packed(layer.weights), let b = try packed(layer.bias) else { return nil }
            plan.weights.append(w)
            plan.biases.append(b)
            plan.widths.append(layer.weights.cols)
            plan.activations.append(layer.activation)
        }
        return plan
    }

    /// One sn_net launch: mode 0 stores the outputs to `y`, mode 1 the argmax of each row to `predictions`.
    func launchNet(
        _ plan: NetPlan, x: DeviceMatrix, softmax: Bool, mode: Int32, y: CLBuffer, predictions: CLBuffer
    ) throws(OpenCLError) {
        guard let xs = x.storage as? OpenCLStorage else { return }
        // Pending bytes are read directly (converted inside the kernel); otherwise the floats.
        let pending = xs.bytes.withLock { state -> (CLBuffer, Float)? in
            guard let divisor = state.divisor, let buffer = state.buffer else { return nil }
            return (buffer, divisor)
        }
        let xb = xs.buffer ?? placeholder
        let blocks = (x.rows + tuning.netRows - 1) / tuning.netRows
        // y (N,M_L) or predictions (N) from x (N,K0) through every layer; one work-item per SN_NET_ROWS rows
        try launch(netKernel, global: [Self.roundUp(blocks, tuning.netLocal)], local: [tuning.netLocal]) {
            k throws(OpenCLError) in
            try k.setArg(0, Int32(x.rows))
            try k.setArg(1, Int32(plan.widths.count))
            try k.setArg(2, Int32(x.cols))
            try k.setArg(7, xb)
            try k.setArg(8, pending?.0 ?? placeholder)
            try k.setArg(9, pending?.1 ?? 1)
            try k.setArg(10, Int32(pending == nil ? 0 : 1))
            for l in 0..<4 {
                try k.setArg(3 + l, Int32(l < plan.widths.count ? plan.widths[l] : 0))
                try k.setArg(11 + 2 * l, l < plan.weights.count ? plan.weights[l] : placeholder)
                try k.setArg(12 + 2 * l, l < plan.biases.count ? plan.biases[l] : placeholder)
                try k.setArg(19 + l, Self.code(l < plan.activations.count ? plan.activations[l] : .identity))
            }
            try k.setArg(23, Int32(softmax ? 1 : 0))
            try k.setArg(24, mode)
            try k.setArg(25, y)
            try k.setArg(26, predictions)
        }
    }

    /// Runs `enqueue` with the reusable device index buffer (at least `rows` int32), then downloads `rows`
    /// indices into `out`. The lock spans both, so concurrent callers cannot share the buffer.
    func withIndexBuffer(
        rows: Int, into out: UnsafeMutableBufferPointer<Int32>, _ enqueue: (CLBuffer) throws -> Void
    ) throws {
        try indices.withLock { (current: inout CLBuffer?) throws in
            let bytes = rows * MemoryLayout<Int32>.stride
            let buffer: CLBuffer
            if let existing = current, existing.byteCount >= bytes {
                buffer = existing
            } else {
                buffer = try CLBuffer(context: context, byteCount: Self.roundUp(bytes, 1 << 12))
                current = buffer
            }
            try enqueue(buffer)
            guard let p = out.baseAddress else { return }
            try queue.read(buffer, byteCount: bytes, into: p)
        }
    }

    /// Launches every kernel once, at the fixed local sizes real work uses, on tiny inputs, and waits.
    ///
    /// pocl compiles machine code per (kernel, local size) on the first launch and keeps it in
    /// POCL_CACHE_DIR; calling this once after installing (or after a cold build) moves that cost out of
    /// the first real batch of every later process. Results are discarded.
    public func warmUp() throws {
        let rows = tuning.tileRows + 1  // more than one row tile: the packed gemm path
        let a = try upload([Float](repeating: 0.5, count: rows * 3), rows: rows, cols: 3)
        let w = try upload([Float](repeating: 0.25, count: 3 * 2), rows: 3, cols: 2)
        let b = try upload([0, 1], rows: 1, cols: 2)
        let y = try makeMatrix(rows: rows, cols: 2)
        let one = try makeMatrix(rows: 1, cols: 2)
        try matmul(a, w, into: y)  // packs w: sn_pack_panels, sn_matmul_packed
        try affine(a, w, bias: b, activation: .sigmoid, into: y)
        let fresh = try upload([Float](repeating: 1, count: 6), rows: 3, cols: 2)
        let single = try upload([1, 2, 3], rows: 1, cols: 3)
        try matmul(single, fresh, into: one)  // one row: the row-major kernels
        try affine(single, fresh, bias: b, activation: .relu, into: one)
        try apply(.sigmoid, y, into: y)
        try softmaxRows(y, into: y)
        _ = try argmaxRows(y)
        let bytes = [UInt8](repeating: 128, count: rows * 3)
        try bytes.withUnsafeBufferPointer { try write(bytes: $0, dividedBy: 255, to: a) }
        var predictions = [Int32](repeating: 0, count: rows)
        let layers = [DenseLayer(weights: w, bias: b, activation: .identity)]
        _ = try predictions.withUnsafeMutableBufferPointer { try predict(a, layers: layers, softmax: true, into: $0) }
        _ = try forward(a, layers: layers, softmax: false, into: y)
        _ = try download(a)  // converts the bytes: sn_bytes_to_float
        try warmUpTraining()
        try synchronize()
    }

    /// Blocks until every enqueued op has finished (errors of earlier ops surface here or in `download`).
    public func synchronize() throws {
        try queue.finish()
    }

    // MARK: Helpers

    /// The storage of `m`, or a foreign-buffer error if another backend (or another OpenCL context) made it.
    func storage(_ m: DeviceMatrix, op: String) throws(BackendError) -> OpenCLStorage {
        guard let s = m.storage as? OpenCLStorage, s.context === context else {
            throw .foreignBuffer(op: op, expected: "\(device.id) (\(info.name))")
        }
        return s
    }

    /// The buffer to bind for `m` as an input: its own (with pending bytes converted first), or the
    /// placeholder when it is empty.
    func mem(_ m: DeviceMatrix, _ op: String) throws -> CLBuffer {
        let s = try storage(m, op: op)
        try materialize(s)
        return s.buffer ?? placeholder
    }

    /// The buffer to bind for `m` as an output that the op overwrites completely: no conversion of pending
    /// bytes (they are dropped), and the packed copy is dropped.
    func output(_ m: DeviceMatrix, _ op: String) throws -> CLBuffer {
        let s = try storage(m, op: op)
        written(m)
        return s.buffer ?? placeholder
    }

    /// Drops the packed copy and any pending bytes of a matrix that is about to be overwritten.
    func written(_ m: DeviceMatrix) {
        guard let s = m.storage as? OpenCLStorage else { return }
        s.packed.withLock { $0 = nil }
        s.bytes.withLock { $0.divisor = nil }
    }

    /// `b` packed into panels for a product with `reuseRows` rows: the cached copy if there is one, else a
    /// new one when packing pays (more than one row tile re-reads B), else nil (use the row-major kernel).
    func packedOperand(_ b: DeviceMatrix, reuseRows: Int) throws -> CLBuffer? {
        guard tuning.packedGEMM, b.count > 0 else { return nil }
        if let s = b.storage as? OpenCLStorage, let cached = s.packed.withLock({ $0 }) { return cached }
        guard reuseRows > tuning.tileRows else { return nil }
        return try packed(b)
    }

    /// `m` (K,M) packed into panels of SN_TN columns (sn_pack_panels), made once and cached with the matrix
    /// until it is written. The placeholder for an empty matrix; nil if the packed size exceeds int indexing.
    func packed(_ m: DeviceMatrix) throws -> CLBuffer? {
        let s = try storage(m, op: "pack")
        guard let source = s.buffer else { return placeholder }
        try materialize(s)
        let panels = (m.cols + tuning.tileCols - 1) / tuning.tileCols
        let (count, overflow) = (panels * tuning.tileCols).multipliedReportingOverflow(by: m.rows)
        guard !overflow, count < Int(Int32.max) else { return nil }
        return try s.packed.withLock { (cached: inout CLBuffer?) throws -> CLBuffer in
            if let cached { return cached }
            let buffer = try CLBuffer(context: context, byteCount: count * MemoryLayout<Float>.stride)
            // p (panels, K, SN_TN) = m (K, M) by column panels; one work-item per panel row
            try launch(packKernel, global: [Self.roundUp(panels * m.rows, tuning.packLocal)], local: [tuning.packLocal]) {
                k throws(OpenCLError) in
                try k.setArg(0, Int32(m.rows))
                try k.setArg(1, Int32(m.cols))
                try k.setArg(2, source)
                try k.setArg(3, buffer)
            }
            cached = buffer
            return buffer
        }
    }

    /// Sets arguments and enqueues under the launch lock (clSetKernelArg is not thread-safe per kernel), at
    /// exactly the local size given (from ``tuning``); `global` must be a multiple of it in every dimension.
    func launch(
        _ kernel: CLKernel, global: [Int], local: [Int], setArgs: (CLKernel) throws(OpenCLError) -> Void
    ) throws(OpenCLError) {
        // `local` is one of the effective tuning's local sizes, fitted to this kernel in init; it is never
        // replaced here (no driver-chosen local sizes: a launch runs the configuration a self-check ran).
        let size = local.reduce(1, *)
        guard size <= kernel.maxWorkGroupSize else {
            throw OpenCLError(
                code: CL_INVALID_WORK_GROUP_SIZE, call: "clEnqueueNDRangeKernel(\(kernel.name))",
                hint: "local size \(local) exceeds the kernel's CL_KERNEL_WORK_GROUP_SIZE \(kernel.maxWorkGroupSize) "
                    + "on \(info.name); launches must use OpenCLBackend.tuning's fitted local sizes")
        }
        launchLock.lock()
        defer { launchLock.unlock() }
        try setArgs(kernel)
        try queue.launch(kernel, global: global, local: local)
    }

    /// Global size of a gemm launch covering rows×cols outputs with SN_TM×SN_TN tiles.
    func gemmGlobal(rows: Int, cols: Int) -> [Int] {
        let colTiles = (cols + tuning.tileCols - 1) / tuning.tileCols
        let rowTiles = (rows + tuning.tileRows - 1) / tuning.tileRows
        return [Self.roundUp(colTiles, tuning.gemmLocal[0]), Self.roundUp(rowTiles, tuning.gemmLocal[1])]
    }

    static func roundUp(_ n: Int, _ multiple: Int) -> Int { (n + multiple - 1) / multiple * multiple }

    /// SN_ACT_* codes of sn_math.cl.
    static func code(_ activation: Activation) -> Int32 {
        switch activation {
        case .identity: return 0
        case .sigmoid: return 1
        case .relu: return 2
        }
    }
}
