// Tests of the CPU backend's cache-blocked GEMM: bitwise equality with Reference at sizes that cross every
// block boundary (K around KC and 2·KC, rows around the 6-row tile and the MC block, columns around the
// 8/16-column tiles and the panel-pair split), packed and unpacked A, row tails of every width, and thread
// counts 1, 2 and 3 (row split and column split).

import Testing
import ScratchNet

/// The block sizes of Sources/ScratchNet/CPU/Blocks.swift (KC, MC, and the panel count from which A is
/// packed, 16 panels of 8 columns); keep in step when tuning them.
private enum Blocks {
    static let kc = 1024
    static let mc = 144
    static let packMinPanels = 16
}

@Suite("Blocked GEMM")
struct BlockedGEMMTests {
    private func check(_ n: Int, _ k: Int, _ m: Int, threads: Int, activation: Activation, seed: UInt64) throws {
        let cpu = CPUBackend(threads: threads)
        let x = randomTensor(n, k, in: -1...1, seed: seed)
        let w = randomTensor(k, m, in: -1...1, seed: seed &+ 1)
        let b = randomTensor(1, m, in: -1...1, seed: seed &+ 2)
        let dx = try cpu.upload(x), dw = try cpu.upload(w), db = try cpu.upload(b)
        let c = try cpu.makeMatrix(rows: n, cols: m), y = try cpu.makeMatrix(rows: n, cols: m)
        try cpu.matmul(dx, dw, into: c)
        try cpu.affine(dx, dw, bias: db, activation: activation, into: y)
        let wantC = try Reference.matmul(x, w)
        let wantY = try Reference.affine(x, w, bias: b, activation: activation)
        let c1 = Comparison(try cpu.download(c).scalars, wantC.scalars)
        let c2 = Comparison(try cpu.download(y).scalars, wantY.scalars)
        #expect(c1.isBitwiseEqual, "matmul (\(n),\(k),\(m)) threads \(threads): \(c1)")
        #expect(c2.isBitwiseEqual, "affine \(activation) (\(n),\(k),\(m)) threads \(threads): \(c2)")
    }

    @Test("K across the KC blocks (KC-1, KC, KC+1, 2·KC+3), rows and columns around the tiles")
    func kBlocks() throws {
        let kc = Blocks.kc
        var seed: UInt64 = 1
        for k in [kc - 1, kc, kc + 1, 2 * kc + 3] {
            for (n, m) in [(7, 17), (12, 16), (13, 9), (1, 33), (5, 50), (25, 50), (37, 100)] {
                for threads in [1, 2, 3] {
                    try check(n, k, m, threads: threads, activation: .sigmoid, seed: seed)
                    seed += 3
                }
            }
        }
    }

    @Test("rows around MC, columns enough to pack A, with and without threads", arguments: [1, 2, 3])
    func mcBlocksAndPacking(threads: Int) throws {
        let mc = Blocks.mc
        let packCols = 8 * Blocks.packMinPanels
        var seed: UInt64 = 100
        for (n, k, m) in [
            (mc - 1, 37, packCols), (mc, 300, packCols + 1), (mc + 1, 2 * Blocks.kc + 3, packCols + 7),
            (2 * mc + 5, 19, packCols - 1), (mc + 7, Blocks.kc + 1, 2 * packCols + 3),
        ] {
            try check(n, k, m, threads: threads, activation: .relu, seed: seed)
            seed += 3
        }
    }

    @Test("few rows, many columns: the column split across threads", arguments: [1, 2, 3])
    func columnSplit(threads: Int) throws {
        var seed: UInt64 = 200
        for (n, k, m) in [(1, 300, 1000), (5, 260, 777), (6, 100, 1025), (8, 513, 515), (11, 64, 999)] {
            try check(n, k, m, threads: threads, activation: .identity, seed: seed)
            seed += 3
        }
    }

    @Test("every row tail (1...5) with every vector group width (1...13 SIMD8 columns)")
    func rowTails() throws {
        var seed: UInt64 = 300
        for n in [1, 2, 3, 4, 5, 7, 8, 9, 10, 11] {
            for m in [1, 8, 9, 16, 24, 40, 48, 56, 57, 64, 65, 100, 104] {
                try check(n, 23, m, threads: 1, activation: .sigmoid, seed: seed)
                seed += 3
            }
        }
    }

    @Test("K = 0, M = 0 and N = 0 through the blocked path")
    func degenerate() throws {
        for (n, k, m) in [(13, 0, 17), (200, 0, 130), (13, 600, 0), (0, 600, 130), (1, 0, 1)] {
            for threads in [1, 2] { try check(n, k, m, threads: threads, activation: .sigmoid, seed: 9) }
        }
    }

    @Test("NaN and infinities across K blocks stay exactly as in Reference")
    func specialsAcrossKBlocks() throws {
        let cpu = CPUBackend(threads: 2)
        let (n, k, m) = (31, 2 * Blocks.kc + 3, 150)
        var x = randomTensor(n, k, seed: 41)
        var w = randomTensor(k, m, seed: 42)
        x.scalars[5] = .nan  // row 0, first K block
        x.scalars[2 * k + Blocks.kc + 1] = .infinity  // row 2, second K block
        x.scalars[7 * k + 2 * Blocks.kc + 1] = -.infinity  // row 7, last K block
        w.scalars[(Blocks.kc - 1) * m + 3] = .infinity  // last k of the first K block, column 3
        w.scalars[(Blocks.kc + 2) * m + 3] = -.infinity  // second K block, column 3: inf - inf
        let b = randomTensor(1, m, seed: 43)
        let dx = try cpu.upload(x), dw = try cpu.upload(w), db = try cpu.upload(b)
        let c = try cpu.makeMatrix(rows: n, cols: m)
        try cpu.matmul(dx, dw, into: c)
        let got = try cpu.download(c).scalars
        let want = try Reference.matmul(x, w).scalars
        #expect(got.contains { $0.isNaN } && got.contains { $0.isInfinite })
        #expect(Comparison(got, want).isBitwiseEqual, "\(Comparison(got, want))")
        for act in Activation.allCases {
            try cpu.affine(dx, dw, bias: db, activation: act, into: c)
            let wantY = try Reference.affine(x, w, bias: b, activation: act)
            #expect(Comparison(try cpu.download(c).scalars, wantY.scalars).isBitwiseEqual, "\(act)")
        }
    }

    @Test("a large square product equals Reference, on 1 and 2 threads")
    func largeSquare() throws {
        for threads in [1, 2] { try check(300, 520, 290, threads: threads, activation: .identity, seed: 77) }
    }
}
