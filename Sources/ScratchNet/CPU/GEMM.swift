// The CPU backend's GEMM: c (N,M) = a (N,K) · b (K,M) [+ bias, activation], register-blocked SIMD.
//
// Numerics (the contract in Backend.swift): every output starts at +0 and takes
// acc = fma(a[i][k], b[k][j], acc) for k = 0..<K in order. The kernel vectorises across j (8 columns per
// SIMD8 lane group) and across 6 rows of a; it never splits or reorders k, so tiles, tails, padding and
// threads cannot change a single bit. The epilogue adds the bias (affine only) and applies the activation
// with the Numerics SIMD8 formulas, which equal the scalar ones lane by lane.
//
// Layout: b is packed once into column panels of 16 (the last one 8 or 16 wide), each panel K × width
// contiguous and zero-padded, so the kernel loads b[k][j0..<j0+16] as two aligned SIMD8 and column tails
// need no scalar code (padded lanes are computed and not stored). The packed copy is cached in the
// CPUStorage of b and reused while b is unchanged — weights are packed once, not per batch.
// Micro-kernel: 6 rows × 16 columns = 12 SIMD8 accumulators (the BLIS Haswell shape); row tails use the
// same kernel instantiated for 1...5 rows. Rows are split across threads (WorkerPool) in blocks of 6 when
// the work is large enough to pay for the thread hand-off.

/// b (K,M) packed into column panels for the micro-kernel. Owns its memory.
final class PackedPanels: @unchecked Sendable {
    // @unchecked Sendable: immutable after init; only read by GEMM threads.

    /// K.
    let rows: Int
    /// M.
    let cols: Int
    /// The CPUStorage version the panels were packed from.
    let version: UInt64
    /// Panel p covers columns 16p ..< 16p + widths[p] (widths are 16, the last may be 8), stored as
    /// rows × widths[p] floats starting at `base + offsets[p]`, zero beyond column `cols`.
    let offsets: [Int]
    let widths: [Int]
    let base: UnsafeMutablePointer<Float>

    init(packing b: UnsafePointer<Float>, rows: Int, cols: Int, version: UInt64) {
        self.rows = rows
        self.cols = cols
        self.version = version
        var offsets: [Int] = []
        var widths: [Int] = []
        var total = 0
        var j0 = 0
        while j0 < cols {
            let remaining = cols - j0
            let w = remaining <= 8 ? 8 : 16
            offsets.append(total)
            widths.append(w)
            total += rows * w
            j0 += 16
        }
        self.offsets = offsets
        self.widths = widths
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: Swift.max(total * MemoryLayout<Float>.stride, 64), alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: Swift.max(total, 16))
        base.initialize(repeating: 0, count: total)
        for p in 0..<offsets.count {
            let panel = base + offsets[p]
            let w = widths[p]
            let jStart = 16 * p
            let valid = Swift.min(w, cols - jStart)
            for k in 0..<rows {
                // panel[k][0..<valid] = b[k][jStart..<jStart+valid]
                (panel + k * w).update(from: b + k * cols + jStart, count: valid)
            }
        }
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }
}

/// Raw pointers handed to GEMM worker threads.
struct GEMMArguments: @unchecked Sendable {
    // @unchecked Sendable: the pointers outlive the (synchronous) GEMM call; threads write disjoint rows of c.
    let a: UnsafePointer<Float>
    let n: Int
    let k: Int
    let m: Int
    let panels: PackedPanels
    /// nil for matmul (no add at all: adding +0 would turn -0 into +0).
    let bias: UnsafePointer<Float>?
    let activation: Activation
    let c: UnsafeMutablePointer<Float>
}

/// The register-blocked GEMM of ``CPUBackend``.
enum GEMM {
    /// Rows per micro-kernel call.
    static let mr = 6
    /// Below this many multiply-adds (N·K·M, ~10 µs on one core) one thread does all the work: handing
    /// chunks to the others costs more than it saves. The book network at batch 100 threads layers 1
    /// and 2 (measured: faster than threading layer 1 only).
    static let threadingThreshold = 1 << 18

    /// Runs the whole GEMM on the caller and up to `pool.workers` pool threads.
    static func run(_ args: GEMMArguments, pool: WorkerPool) {
        let blocks = (args.n + mr - 1) / mr
        guard blocks > 0, args.m > 0 else { return }
        let work = args.n * Swift.max(args.k, 1) * args.m
        let chunks = work < threadingThreshold ? 1 : Swift.min(pool.workers + 1, blocks)
        if chunks <= 1 {
            rows(args, from: 0, to: args.n)
            return
        }
        pool.run(chunks: chunks) { t in
            // Contiguous ranges of 6-row blocks, as even as possible.
            let b0 = blocks * t / chunks
            let b1 = blocks * (t + 1) / chunks
            rows(args, from: b0 * mr, to: Swift.min(b1 * mr, args.n))
        }
    }

