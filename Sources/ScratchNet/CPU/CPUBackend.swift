// CPUBackend: the pure-Swift CPU implementation of the Backend protocol (SIMD8 + worker threads, no
// BLAS, no C). It is the reference device for parity: every other backend must reproduce its bits. The
// GEMM lives in GEMM.swift, the fused whole-network forward in Fused.swift; element-wise ops, softmax and
// argmax are here.

import Foundation

/// The pure-Swift CPU backend: SIMD8 micro-kernels and worker threads, bitwise identical to
/// ``Reference`` and, through the numerics contract, to every OpenCL device with parity.
public final class CPUBackend: Backend {
    /// Number of threads a large GEMM is split across.
    public let threads: Int
    /// "Swift CPU", type "host", platform "pure Swift, N threads", bitwise parity guaranteed.
    public let device: DeviceDescription
    /// threads - 1 parked worker threads (started on the first large GEMM); the caller is the last one.
    let pool: WorkerPool
    /// Per-thread working memory (packed A blocks, fused-forward activations), reused across calls.
    let scratch = ScratchPool()

    /// Creates a CPU backend using `threads` threads for large matrix products (default: the number of
    /// active cores; values below 1 count as 1). Results do not depend on the thread count.
    public init(threads: Int? = nil) {
        let n = Swift.max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        self.threads = n
        self.pool = WorkerPool(workers: n - 1)
        self.device = DeviceDescription(
            kind: .cpu, name: "Swift CPU", type: "host",
            platform: "pure Swift, \(n) thread\(n == 1 ? "" : "s")", parity: .guaranteed)
        _ = CPUBackend.fmaWarningShown
    }

    /// Prints ``FusedMultiplyAddCodegen/warning`` to stderr the first time a CPU backend is made in a process
    /// (a static `let` runs once), unless SCRATCHNET_NO_FMA_WARNING=1.
    private static let fmaWarningShown: Bool = {
        guard let warning = FusedMultiplyAddCodegen.current.warning,
            ProcessInfo.processInfo.environment["SCRATCHNET_NO_FMA_WARNING"] != "1"
        else { return false }
        FileHandle.standardError.write(Data((warning + "\n").utf8))
        return true
    }()

    // MARK: Memory

    public func makeMatrix(rows: Int, cols: Int) throws -> DeviceMatrix {
        guard rows >= 0, cols >= 0 else {
            throw BackendError.shapeMismatch("makeMatrix: negative shape (\(rows),\(cols))")
        }
        let (count, overflow) = rows.multipliedReportingOverflow(by: cols)
        guard !overflow, count <= Int.max / 8 else {
            throw BackendError.shapeMismatch("makeMatrix: shape (\(rows),\(cols)) is too large")
        }
        return DeviceMatrix(rows: rows, cols: cols, storage: CPUStorage(count: count))
    }

    public func upload(_ tensor: Tensor) throws -> DeviceMatrix {
        let (rows, cols) = try ShapeCheck.upload(tensor)
        let m = try makeMatrix(rows: rows, cols: cols)
        let s = try storage(m, op: "upload")
        tensor.scalars.withUnsafeBufferPointer { src in
            if let p = src.baseAddress { s.base.update(from: p, count: s.count) }
        }
        s.didWrite()
        return m
    }

    public func write(_ values: UnsafeBufferPointer<Float>, to matrix: DeviceMatrix) throws {
        let s = try storage(matrix, op: "write")
        try ShapeCheck.write(values.count, "values", to: matrix, op: "write")
        if let p = values.baseAddress { s.base.update(from: p, count: s.count) }
        s.didWrite()
    }

