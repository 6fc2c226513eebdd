// The CPU backend's GEMM: c (N,M) = a (N,K) · b (K,M) [+ bias, activation], cache-blocked (BLIS-style),
// register-blocked SIMD8, split across the backend's threads.
//
// Numerics (the contract in Backend.swift): every output starts at +0 and takes
// acc = fma(a[i][k], b[k][j], acc) for k = 0..<K in order. The micro-kernels vectorise across j (8 columns
// per SIMD8) and across rows of a; they never split or reorder k. K blocking keeps the order too: block
// k0..<k1 accumulates into c (float32, exactly what the register held), the next block reloads c and
// continues with k1 — the same sequence of fma on the same float32 accumulator. Bias, activation and the
// canonical NaN are applied only after the last K block. Tiles, tails, padding, packing, blocking and
// threads therefore cannot change a single bit.
//
// Layout: b is packed once into 8-column panels (panel p = columns 8p..<8p+8, K × 8 contiguous, zero
// beyond column M); the packed copy is cached in b's CPUStorage and reused while b is unchanged, so weights
// are packed once, not per batch. A K block of a panel is a contiguous slice of it, so K blocking needs no
// repacking of b. a is used in place (row pointers), or — for large products, where TLB and cache-set
// conflicts of long rows hurt — packed per (MC × KC) block into 6-row micro-panels (k-major).
//
// Loops (per piece of rows or columns): for each NC group of panels, for each K block (KC), for each MC
// block of rows (packed A): for each pair of panels (the KC × 16 slice of b stays in cache while the
// micro-panels of a stream past it): for each 6-row micro-panel: the 6 × 16 micro-kernel (12 SIMD8
// accumulators, the BLIS Haswell shape; a lone last 8-column panel uses 12 × 8). Row tails (1...5 rows: batch 1, batch 7, ...) use wider kernels instead — R rows × up to 12/R
// SIMD8 column vectors — so that even a single row keeps enough independent fma chains in flight.
//
// Training (Training.swift): the weight gradient xᵀ · dout reads its left operand aᵀ in place
// (`transposedA`: the rows of a micro-panel are adjacent floats of one row of x, so the same kernels apply with
// strides 1 and lda), or packs it from there (packAT) when a is packed; a partial last panel (the book's 50
// columns) is done by `columnTail`, vectorised across rows instead of columns. The input gradient dout · Wᵀ
// packs Wᵀ into panels per call, in scratch memory. Each output still takes its k terms in order.
//
// Threads: a product of at least `threadingThreshold` multiply-adds is split into a few pieces per thread:
// by rows (6-row blocks) when there are enough rows, else by panels; the caller and the pool threads claim
// pieces until none is left. Each piece packs its own A in its thread's scratch; b is shared read-only; the
// only synchronisation is one lock per claimed piece and the final join.

/// b (K,M) packed into 8-column panels for the micro-kernels. Owns its memory (the cached packing of a
/// weight matrix) or borrows a thread's scratch memory (per-call packings of the training ops).
final class PackedPanels: @unchecked Sendable {
    // @unchecked Sendable: immutable after init; only read by GEMM threads.

    /// K.
    let rows: Int
    /// M.
    let cols: Int
    /// The CPUStorage version the panels were packed from.
    let version: UInt64
    /// Number of panels, ceil(M / 8).
    let count: Int
    /// Panel p starts at `base + p * stride` and holds rows × 8 floats (row k at k * 8), zero beyond `cols`.
    let base: UnsafeMutablePointer<Float>

    /// Whether `base` was allocated here (freed on deinit) or borrowed from scratch memory.
    private let owned: Bool

    /// Floats per panel (K × 8).
    var stride: Int { rows * 8 }

    /// Floats of panels for a rows × cols matrix (at least 16, like every allocation here).
    static func floats(rows: Int, cols: Int) -> Int { Swift.max((cols + 7) / 8 * rows * 8, 16) }

