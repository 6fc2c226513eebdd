// OpenCLBackend: the Backend protocol on one OpenCL device — buffers stay on the device, ops are enqueued on
// one in-order queue, and `download` blocks until everything before it has finished. The kernels
// (Kernels/*.cl) follow the numerics contract, so on a device with parity the results are bitwise those
// of the CPU path.

import COpenCL
import Foundation
import ScratchNet
import Synchronization

/// Device memory of an ``OpenCLBackend``: one cl_mem, or none for an empty matrix (OpenCL has no
/// zero-byte buffers).
final class OpenCLStorage: DeviceStorage, Sendable {
    /// nil when `count == 0`.
    let buffer: CLBuffer?
    /// Number of floats.
    let count: Int
    /// The context the buffer belongs to (identifies the owning backend).
    let context: CLContext

    init(buffer: CLBuffer?, count: Int, context: CLContext) {
        self.buffer = buffer
        self.count = count
        self.context = context
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

    /// Rows (SN_TM) and columns (SN_TN) of the register tile each gemm work-item computes.
    static let tileRows = 6
    static let tileCols = 16
    /// Fixed local sizes (pocl compiles per local size, so they never change with the problem size).
    static let gemmLocal = [1, 8]
    static let rowLocal = [8]
    static let elementLocal = [64]

    let context: CLContext
    let queue: CLQueue
    let matmulKernel: CLKernel
    let affineKernel: CLKernel
    let applyKernel: CLKernel
    let bytesKernel: CLKernel
    let softmaxKernel: CLKernel
    let argmaxKernel: CLKernel
    /// Bound to kernel arguments for empty matrices (a kernel argument must be a valid buffer).
    let placeholder: CLBuffer
    /// Serialises clSetKernelArg + clEnqueueNDRangeKernel (kernel objects are shared).
    let launchLock = NSLock()
    /// Device buffer that bytes are uploaded into before `sn_bytes_to_float`, grown on demand and reused.
    /// The lock spans the upload and the conversion launch, so concurrent writers cannot overwrite it
    /// before the conversion (queued right after the upload on the in-order queue) has read it.
    let staging = Mutex<CLBuffer?>(nil)

    /// Opens device `deviceIndex` (see ``OpenCLDevices/enumerate()``) and builds the kernels from
    /// `kernelDirectory` if given, else from the folder in `SCRATCHNET_KERNELS` if set, else from the
    /// sources embedded at build time.
    public init(deviceIndex: Int, kernelDirectory: URL? = nil) throws {
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

        let sources = KernelSources(kernelDirectory: kernelDirectory)
        kernelOrigin = sources.origin
        let ctx = try CLContext(device: dev.device)
        context = ctx
        queue = try CLQueue(context: ctx)

        let options = KernelSources.buildOptions(
            correctlyRoundedDivide: dev.info.floatCapabilities.contains("correctly rounded divide/sqrt"),
            defines: [("SN_TM", Self.tileRows), ("SN_TN", Self.tileCols)])
        func build(_ file: String) throws -> CLProgram {
            try CLProgram(
                context: ctx, source: try sources.programSource(for: file), options: options,
                fileName: sources.displayName(of: file))
        }
        let gemm = try build("gemm.cl")
        matmulKernel = try CLKernel(program: gemm, name: "sn_matmul")
        affineKernel = try CLKernel(program: gemm, name: "sn_affine")
        let elementwise = try build("activation.cl")
        applyKernel = try CLKernel(program: elementwise, name: "sn_apply")
        bytesKernel = try CLKernel(program: elementwise, name: "sn_bytes_to_float")
        softmaxKernel = try CLKernel(program: try build("softmax.cl"), name: "sn_softmax_rows")
        argmaxKernel = try CLKernel(program: try build("argmax.cl"), name: "sn_argmax_rows")
        placeholder = try CLBuffer(context: ctx, byteCount: 64)
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
            throw BackendError.device(
                "makeMatrix: (\(rows),\(cols)) needs \(bytes) bytes but the largest buffer \(device.id) "
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
        guard let buffer = s.buffer, let base = values.baseAddress else { return }
        try queue.write(base, byteCount: values.count * MemoryLayout<Float>.stride, to: buffer)
    }

    public func write(bytes: UnsafeBufferPointer<UInt8>, dividedBy divisor: Float, to matrix: DeviceMatrix) throws {
        let s = try storage(matrix, op: "write(bytes:)")
        try ShapeCheck.write(bytes.count, "bytes", to: matrix, op: "write(bytes:)")
        guard let buffer = s.buffer, let base = bytes.baseAddress else { return }
        try staging.withLock { (stage: inout CLBuffer?) throws in
            let current: CLBuffer
            if let existing = stage, existing.byteCount >= bytes.count {
                current = existing
            } else {
                current = try CLBuffer(context: context, byteCount: Self.roundUp(bytes.count, 1 << 16))
                stage = current
            }
            try queue.write(base, byteCount: bytes.count, to: current)
            // y (n) = float(x (n) bytes) / divisor, one work-item per element
            try launch(bytesKernel, global: [Self.roundUp(bytes.count, Self.elementLocal[0])], local: Self.elementLocal) {
                k throws(OpenCLError) in
                try k.setArg(0, Int32(bytes.count))
                try k.setArg(1, divisor)
                try k.setArg(2, current)
                try k.setArg(3, buffer)
            }
        }
    }

    public func read(_ matrix: DeviceMatrix, into values: UnsafeMutableBufferPointer<Float>) throws {
        let s = try storage(matrix, op: "read")
        try ShapeCheck.write(values.count, "floats of host memory", to: matrix, op: "read")
        guard let buffer = s.buffer, let p = values.baseAddress else {
            try queue.finish()
            return
        }
        try queue.read(buffer, byteCount: values.count * MemoryLayout<Float>.stride, into: p)
    }

    public func download(_ matrix: DeviceMatrix) throws -> Tensor {
        let s = try storage(matrix, op: "download")
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
        let (ab, bb, cb) = (try mem(a, "matmul"), try mem(b, "matmul"), try mem(c, "matmul"))
        guard c.count > 0 else { return }
        // c (N,M) = a (N,K) · b (K,M); one work-item per SN_TM×SN_TN tile of c
        try launch(matmulKernel, global: gemmGlobal(rows: c.rows, cols: c.cols), local: Self.gemmLocal) { k throws(OpenCLError) in
            try k.setArg(0, Int32(a.rows))
            try k.setArg(1, Int32(a.cols))
            try k.setArg(2, Int32(b.cols))
            try k.setArg(3, ab)
            try k.setArg(4, bb)
            try k.setArg(5, cb)
        }
    }

    public func affine(
        _ x: DeviceMatrix, _ w: DeviceMatrix, bias: DeviceMatrix, activation: Activation, into y: DeviceMatrix
    ) throws {
        try ShapeCheck.affine(x, w, bias, y)
        let (xb, wb, bb, yb) = (try mem(x, "affine"), try mem(w, "affine"), try mem(bias, "affine"), try mem(y, "affine"))
        guard y.count > 0 else { return }
        // y (N,M) = act(x (N,K) · w (K,M) + bias (1,M)); one work-item per SN_TM×SN_TN tile of y
        try launch(affineKernel, global: gemmGlobal(rows: y.rows, cols: y.cols), local: Self.gemmLocal) { k throws(OpenCLError) in
            try k.setArg(0, Int32(x.rows))
            try k.setArg(1, Int32(x.cols))
            try k.setArg(2, Int32(w.cols))
            try k.setArg(3, xb)
            try k.setArg(4, wb)
            try k.setArg(5, bb)
            try k.setArg(6, Self.code(activation))
            try k.setArg(7, yb)
        }
    }

    public func apply(_ activation: Activation, _ x: DeviceMatrix, into y: DeviceMatrix) throws {
        try ShapeCheck.sameShape(x, y, op: "apply")
        let (xb, yb) = (try mem(x, "apply"), try mem(y, "apply"))
        guard x.count > 0 else { return }
        if activation == .identity && x === y { return }
        // y (N,M) = act(x (N,M)), one work-item per element
        try launch(applyKernel, global: [Self.roundUp(x.count, Self.elementLocal[0])], local: Self.elementLocal) { k throws(OpenCLError) in
            try k.setArg(0, Int32(x.count))
            try k.setArg(1, Self.code(activation))
            try k.setArg(2, xb)
            try k.setArg(3, yb)
        }
    }

    public func softmaxRows(_ x: DeviceMatrix, into y: DeviceMatrix) throws {
        try ShapeCheck.sameShape(x, y, op: "softmaxRows")
        let (xb, yb) = (try mem(x, "softmaxRows"), try mem(y, "softmaxRows"))
        guard x.count > 0 else { return }
        // y (N,M) = softmax of each row of x (N,M), one work-item per row
        try launch(softmaxKernel, global: [Self.roundUp(x.rows, Self.rowLocal[0])], local: Self.rowLocal) { k throws(OpenCLError) in
            try k.setArg(0, Int32(x.rows))
            try k.setArg(1, Int32(x.cols))
            try k.setArg(2, xb)
            try k.setArg(3, yb)
        }
    }

    public func argmaxRows(_ x: DeviceMatrix) throws -> [Int] {
        let xb = try mem(x, "argmaxRows")
        guard x.rows > 0 else { return [] }
        let out = try CLBuffer(context: context, byteCount: x.rows * MemoryLayout<Int32>.stride)
        // out (N) = index of the largest value of each row of x (N,M), one work-item per row
        try launch(argmaxKernel, global: [Self.roundUp(x.rows, Self.rowLocal[0])], local: Self.rowLocal) { k throws(OpenCLError) in
            try k.setArg(0, Int32(x.rows))
            try k.setArg(1, Int32(x.cols))
            try k.setArg(2, xb)
            try k.setArg(3, out)
        }
        var indices = [Int32](repeating: 0, count: x.rows)
        try indices.withUnsafeMutableBytes { raw in
            guard let p = raw.baseAddress else { return }
            try queue.read(out, byteCount: raw.count, into: p)
        }
        return indices.map { Int($0) }
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

    /// The buffer to bind for `m`: its own, or the placeholder when it is empty.
    func mem(_ m: DeviceMatrix, _ op: String) throws(BackendError) -> CLBuffer {
        try storage(m, op: op).buffer ?? placeholder
    }

    /// Sets arguments and enqueues under the launch lock (clSetKernelArg is not thread-safe per kernel).
    func launch(
        _ kernel: CLKernel, global: [Int], local: [Int], setArgs: (CLKernel) throws(OpenCLError) -> Void
    ) throws(OpenCLError) {
        launchLock.lock()
        defer { launchLock.unlock() }
        try setArgs(kernel)
        // A device may allow smaller work-groups for this kernel than our fixed size: then let it choose.
        let fits = local.reduce(1, *) <= kernel.maxWorkGroupSize
        try queue.launch(kernel, global: global, local: fits ? local : nil)
    }

    /// Global size of a gemm launch covering rows×cols outputs with SN_TM×SN_TN tiles.
    func gemmGlobal(rows: Int, cols: Int) -> [Int] {
        let colTiles = (cols + Self.tileCols - 1) / Self.tileCols
        let rowTiles = (rows + Self.tileRows - 1) / Self.tileRows
        return [Self.roundUp(colTiles, Self.gemmLocal[0]), Self.roundUp(rowTiles, Self.gemmLocal[1])]
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