    /// Computes output rows i0 ..< i1 (i0 a multiple of 6).
    static func rows(_ args: GEMMArguments, from i0: Int, to i1: Int) {
        let panels = args.panels
        var i = i0
        while i < i1 {
            let r = Swift.min(mr, i1 - i)
            let a = args.a + i * args.k
            let c = args.c + i * args.m
            for p in 0..<panels.offsets.count {
                let j0 = 16 * p
                let valid = Swift.min(panels.widths[p], args.m - j0)
                let b = UnsafePointer(panels.base + panels.offsets[p])
                if panels.widths[p] == 16 {
                    let bias = loadBias(args.bias, from: j0, count: valid, width: 16)
                    switch r {
                    case 6: kernel16(Rows6.self, a, args.k, b, c + j0, args.m, valid, bias, args.activation)
                    case 5: kernel16(Rows5.self, a, args.k, b, c + j0, args.m, valid, bias, args.activation)
                    case 4: kernel16(Rows4.self, a, args.k, b, c + j0, args.m, valid, bias, args.activation)
                    case 3: kernel16(Rows3.self, a, args.k, b, c + j0, args.m, valid, bias, args.activation)
                    case 2: kernel16(Rows2.self, a, args.k, b, c + j0, args.m, valid, bias, args.activation)
                    default: kernel16(Rows1.self, a, args.k, b, c + j0, args.m, valid, bias, args.activation)
                    }
                } else {
                    let bias = loadBias(args.bias, from: j0, count: valid, width: 8)
                    switch r {
                    case 6: kernel8(Rows6.self, a, args.k, b, c + j0, args.m, valid, bias?.0, args.activation)
                    case 5: kernel8(Rows5.self, a, args.k, b, c + j0, args.m, valid, bias?.0, args.activation)
                    case 4: kernel8(Rows4.self, a, args.k, b, c + j0, args.m, valid, bias?.0, args.activation)
                    case 3: kernel8(Rows3.self, a, args.k, b, c + j0, args.m, valid, bias?.0, args.activation)
                    case 2: kernel8(Rows2.self, a, args.k, b, c + j0, args.m, valid, bias?.0, args.activation)
                    default: kernel8(Rows1.self, a, args.k, b, c + j0, args.m, valid, bias?.0, args.activation)
                    }
                }
            }
            i += r
        }
    }

    /// bias[j0 ..< j0+count] as two SIMD8 (zero-padded), or nil when there is no bias.
    @inline(__always)
    static func loadBias(_ bias: UnsafePointer<Float>?, from j0: Int, count: Int, width: Int)
        -> (SIMD8<Float>, SIMD8<Float>)?
    {
        guard let bias else { return nil }
        var lo = SIMD8<Float>(), hi = SIMD8<Float>()
        for l in 0..<Swift.min(count, 8) { lo[l] = bias[j0 + l] }
        if count > 8 { for l in 0..<(count - 8) { hi[l] = bias[j0 + 8 + l] } }
        return (lo, hi)
    }

    /// Bias add (if any), then the activation (identity included: it canonicalises NaN), on one SIMD8.
    @inline(__always)
    static func finish(_ acc: SIMD8<Float>, _ bias: SIMD8<Float>?, _ activation: Activation) -> SIMD8<Float> {
        var v = acc
        if let bias { v = v + bias }
        return Numerics.activate(v, activation)
    }