    init(packing b: UnsafePointer<Float>, rows: Int, cols: Int, version: UInt64) {
        self.rows = rows
        self.cols = cols
        self.version = version
        owned = true
        count = (cols + 7) / 8
        let total = PackedPanels.floats(rows: rows, cols: cols)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: total * MemoryLayout<Float>.stride, alignment: 64)
        // No zero fill first: `pack` writes every float of every panel (the 16-float minimum of an empty
        // matrix is never read).
        base = raw.bindMemory(to: Float.self, capacity: total)
        PackedPanels.pack(b, rows: rows, cols: cols, into: base)
    }

    /// Packs b (rows, cols) like ``init(packing:rows:cols:version:)`` but into `memory`
    /// (``floats(rows:cols:)`` floats, borrowed: it must outlive these panels), for a right operand that
    /// changes on every call (the output gradient of the weight gradient xᵀ · dout); not cached (version 0).
    init(packing b: UnsafePointer<Float>, rows: Int, cols: Int, into memory: UnsafeMutablePointer<Float>) {
        self.rows = rows
        self.cols = cols
        self.version = 0
        owned = false
        count = (cols + 7) / 8
        base = memory
        PackedPanels.pack(b, rows: rows, cols: cols, into: base)
    }

    /// The panels of b (rows, cols) at `base`; the lanes beyond `cols` of the last panel are zeroed.
    private static func pack(_ b: UnsafePointer<Float>, rows: Int, cols: Int, into base: UnsafeMutablePointer<Float>) {
        let count = (cols + 7) / 8
        for p in 0..<count {
            let panel = base + p * rows * 8
            let j0 = 8 * p
            let valid = Swift.min(8, cols - j0)
            for k in 0..<rows {
                // panel[k][0..<valid] = b[k][j0..<j0+valid], zero beyond
                let src = b + k * cols + j0
                UnsafeMutableRawPointer(panel + k * 8).storeBytes(
                    of: GEMM.loadPartial(src, valid), as: SIMD8<Float>.self)
            }
        }
    }

    /// Packs bᵀ, for b (cols, rows) row-major, into `memory` (``floats(rows:cols:)`` floats, borrowed: it
    /// must outlive these panels): panel p row k holds b[8p ..< 8p+8][k], zero beyond `cols`. For the
    /// matmul a · bᵀ (the input gradient dout · Wᵀ); the panels are not cached (version 0).
    init(transposing b: UnsafePointer<Float>, rows: Int, cols: Int, into memory: UnsafeMutablePointer<Float>) {
        self.rows = rows
        self.cols = cols
        self.version = 0
        owned = false
        count = (cols + 7) / 8
        base = memory
        for p in 0..<count {
            let panel = base + p * rows * 8
            let j0 = 8 * p
            let valid = Swift.min(8, cols - j0)
            if valid == 8 {
                // panel[k][0..<8] = b[j0 ..< j0+8][k]: eight rows of b read side by side, one vector stored per k
                let r0 = b + j0 * rows, r1 = r0 + rows, r2 = r1 + rows, r3 = r2 + rows
                let r4 = r3 + rows, r5 = r4 + rows, r6 = r5 + rows, r7 = r6 + rows
                for k in 0..<rows {
                    let v = SIMD8<Float>(r0[k], r1[k], r2[k], r3[k], r4[k], r5[k], r6[k], r7[k])
                    UnsafeMutableRawPointer(panel + k * 8).storeBytes(of: v, as: SIMD8<Float>.self)
                }
            } else {
                // panel[k][l] = b[j0 + l][k], zero for l ≥ valid
                for k in 0..<rows {
                    var v = SIMD8<Float>()
                    for l in 0..<valid { v[l] = b[(j0 + l) * rows + k] }
                    UnsafeMutableRawPointer(panel + k * 8).storeBytes(of: v, as: SIMD8<Float>.self)
                }
            }
        }
    }

    deinit { if owned { UnsafeMutableRawPointer(base).deallocate() } }
}

/// One product c (n, M) = a (n, K) · B, then (when `bias` or an activation is given) the epilogue.
/// Raw pointers handed to GEMM threads.
struct GEMMProblem: @unchecked Sendable {
    // @unchecked Sendable: the pointers outlive the (synchronous) GEMM call; threads write disjoint parts of c.
    /// Row 0 of a; row i at a + i * lda.
    let a: UnsafePointer<Float>
    let lda: Int
    /// Rows of a and c.
    let n: Int
    /// B (K, M), packed.
    let panels: PackedPanels
    /// nil for matmul (no add at all: adding +0 would turn -0 into +0); else bias[0..<M].
    let bias: UnsafePointer<Float>?
    let activation: Activation
    /// Row 0 of c; row i at c + i * ldc.
    let c: UnsafeMutablePointer<Float>
    let ldc: Int
    /// false: element (i, k) of the left operand is a[i * lda + k] (a row-major (n, K)); true: it is
    /// a[k * lda + i], i.e. the left operand is aᵀ for a row-major (K, n) matrix a (the weight gradient
    /// xᵀ · dout). Only where the rows of A are found changes; the k order of every output does not.
    var transposedA = false

    var k: Int { panels.rows }
    var m: Int { panels.cols }

    /// The same product restricted to rows i0 ..< i0 + count.
    func rows(from i0: Int, count: Int) -> GEMMProblem {
        GEMMProblem(
            a: a + i0 * (transposedA ? 1 : lda), lda: lda, n: count, panels: panels, bias: bias,
            activation: activation, c: c + i0 * ldc, ldc: ldc, transposedA: transposedA)
    }
}