    public func write(bytes: UnsafeBufferPointer<UInt8>, dividedBy divisor: Float, to matrix: DeviceMatrix) throws {
        let s = try storage(matrix, op: "write(bytes:)")
        try ShapeCheck.write(bytes.count, "bytes", to: matrix, op: "write(bytes:)")
        guard let base = bytes.baseAddress else { return }
        let io = ByteConversion(src: base, dst: s.base)
        let n = bytes.count
        // Float(byte) / divisor, 8 lanes at a time (vcvtdq2ps + vdivps), split across the pool when large.
        let chunks = n < (1 << 16) ? 1 : pool.workers + 1
        let body: @Sendable (Int) -> Void = { t in
            let src = io.src, dst = io.dst
            let lo = n * t / chunks / 8 * 8
            let hi = t == chunks - 1 ? n : n * (t + 1) / chunks / 8 * 8
            let d = SIMD8<Float>(repeating: divisor)
            var i = lo
            while i + 8 <= hi {
                let raw = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<UInt8>.self)
                let v = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: raw)) / d
                UnsafeMutableRawPointer(dst + i).storeBytes(of: v, as: SIMD8<Float>.self)
                i += 8
            }
            while i < hi { dst[i] = Float(src[i]) / divisor; i += 1 }
        }
        if chunks == 1 { body(0) } else { pool.run(chunks: chunks, body) }
        s.didWrite()
    }

    public func read(_ matrix: DeviceMatrix, into values: UnsafeMutableBufferPointer<Float>) throws {
        let s = try storage(matrix, op: "read")
        try ShapeCheck.write(values.count, "floats of host memory", to: matrix, op: "read")
        if let p = values.baseAddress { p.update(from: s.base, count: s.count) }
    }

    public func download(_ matrix: DeviceMatrix) throws -> Tensor {
        let s = try storage(matrix, op: "download")
        return try Tensor(shape: [matrix.rows, matrix.cols], scalars: Array(s.buffer))
    }

    // MARK: Matrix products

    public func matmul(_ a: DeviceMatrix, _ b: DeviceMatrix, into c: DeviceMatrix) throws {
        try ShapeCheck.matmul(a, b, c)
        try gemm(a, b, bias: nil, activation: .identity, into: c, op: "matmul")
    }

    public func affine(
        _ x: DeviceMatrix, _ w: DeviceMatrix, bias: DeviceMatrix, activation: Activation,
        into y: DeviceMatrix
    ) throws {
        try ShapeCheck.affine(x, w, bias, y)
        try gemm(x, w, bias: bias, activation: activation, into: y, op: "affine")
    }

    private func gemm(
        _ a: DeviceMatrix, _ b: DeviceMatrix, bias: DeviceMatrix?, activation: Activation,
        into c: DeviceMatrix, op: String
    ) throws {
        let sa = try storage(a, op: op), sb = try storage(b, op: op), sc = try storage(c, op: op)
        let sBias = try bias.map { try storage($0, op: op) }
        guard sc !== sa, sc !== sb, sc !== sBias else {
            throw BackendError.shapeMismatch("\(op): the output must not be one of the inputs")
        }
        let problem = GEMMProblem(
            a: UnsafePointer(sa.base), lda: a.cols, n: a.rows, panels: sb.packed(rows: b.rows, cols: b.cols),
            bias: sBias.map { UnsafePointer($0.base) }, activation: activation, c: sc.base, ldc: c.cols)
        GEMM.run(problem, pool: pool, scratch: scratch)
        sc.didWrite()
    }

    // MARK: Element-wise, softmax, argmax

    public func apply(_ activation: Activation, _ x: DeviceMatrix, into y: DeviceMatrix) throws {
        try ShapeCheck.sameShape(x, y, op: "apply")
        let sx = try storage(x, op: "apply"), sy = try storage(y, op: "apply")
        // Element-wise, so y may be x: each value is read before the same index is written.
        let src = sx.base, dst = sy.base, n = x.count
        var i = 0
        switch activation {
        case .identity:
            // A copy, except that any NaN becomes the canonical NaN (as every op output).
            while i + 8 <= n {
                store8(Numerics.canonical(load8(src + i)), dst + i)
                i += 8
            }
            while i < n { dst[i] = Numerics.canonical(src[i]); i += 1 }
        case .sigmoid:
            while i + 8 <= n {
                store8(Numerics.sigmoid(load8(src + i)), dst + i)
                i += 8
            }
            while i < n { dst[i] = Numerics.sigmoid(src[i]); i += 1 }
        case .relu:
            while i + 8 <= n {
                store8(Numerics.relu(load8(src + i)), dst + i)
                i += 8
            }
            while i < n { dst[i] = Numerics.relu(src[i]); i += 1 }
        }
        sy.didWrite()
    }

    public func softmaxRows(_ x: DeviceMatrix, into y: DeviceMatrix) throws {
        try ShapeCheck.sameShape(x, y, op: "softmaxRows")
        let sx = try storage(x, op: "softmaxRows"), sy = try storage(y, op: "softmaxRows")
        let cols = x.cols
        for r in 0..<x.rows {
            CPUBackend.softmaxRow(UnsafePointer(sx.base + r * cols), sy.base + r * cols, cols)
        }
        sy.didWrite()
    }

    /// ``Numerics/softmax(_:)`` of one row from `src` into `dst` (which may be `src`), with the exps and
    /// divisions 8 at a time (same bits per lane); the max and the sum stay sequential, left to right.
    static func softmaxRow(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ cols: Int) {
        var m = -Float.infinity
        for j in 0..<cols where src[j] > m { m = src[j] }
        var j = 0
        let mv = SIMD8<Float>(repeating: m)
        while j + 8 <= cols {
            store8(Numerics.exp(load8(src + j) - mv), dst + j)
            j += 8
        }
        while j < cols { dst[j] = Numerics.exp(src[j] - m); j += 1 }
        var s: Float = 0
        for j in 0..<cols { s += dst[j] }
        let sv = SIMD8<Float>(repeating: s)
        j = 0
        while j + 8 <= cols {
            store8(Numerics.canonical(load8(dst + j) / sv), dst + j)
            j += 8
        }
        while j < cols { dst[j] = Numerics.canonical(dst[j] / s); j += 1 }
    }

    public func argmaxRows(_ x: DeviceMatrix) throws -> [Int] {
        let s = try storage(x, op: "argmaxRows")
        let cols = x.cols
        return (0..<x.rows).map { r in
            Numerics.argmax(UnsafeBufferPointer(start: s.base + r * cols, count: cols))
        }
    }

    // MARK: Helpers

    /// The CPU storage of `m`, or `foreignBuffer` if another backend made it.
    func storage(_ m: DeviceMatrix, op: String) throws -> CPUStorage {
        guard let s = m.storage as? CPUStorage else {
            throw BackendError.foreignBuffer(op: op, expected: "CPU")
        }
        guard s.count == m.count else {
            throw BackendError.shapeMismatch(
                "\(op): matrix \(m.shapeDescription) wraps CPU storage of \(s.count) floats, not \(m.count)")
        }
        return s
    }
}

/// Raw pointers of one write(bytes:) handed to worker threads (each writes a disjoint range).
private struct ByteConversion: @unchecked Sendable {
    let src: UnsafePointer<UInt8>
    let dst: UnsafeMutablePointer<Float>
}

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