    /// Stores lanes 0 ..< count (≤ 8) of v at p.
    @inline(__always)
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        if count >= 8 {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
        } else {
            for l in 0..<count { p[l] = v[l] }
        }
    }

    /// Stores one row of a 16-wide tile: `valid` (1...16) columns.
    @inline(__always)
    static func storeRow16(
        _ lo: SIMD8<Float>, _ hi: SIMD8<Float>, _ c: UnsafeMutablePointer<Float>, _ valid: Int,
        _ bias: (SIMD8<Float>, SIMD8<Float>)?, _ activation: Activation
    ) {
        store(finish(lo, bias?.0, activation), c, valid)
        if valid > 8 { store(finish(hi, bias?.1, activation), c + 8, valid - 8) }
    }

    /// R = Rows.value (1...6) rows × one 16-wide panel: c[r][0..<valid] for r < R. Generic over the row
    /// count so each R is specialised with a constant: the unused accumulators and branches fold away.
    @inline(__always)
    static func kernel16<Rows: RowCount>(
        _: Rows.Type, _ a: UnsafePointer<Float>, _ K: Int, _ b: UnsafePointer<Float>,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ valid: Int,
        _ bias: (SIMD8<Float>, SIMD8<Float>)?, _ activation: Activation
    ) {
        let R = Rows.value
        // Row pointers of a; rows ≥ R alias row 0 (never read: their code is folded away).
        let a0 = a
        let a1 = R > 1 ? a + K : a
        let a2 = R > 2 ? a + 2 * K : a
        let a3 = R > 3 ? a + 3 * K : a
        let a4 = R > 4 ? a + 4 * K : a
        let a5 = R > 5 ? a + 5 * K : a
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>()
        var c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>()
        var c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
        var c40 = SIMD8<Float>(), c41 = SIMD8<Float>()
        var c50 = SIMD8<Float>(), c51 = SIMD8<Float>()
        let braw = UnsafeRawPointer(b)
        for k in 0..<K {
            // x (R,1) · b[k] (1,16) accumulated into the (R,16) tile
            let b0 = braw.load(fromByteOffset: k &* 64, as: SIMD8<Float>.self)
            let b1 = braw.load(fromByteOffset: k &* 64 &+ 32, as: SIMD8<Float>.self)
            let x0 = SIMD8<Float>(repeating: a0[k])
            c00 = c00.addingProduct(x0, b0)
            c01 = c01.addingProduct(x0, b1)
            if R > 1 {
                let x1 = SIMD8<Float>(repeating: a1[k])
                c10 = c10.addingProduct(x1, b0)
                c11 = c11.addingProduct(x1, b1)
            }
            if R > 2 {
                let x2 = SIMD8<Float>(repeating: a2[k])
                c20 = c20.addingProduct(x2, b0)
                c21 = c21.addingProduct(x2, b1)
            }
            if R > 3 {
                let x3 = SIMD8<Float>(repeating: a3[k])
                c30 = c30.addingProduct(x3, b0)
                c31 = c31.addingProduct(x3, b1)
            }
            if R > 4 {
                let x4 = SIMD8<Float>(repeating: a4[k])
                c40 = c40.addingProduct(x4, b0)
                c41 = c41.addingProduct(x4, b1)
            }
            if R > 5 {
                let x5 = SIMD8<Float>(repeating: a5[k])
                c50 = c50.addingProduct(x5, b0)
                c51 = c51.addingProduct(x5, b1)
            }
        }
        storeRow16(c00, c01, c, valid, bias, activation)
        if R > 1 { storeRow16(c10, c11, c + ldc, valid, bias, activation) }
        if R > 2 { storeRow16(c20, c21, c + 2 * ldc, valid, bias, activation) }
        if R > 3 { storeRow16(c30, c31, c + 3 * ldc, valid, bias, activation) }
        if R > 4 { storeRow16(c40, c41, c + 4 * ldc, valid, bias, activation) }
        if R > 5 { storeRow16(c50, c51, c + 5 * ldc, valid, bias, activation) }
    }

    /// R (1...6) rows × one 8-wide panel (the last panel when ≤ 8 columns remain).
    @inline(__always)
    static func kernel8<Rows: RowCount>(
        _: Rows.Type, _ a: UnsafePointer<Float>, _ K: Int, _ b: UnsafePointer<Float>,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ valid: Int,
        _ bias: SIMD8<Float>?, _ activation: Activation
    ) {
        let R = Rows.value
        let a0 = a
        let a1 = R > 1 ? a + K : a
        let a2 = R > 2 ? a + 2 * K : a
        let a3 = R > 3 ? a + 3 * K : a
        let a4 = R > 4 ? a + 4 * K : a
        let a5 = R > 5 ? a + 5 * K : a
        var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>()
        var c3 = SIMD8<Float>(), c4 = SIMD8<Float>(), c5 = SIMD8<Float>()
        let braw = UnsafeRawPointer(b)
        for k in 0..<K {
            // x (R,1) · b[k] (1,8) accumulated into the (R,8) tile
            let b0 = braw.load(fromByteOffset: k &* 32, as: SIMD8<Float>.self)
            c0 = c0.addingProduct(SIMD8(repeating: a0[k]), b0)
            if R > 1 { c1 = c1.addingProduct(SIMD8(repeating: a1[k]), b0) }
            if R > 2 { c2 = c2.addingProduct(SIMD8(repeating: a2[k]), b0) }
            if R > 3 { c3 = c3.addingProduct(SIMD8(repeating: a3[k]), b0) }
            if R > 4 { c4 = c4.addingProduct(SIMD8(repeating: a4[k]), b0) }
            if R > 5 { c5 = c5.addingProduct(SIMD8(repeating: a5[k]), b0) }
        }
        store(finish(c0, bias, activation), c, valid)
        if R > 1 { store(finish(c1, bias, activation), c + ldc, valid) }
        if R > 2 { store(finish(c2, bias, activation), c + 2 * ldc, valid) }
        if R > 3 { store(finish(c3, bias, activation), c + 3 * ldc, valid) }
        if R > 4 { store(finish(c4, bias, activation), c + 4 * ldc, valid) }
        if R > 5 { store(finish(c5, bias, activation), c + 5 * ldc, valid) }
    }
}

/// A compile-time row count for the micro-kernels (a generic parameter, so each count gets its own
/// specialised kernel with no run-time row branches in the k loop).
protocol RowCount { static var value: Int { get } }
enum Rows1: RowCount { static var value: Int { 1 } }
enum Rows2: RowCount { static var value: Int { 2 } }
enum Rows3: RowCount { static var value: Int { 3 } }
enum Rows4: RowCount { static var value: Int { 4 } }
enum Rows5: RowCount { static var value: Int { 5 } }
enum Rows6: RowCount { static var value: Int { 6 } }