/// The cache- and register-blocked GEMM of ``CPUBackend``.
enum GEMM {
    /// Rows per full micro-kernel.
    static let mr = 6
    /// K block. Measured on Zen3 (single core, 10000×784×50, 1024³, 2048³): KC = 256 (the L1-resident
    /// 16 KB slice of b of the textbook) gives 50-80 GFLOP/s, KC ≥ 784 gives 72-92: the 6 × 16 kernel
    /// needs only 64 bytes of b per 6 cycles, which L2 delivers, while every extra K block costs a
    /// reload of the C tile. So K is split only beyond 1024, into balanced blocks (a KC × 16 slice of b,
    /// 64 KB, then stays in L2).
    static let kc = 1024
    /// M block (rows of a per packed block, 24 micro-panels that reuse each slice of b); measured flat
    /// between 48 and 288.
    static let mc = 144
    /// N block in panels (4096 columns): a KC × NC block of b (4 MB) stays in the shared L3.
    static let nc = 512
    /// Floats of a packed A block (per thread).
    static let packFloats = mc * kc
    /// a is packed when the row block is reused over at least this many panels (M ≥ 128): then the
    /// packing pass costs well under 1% and removes cache-set/TLB conflicts of long, strided rows.
    static let packMinPanels = 16
    /// Below this many multiply-adds (N·K·M, ~10 µs on one core) one thread does all the work: handing
    /// chunks to the others costs more than it saves.
    static let threadingThreshold = 1 << 18
    /// Pieces of a threaded product per thread (claimed dynamically by the pool's threads).
    static let tasksPerThread = 4

    /// Runs the whole product on the caller and up to `pool.workers` pool threads; `scratch` lends each
    /// thread its A packing buffer.
    static func run(_ p: GEMMProblem, pool: WorkerPool, scratch: ScratchPool) {
        let panelCount = p.panels.count
        guard p.n > 0, panelCount > 0 else { return }
        let work = p.n * Swift.max(p.k, 1) * p.m
        let blocks = (p.n + mr - 1) / mr
        let chunks = work < threadingThreshold ? 1 : pool.workers + 1
        if chunks <= 1 || (blocks < 2 && panelCount < 4) {
            let s = scratch.take()
            compute(p, panels: 0..<panelCount, scratch: s)
            scratch.give(s)
            return
        }
        if blocks >= 2 * chunks || panelCount < 2 * chunks {
            // Contiguous ranges of 6-row blocks, as even as possible; a few per thread, so that a thread
            // that starts late (busy machine) just takes fewer of them.
            let parts = Swift.min(tasksPerThread * chunks, blocks)
            pool.run(chunks: parts) { t in
                let b0 = blocks * t / parts, b1 = blocks * (t + 1) / parts
                let i0 = b0 * mr, i1 = Swift.min(b1 * mr, p.n)
                guard i1 > i0 else { return }
                let s = scratch.take()
                compute(p.rows(from: i0, count: i1 - i0), panels: 0..<panelCount, scratch: s)
                scratch.give(s)
            }
        } else {
            // Few rows, many columns: contiguous ranges of panel pairs.
            let pairs = (panelCount + 1) / 2
            let parts = Swift.min(tasksPerThread * chunks, pairs)
            pool.run(chunks: parts) { t in
                let j0 = 2 * (pairs * t / parts), j1 = Swift.min(2 * (pairs * (t + 1) / parts), panelCount)
                guard j1 > j0 else { return }
                let s = scratch.take()
                compute(p, panels: j0..<j1, scratch: s)
                scratch.give(s)
            }
        }
    }

    /// The blocked product on the calling thread, for all rows of `p` and the column panels `panels`.
    static func compute(_ p: GEMMProblem, panels: Range<Int>, scratch: Scratch?) {
        let n = p.n, K = p.k
        guard n > 0, !panels.isEmpty else { return }
        // K blocks pay off only when a block of b is reused by several micro-panels; balanced sizes.
        let kBlocks = n > mr ? Swift.max(1, (K + kc - 1) / kc) : 1
        let pack = n > mr && panels.count >= packMinPanels && K > 0 ? scratch?.packBuffer() : nil
        var jc = panels.lowerBound
        while jc < panels.upperBound {
            let jEnd = Swift.min(jc + nc, panels.upperBound)
            for kb in 0..<kBlocks {
                let k0 = K * kb / kBlocks, k1 = K * (kb + 1) / kBlocks
                var ic = 0
                while ic < n {
                    let rows = Swift.min(mc, n - ic)
                    let block: APanel
                    if let pack {
                        if p.transposedA {
                            packAT(p.a + ic + k0 * p.lda, lda: p.lda, rows: rows, depth: k1 - k0, into: pack)
                        } else {
                            packA(p.a + ic * p.lda + k0, lda: p.lda, rows: rows, depth: k1 - k0, into: pack)
                        }
                        block = APanel(base: UnsafePointer(pack), rs: 1, cs: mr, next: mr * (k1 - k0))
                    } else if p.transposedA {
                        // aᵀ in place: row i of A is column i of a, so micro-panel rows are adjacent floats.
                        block = APanel(base: p.a + ic + k0 * p.lda, rs: 1, cs: p.lda, next: mr)
                    } else {
                        block = APanel(base: p.a + ic * p.lda + k0, rs: p.lda, cs: 1, next: mr * p.lda)
                    }
                    tiles(
                        p, block, rows: ic..<(ic + rows), panels: jc..<jEnd, k0: k0, k1: k1,
                        first: kb == 0, last: kb == kBlocks - 1)
                    ic += rows
                }
            }
            jc = jEnd
        }
    }

    /// Where the rows of one row block of a are: element (r, k) of micro-panel i (rows 6i ..< 6i+6 of the
    /// block, k from the block's k0) at base + i * next + r * rs + k * cs.
    struct APanel {
        let base: UnsafePointer<Float>
        let rs: Int
        let cs: Int
        let next: Int
    }

    /// All micro-tiles of rows `rows` (one MC block) × `panels`, for the K block k0 ..< k1.
    static func tiles(
        _ p: GEMMProblem, _ a: APanel, rows: Range<Int>, panels: Range<Int>, k0: Int, k1: Int,
        first: Bool, last: Bool
    ) {
        let full = rows.count / mr * mr
        let tail = rows.count - full
        let depth = k1 - k0
        let ps = p.panels.stride
        let b = UnsafePointer(p.panels.base) + k0 * 8
        var panels = panels
        // A partial last panel with the rows of a adjacent in memory (aᵀ read in place: the weight gradient
        // xᵀ · dout with an output width that is not a multiple of 8, like the book's 50): vectorise across
        // rows instead, so that its 1...7 columns do not cost a whole 8-wide panel (2 of 8 lanes at M = 50).
        if a.rs == 1 && a.next == mr, let lastPanel = panels.last, p.m - 8 * lastPanel < 8, !rows.isEmpty {
            let j0 = 8 * lastPanel
            let c = p.c + rows.lowerBound * p.ldc + j0
            columnTail(a.base, a.cs, rows.count, depth, b + lastPanel * ps, p.m - j0, c, p.ldc, first)
            if last { epilogue(c, p.ldc, rows.count, p.m - j0, p.bias.map { $0 + j0 }, p.activation) }
            panels = panels.lowerBound..<lastPanel
        }
        // Full micro-panels, two panels (16 columns) at a time: the KC × 16 slice of b stays in L1 while
        // the micro-panels of a stream through.
        if full > 0 {
            var jp = panels.lowerBound
            while jp < panels.upperBound {
                let g = Swift.min(2, panels.upperBound - jp)
                let j0 = 8 * jp
                let cols = Swift.min(8 * g, p.m - j0)
                var i = 0
                if g == 1 && a.next == mr * a.rs {
                    // A lone 8-column panel (an odd panel count): 12 rows at a time, so that 12 fma chains
                    // are in flight instead of 6 (rows are evenly strided when a is not packed, or is aᵀ).
                    while i + 2 * mr <= full {
                        let c = p.c + (rows.lowerBound + i) * p.ldc + j0
                        lone12(
                            a.base + (i / mr) * a.next, a.rs, a.cs, depth, b + jp * ps, c, p.ldc, cols, first)
                        if last { epilogue(c, p.ldc, 2 * mr, cols, p.bias.map { $0 + j0 }, p.activation) }
                        i += 2 * mr
                    }
                }
                while i < full {
                    let c = p.c + (rows.lowerBound + i) * p.ldc + j0
                    kernel(
                        mr, g, a.base + (i / mr) * a.next, a.rs, a.cs, depth, b + jp * ps, ps, c, p.ldc,
                        cols, first)
                    if last { epilogue(c, p.ldc, mr, cols, p.bias.map { $0 + j0 }, p.activation) }
                    i += mr
                }
                jp += g
            }
        }
        // Row tail: R = 1...5 rows × up to 12/R column vectors per call, in even groups.
        if tail > 0 {
            let vmax = maxVectors(tail)
            let nv = panels.count
            let groups = (nv + vmax - 1) / vmax
            let ra = a.base + (full / mr) * a.next
            for gi in 0..<groups {
                let v0 = panels.lowerBound + nv * gi / groups
                let v1 = panels.lowerBound + nv * (gi + 1) / groups
                let j0 = 8 * v0
                let cols = Swift.min(8 * (v1 - v0), p.m - j0)
                let c = p.c + (rows.lowerBound + full) * p.ldc + j0
                kernel(tail, v1 - v0, ra, a.rs, a.cs, depth, b + v0 * ps, ps, c, p.ldc, cols, first)
                if last { epilogue(c, p.ldc, tail, cols, p.bias.map { $0 + j0 }, p.activation) }
            }
        }
    }

    /// The 12 × 8 micro-kernel for a lone 8-column panel: element (r, k) of a at a[r·lda + k·cs] (unpacked;
    /// cs = 1 for row-major a, lda = 1 for aᵀ), b rows at b + k·8; otherwise as
    /// ``Micro/run(_:_:_:_:_:_:_:_:_:_:)``. Written out: a 12-trip loop is not unrolled.
    @inline(never)
    static func lone12(
        _ a: UnsafePointer<Float>, _ lda: Int, _ cs: Int, _ depth: Int, _ b: UnsafePointer<Float>,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ cols: Int, _ first: Bool
    ) {
        var acc = Accumulators()
        if !first {
            for r in 0..<12 { acc[r] = loadPartial(UnsafePointer(c) + r &* ldc, cols) }
        }
        let a0 = a, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda, a4 = a3 + lda, a5 = a4 + lda
        let a6 = a5 + lda, a7 = a6 + lda, a8 = a7 + lda, a9 = a8 + lda, a10 = a9 + lda, a11 = a10 + lda
        let braw = UnsafeRawPointer(b)
        var k = 0
        var ka = 0  // k · cs
        while k < depth {
            // a[0..<12][k] (12,1) · b[k][0..<8] (1,8) accumulated into the (12,8) tile
            let bv = braw.load(fromByteOffset: k &* 32, as: SIMD8<Float>.self)
            acc.a0 = acc.a0.addingProduct(SIMD8(repeating: a0[ka]), bv)
            acc.a1 = acc.a1.addingProduct(SIMD8(repeating: a1[ka]), bv)
            acc.a2 = acc.a2.addingProduct(SIMD8(repeating: a2[ka]), bv)
            acc.a3 = acc.a3.addingProduct(SIMD8(repeating: a3[ka]), bv)
            acc.a4 = acc.a4.addingProduct(SIMD8(repeating: a4[ka]), bv)
            acc.a5 = acc.a5.addingProduct(SIMD8(repeating: a5[ka]), bv)
            acc.a6 = acc.a6.addingProduct(SIMD8(repeating: a6[ka]), bv)
            acc.a7 = acc.a7.addingProduct(SIMD8(repeating: a7[ka]), bv)
            acc.a8 = acc.a8.addingProduct(SIMD8(repeating: a8[ka]), bv)
            acc.a9 = acc.a9.addingProduct(SIMD8(repeating: a9[ka]), bv)
            acc.a10 = acc.a10.addingProduct(SIMD8(repeating: a10[ka]), bv)
            acc.a11 = acc.a11.addingProduct(SIMD8(repeating: a11[ka]), bv)
            k &+= 1
            ka &+= cs
        }
        for r in 0..<12 { storePartial(acc[r], c + r &* ldc, cols) }
    }

    /// c (rows, cols) [+]= A (rows, depth) · b for a partial panel (cols < 8) when the rows of A are adjacent
    /// floats: element (i, k) at a[i + k·cs] (aᵀ in place), b row k at b + k·8. Each SIMD8 lane is one row
    /// of c: for 32 rows at a time and columns in pairs, acc[j] = fma(A[i..<i+8][k], b[k][j], acc[j]) for
    /// k = 0..<depth in order (8 independent chains), so every output keeps the contract's order. An odd
    /// last column is paired with itself (computed twice from the same start, identically; never paired
    /// with a neighbour, which would add a K block twice). `first`: start from +0, else continue from the
    /// partial sums in c (earlier K blocks).
    @inline(never)
    static func columnTail(
        _ a: UnsafePointer<Float>, _ cs: Int, _ rows: Int, _ depth: Int, _ b: UnsafePointer<Float>, _ cols: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ first: Bool
    ) {
        var j0 = 0
        while j0 < cols {
            let j1 = Swift.min(j0 + 1, cols - 1)
            var i = 0
            while i < rows {
                let count = Swift.min(32, rows - i)
                columnPair(a + i, cs, count, depth, b, j0, j1, c + i * ldc, ldc, first)
                i += 32
            }
            j0 += 2
        }
    }

    /// ``columnTail(_:_:_:_:_:_:_:_:_:)`` for rows i ..< i + count (count ≤ 32) and the columns j0, j1:
    /// 4 blocks of 8 rows × 2 columns, eight accumulators in registers (blocks past `count` compute on
    /// zeros and are never stored).
    @inline(__always)
    static func columnPair(
        _ a: UnsafePointer<Float>, _ cs: Int, _ count: Int, _ depth: Int, _ b: UnsafePointer<Float>, _ j0: Int,
        _ j1: Int, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ first: Bool
    ) {
        var acc = Accumulators()  // a(2·block + column), block = 8 rows
        if !first {
            acc.a0 = gather(c + j0, ldc, count); acc.a1 = gather(c + j1, ldc, count)
            acc.a2 = gather(c + 8 * ldc + j0, ldc, count - 8); acc.a3 = gather(c + 8 * ldc + j1, ldc, count - 8)
            acc.a4 = gather(c + 16 * ldc + j0, ldc, count - 16); acc.a5 = gather(c + 16 * ldc + j1, ldc, count - 16)
            acc.a6 = gather(c + 24 * ldc + j0, ldc, count - 24); acc.a7 = gather(c + 24 * ldc + j1, ldc, count - 24)
        }
        var k = 0
        var row = a
        if count == 32 {
            while k < depth {
                // A[i..<i+32][k] (32,1) · b[k][j0, j1] (1,2) accumulated into the (32,2) tile
                let b0 = SIMD8<Float>(repeating: b[k &* 8 &+ j0]), b1 = SIMD8<Float>(repeating: b[k &* 8 &+ j1])
                let x0 = load8(row), x1 = load8(row + 8), x2 = load8(row + 16), x3 = load8(row + 24)
                acc.a0 = acc.a0.addingProduct(x0, b0); acc.a1 = acc.a1.addingProduct(x0, b1)
                acc.a2 = acc.a2.addingProduct(x1, b0); acc.a3 = acc.a3.addingProduct(x1, b1)
                acc.a4 = acc.a4.addingProduct(x2, b0); acc.a5 = acc.a5.addingProduct(x2, b1)
                acc.a6 = acc.a6.addingProduct(x3, b0); acc.a7 = acc.a7.addingProduct(x3, b1)
                row += cs
                k &+= 1
            }
        } else {
            // The last rows of a block: partial loads, never past row `count` of A.
            while k < depth {
                let b0 = SIMD8<Float>(repeating: b[k &* 8 &+ j0]), b1 = SIMD8<Float>(repeating: b[k &* 8 &+ j1])
                let x0 = loadPartial(row, count), x1 = loadPartial(row + 8, count - 8)
                let x2 = loadPartial(row + 16, count - 16), x3 = loadPartial(row + 24, count - 24)
                acc.a0 = acc.a0.addingProduct(x0, b0); acc.a1 = acc.a1.addingProduct(x0, b1)
                acc.a2 = acc.a2.addingProduct(x1, b0); acc.a3 = acc.a3.addingProduct(x1, b1)
                acc.a4 = acc.a4.addingProduct(x2, b0); acc.a5 = acc.a5.addingProduct(x2, b1)
                acc.a6 = acc.a6.addingProduct(x3, b0); acc.a7 = acc.a7.addingProduct(x3, b1)
                row += cs
                k &+= 1
            }
        }
        scatter(acc.a0, c + j0, ldc, count); scatter(acc.a1, c + j1, ldc, count)
        scatter(acc.a2, c + 8 * ldc + j0, ldc, count - 8); scatter(acc.a3, c + 8 * ldc + j1, ldc, count - 8)
        scatter(acc.a4, c + 16 * ldc + j0, ldc, count - 16); scatter(acc.a5, c + 16 * ldc + j1, ldc, count - 16)
        scatter(acc.a6, c + 24 * ldc + j0, ldc, count - 24); scatter(acc.a7, c + 24 * ldc + j1, ldc, count - 24)
    }

    /// Lane r = p[r·stride] for r < count (at most 8), zero beyond.
    @inline(__always)
    static func gather(_ p: UnsafeMutablePointer<Float>, _ stride: Int, _ count: Int) -> SIMD8<Float> {
        var v = SIMD8<Float>()
        for r in 0..<Swift.min(Swift.max(count, 0), 8) { v[r] = p[r * stride] }
        return v
    }

    /// p[r·stride] = lane r for r < count (at most 8).
    @inline(__always)
    static func scatter(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ stride: Int, _ count: Int) {
        for r in 0..<Swift.min(Swift.max(count, 0), 8) { p[r * stride] = v[r] }
    }

    /// The most SIMD8 column vectors an R-row kernel takes (R × V ≤ 12 accumulators, but at least 2).
    @inline(__always)
    static func maxVectors(_ rows: Int) -> Int {
        switch rows {
        case 1: return 8
        case 2: return 6
        case 3: return 4
        case 4: return 3
        default: return 2
        }
    }

    /// Packs rows × depth of a (row stride lda) into 6-row micro-panels: micro-panel i at dst + i·6·depth,
    /// element (r, k) at [k·6 + r]. Rows past the end of a tail micro-panel are left as they are (the tail
    /// kernels never read them).
    static func packA(
        _ a: UnsafePointer<Float>, lda: Int, rows: Int, depth: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        var i = 0
        while i < rows {
            let r = Swift.min(mr, rows - i)
            let panel = dst + i * depth
            if r == mr {
                let s0 = a + i * lda, s1 = s0 + lda, s2 = s1 + lda, s3 = s2 + lda, s4 = s3 + lda, s5 = s4 + lda
                for k in 0..<depth {
                    let d = panel + k * mr
                    d[0] = s0[k]; d[1] = s1[k]; d[2] = s2[k]
                    d[3] = s3[k]; d[4] = s4[k]; d[5] = s5[k]
                }
            } else {
                for rr in 0..<r {
                    let s = a + (i + rr) * lda
                    for k in 0..<depth { panel[k * mr + rr] = s[k] }
                }
            }
            i += mr
        }
    }

    /// Like ``packA(_:lda:rows:depth:into:)`` for the left operand aᵀ: rows × depth of Aᵀ where element
    /// (r, k) is a[k·lda + r], so each k of a micro-panel is 6 adjacent floats of row k of a.
    static func packAT(
        _ a: UnsafePointer<Float>, lda: Int, rows: Int, depth: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        var i = 0
        while i < rows {
            let r = Swift.min(mr, rows - i)
            let panel = dst + i * depth
            if r == mr {
                for k in 0..<depth {
                    // panel[k][0..<6] = a[k][i ..< i + 6]
                    let s = a + k * lda + i, d = panel + k * mr
                    d[0] = s[0]; d[1] = s[1]; d[2] = s[2]
                    d[3] = s[3]; d[4] = s[4]; d[5] = s[5]
                }
            } else {
                for k in 0..<depth {
                    for rr in 0..<r { panel[k * mr + rr] = a[k * lda + i + rr] }
                }
            }
            i += mr
        }
    }

    /// c[r][0..<cols] for r < rows: + bias (if any), then the activation (identity included: it
    /// canonicalises NaN), with the Numerics SIMD8 formulas (equal to the scalar ones lane by lane).
    static func epilogue(
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int, _ cols: Int,
        _ bias: UnsafePointer<Float>?, _ activation: Activation
    ) {
        for r in 0..<rows {
            let row = c + r * ldc
            var j = 0
            while j < cols {
                let n = Swift.min(8, cols - j)
                var v = loadPartial(row + j, n)
                if let bias { v = v + loadPartial(bias + j, n) }
                storePartial(Numerics.activate(v, activation), row + j, n)
                j += 8
            }
        }
    }

    /// Lanes 0 ..< count of p (count ≥ 8: all eight; the rest zero).
    @inline(__always)
    static func loadPartial(_ p: UnsafePointer<Float>, _ count: Int) -> SIMD8<Float> {
        if count >= 8 { return UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
        var v = SIMD8<Float>()
        for l in 0..<Swift.max(count, 0) { v[l] = p[l] }
        return v
    }

    @inline(__always)
    static func loadPartial(_ p: UnsafeMutablePointer<Float>, _ count: Int) -> SIMD8<Float> {
        loadPartial(UnsafePointer(p), count)
    }

    /// Stores lanes 0 ..< count (count ≥ 8: all eight) of v at p.
    @inline(__always)
    static func storePartial(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        if count >= 8 {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
        } else {
            for l in 0..<Swift.max(count, 0) { p[l] = v[l] }
        }
    }

    /// Dispatches to the micro-kernel for `rows` (1...6) × `vectors` SIMD8 columns (rows·vectors ≤ 12).
    static func kernel(
        _ rows: Int, _ vectors: Int, _ a: UnsafePointer<Float>, _ rs: Int, _ cs: Int, _ depth: Int,
        _ b: UnsafePointer<Float>, _ ps: Int, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ cols: Int,
        _ first: Bool
    ) {
        switch (rows, vectors) {
        case (6, 2): Micro<N6, N2>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (6, _): Micro<N6, N1>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (5, 2): Micro<N5, N2>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (5, _): Micro<N5, N1>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (4, 3): Micro<N4, N3>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (4, 2): Micro<N4, N2>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (4, _): Micro<N4, N1>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (3, 4): Micro<N3, N4>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (3, 3): Micro<N3, N3>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (3, 2): Micro<N3, N2>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (3, _): Micro<N3, N1>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (2, 6): Micro<N2, N6>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (2, 5): Micro<N2, N5>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (2, 4): Micro<N2, N4>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (2, 3): Micro<N2, N3>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (2, 2): Micro<N2, N2>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (2, _): Micro<N2, N1>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (_, 8): Micro<N1, N8>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (_, 7): Micro<N1, N7>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (_, 6): Micro<N1, N6>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (_, 5): Micro<N1, N5>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (_, 4): Micro<N1, N4>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (_, 3): Micro<N1, N3>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        case (_, 2): Micro<N1, N2>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        default: Micro<N1, N1>.run(a, rs, cs, depth, b, ps, c, ldc, cols, first)
        }
    }
}

/// The micro-kernel: Rows.value (R) rows × Vectors.value (V) SIMD8 columns, R·V ≤ 12 accumulators in
/// registers. Generic over the two counts so each shape is specialised with constants: loops unroll, the
/// accumulator struct is kept in registers, and the k loop is pure vbroadcastss + vfmadd231ps.
enum Micro<Rows: CountType, Vectors: CountType> {
    /// c (R, cols) = [c +] a (R, depth) · b (depth, V·8), raw (no epilogue). a's element (r, k) is at
    /// a[r·rs + k·cs]; b's vector v of row k at b + v·ps + k·8. `first`: start from +0, else continue from
    /// the float32 partial sums stored in c by the previous K block.
    @inline(never)
    static func run(
        _ a: UnsafePointer<Float>, _ rs: Int, _ cs: Int, _ depth: Int, _ b: UnsafePointer<Float>, _ ps: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ cols: Int, _ first: Bool
    ) {
        let R = Rows.value, V = Vectors.value
        var acc = Accumulators()
        if !first {
            for r in 0..<R {
                let row = UnsafePointer(c) + r &* ldc
                for v in 0..<V {
                    let offset: Int = v &* 8
                    acc[r &* V &+ v] = GEMM.loadPartial(row + offset, cols &- offset)
                }
            }
        }
        let braw = UnsafeRawPointer(b)
        var k = 0
        while k < depth {
            // a[0..<R][k] (R,1) · b[k][0..<8V] (1,8V) accumulated into the (R,8V) tile
            for r in 0..<R {
                let x = SIMD8<Float>(repeating: a[r &* rs &+ k &* cs])
                for v in 0..<V {
                    let bv = braw.load(fromByteOffset: (v &* ps &+ k &* 8) &* 4, as: SIMD8<Float>.self)
                    acc[r &* V &+ v] = acc[r &* V &+ v].addingProduct(x, bv)
                }
            }
            k &+= 1
        }
        for r in 0..<R {
            let row = c + r &* ldc
            for v in 0..<V {
                let offset: Int = v &* 8
                GEMM.storePartial(acc[r &* V &+ v], row + offset, cols &- offset)
            }
        }
    }
}

/// Twelve SIMD8 accumulators addressed by a constant index (after unrolling the switch folds away and
/// each one lives in a ymm register).
struct Accumulators {
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
    var a8 = SIMD8<Float>(), a9 = SIMD8<Float>(), a10 = SIMD8<Float>(), a11 = SIMD8<Float>()

    @inline(__always)
    subscript(i: Int) -> SIMD8<Float> {
        get {
            switch i {
            case 0: a0
            case 1: a1
            case 2: a2
            case 3: a3
            case 4: a4
            case 5: a5
            case 6: a6
            case 7: a7
            case 8: a8
            case 9: a9
            case 10: a10
            default: a11
            }
        }
        set {
            switch i {
            case 0: a0 = newValue
            case 1: a1 = newValue
            case 2: a2 = newValue
            case 3: a3 = newValue
            case 4: a4 = newValue
            case 5: a5 = newValue
            case 6: a6 = newValue
            case 7: a7 = newValue
            case 8: a8 = newValue
            case 9: a9 = newValue
            case 10: a10 = newValue
            default: a11 = newValue
            }
        }
    }
}

/// A compile-time count for the micro-kernels (a generic parameter, so each count gets its own
/// specialised kernel with no run-time branches in the k loop).
protocol CountType { static var value: Int { get } }
enum N1: CountType { static var value: Int { 1 } }
enum N2: CountType { static var value: Int { 2 } }
enum N3: CountType { static var value: Int { 3 } }
enum N4: CountType { static var value: Int { 4 } }
enum N5: CountType { static var value: Int { 5 } }
enum N6: CountType { static var value: Int { 6 } }
enum N7: CountType { static var value: Int { 7 } }
enum N8: CountType { static var value: Int { 8 } }
