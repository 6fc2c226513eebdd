// The OpenCL fast paths against the plain ones, BITWISE: packed-panel gemm (both traversal orders, the
// cached packed copy dropped on writes, the GPU tuning's row-major path), the whole-network kernel
// (forward/predict == affine per layer + softmax + argmax == CPUBackend, 1-4 layers, odd widths, every
// activation, softmax on/off, batch 0/1/odd, NaN/inf; too wide or too deep networks fall back), and the
// persistent program-binary cache (hit, corrupt file rebuilt and replaced, switch off, keys).

import Foundation
import ScratchNet
import ScratchNetOpenCL
import Testing

/// Backends with non-default tunings, built once each (program builds are the slow part).
enum TunedDevices {
    /// Traversal over rows first for every size (every panel "fits").
    static let rowsFirst: Result<OpenCLBackend, any Error> = Result {
        var t = OpenCLTuning.cpu
        t.panelCacheBytes = Int.max
        return try OpenCLBackend(deviceIndex: 0, tuning: t)
    }
    /// Panels first for every size (no panel "fits").
    static let panelsFirst: Result<OpenCLBackend, any Error> = Result {
        var t = OpenCLTuning.cpu
        t.panelCacheBytes = 0
        return try OpenCLBackend(deviceIndex: 0, tuning: t)
    }
    /// The GPU tuning (row-major gemm, 4×8 tiles, one row per network work-item) run on this device.
    static let gpuTuned: Result<OpenCLBackend, any Error> = Result {
        try OpenCLBackend(deviceIndex: 0, tuning: .gpu)
    }
    /// Narrow panels and a small network width limit, so few columns cross panels and limits.
    static let narrow: Result<OpenCLBackend, any Error> = Result {
        var t = OpenCLTuning.cpu
        t.tileRows = 5
        t.tileCols = 8
        t.netRows = 3
        t.netLocal = 4
        t.netMaxWidth = 40
        t.netMaxLayers = 3
        return try OpenCLBackend(deviceIndex: 0, tuning: t)
    }

    static func all(sourceLocation: SourceLocation = #_sourceLocation) -> [OpenCLBackend] {
        guard let base = TestDevice.backend(sourceLocation: sourceLocation) else { return [] }
        var result = [base]
        for r in [rowsFirst, panelsFirst, gpuTuned, narrow] {
            switch r {
            case .success(let be): result.append(be)
            case .failure(let error): Issue.record("tuned backend: \(error)", sourceLocation: sourceLocation)
            }
        }
        return result
    }
}

/// (N, K, M): panel remainders, several row blocks, K crossing nothing in particular, batch 1, empty.
let packedShapes: [(Int, Int, Int)] = [
    (7, 1, 1), (13, 7, 17), (33, 33, 33), (100, 784, 50), (12, 5, 48), (61, 50, 100), (1000, 33, 7),
    (37, 300, 65), (1, 9, 40), (19, 0, 9), (0, 5, 3), (300, 100, 10),
]

@Test(arguments: packedShapes.indices)
func packedGemmMatchesReferenceInEveryTuning(_ index: Int) throws {
    let (n, k, m) = packedShapes[index]
    var rng = TestRandom(seed: UInt64(1100 + index))
    let a = rng.tensor(n, k, scale: 3), b = rng.tensor(k, m), bias = rng.tensor(1, m, scale: 2)
    let wantC = try Reference.matmul(a, b)
    for be in TunedDevices.all() {
        let (da, db, dbias) = (try be.upload(a), try be.upload(b), try be.upload(bias))
        let c = try be.makeMatrix(rows: n, cols: m)
        // Twice: the first call packs b, the second uses the cached packed copy.
        for pass in 0..<2 {
            try be.matmul(da, db, into: c)
            expectBitwise(try be.download(c), wantC, "matmul \(be.tuning) (\(n),\(k),\(m)) pass \(pass)")
        }
        for act in Activation.allCases {
            try be.affine(da, db, bias: dbias, activation: act, into: c)
            let want = try Reference.affine(a, b, bias: bias, activation: act)
            expectBitwise(try be.download(c), want, "affine \(act) \(be.tuning) (\(n),\(k),\(m))")
        }
    }
}

@Test func packedCopyIsDroppedWhenTheMatrixIsWritten() throws {
    guard let be = TestDevice.backend() else { return }
    var rng = TestRandom(seed: 1200)
    let a = rng.tensor(50, 20), b1 = rng.tensor(20, 30), b2 = rng.tensor(20, 30)
    let da = try be.upload(a), db = try be.upload(b1)
    let c = try be.makeMatrix(rows: 50, cols: 30)
    try be.matmul(da, db, into: c)  // packs b1
    expectBitwise(try be.download(c), try Reference.matmul(a, b1), "before write")
    try b2.scalars.withUnsafeBufferPointer { try be.write($0, to: db) }
    try be.matmul(da, db, into: c)
    expectBitwise(try be.download(c), try Reference.matmul(a, b2), "after write")
    // An op output is a write too: b = a' · I through matmul, then use it as the right-hand side.
    let small = try be.upload(rng.tensor(20, 20))
    try be.matmul(small, try be.upload(b1), into: db)
    let b3 = try be.download(db)
    try be.matmul(da, db, into: c)
    expectBitwise(try be.download(c), try Reference.matmul(a, b3), "after an op wrote b")
    // Bytes written into a matrix also drop its packed copy.
    let bytes = (0..<(20 * 30)).map { UInt8($0 % 251) }
    try bytes.withUnsafeBufferPointer { try be.write(bytes: $0, dividedBy: 255, to: db) }
    let b4 = try be.download(db)
    try be.matmul(da, db, into: c)
    expectBitwise(try be.download(c), try Reference.matmul(a, b4), "after write(bytes:)")
}

/// argmax of each `width`-wide row of `t` with Numerics.argmax's rule.
func rowArgmax(_ t: Tensor, width: Int) -> [Int] {
    guard width > 0 else { return Array(repeating: 0, count: t.shape[0]) }
    return t.scalars.withUnsafeBufferPointer { all in
        (0..<(all.count / width)).map { r in Numerics.argmax(UnsafeBufferPointer(rebasing: all[(r * width)..<((r + 1) * width)])) }
    }
}

/// A random network: widths[0] inputs, then one layer per further width.
struct TestNet {
    var weights: [Tensor] = []
    var biases: [Tensor] = []
    var activations: [Activation] = []

    init(widths: [Int], activations acts: [Activation], seed: UInt64) {
        var rng = TestRandom(seed: seed)
        for l in 1..<widths.count {
            // Scale ~ 2/sqrt(fan-in) keeps sigmoid away from saturation most of the time, and 4× that
            // sometimes (seed-dependent) drives it through saturation.
            let scale = Float(2) / Float(max(1, widths[l - 1])).squareRoot() * (seed % 2 == 0 ? 1 : 4)
            weights.append(rng.tensor(widths[l - 1], widths[l], scale: scale))
            biases.append(rng.tensor(1, widths[l], scale: 1))
            activations.append(acts[(l - 1) % acts.count])
        }
    }

    func dense(on be: any Backend) throws -> [DenseLayer] {
        try (0..<weights.count).map {
            DenseLayer(weights: try be.upload(weights[$0]), bias: try be.upload(biases[$0]), activation: activations[$0])
        }
    }

    /// affine per layer, then softmax if asked: the unfused path the fused one must equal.
    func layerByLayer(_ be: any Backend, _ x: DeviceMatrix, _ layers: [DenseLayer], softmax: Bool) throws -> DeviceMatrix {
        var h = x
        for layer in layers {
            let y = try be.makeMatrix(rows: h.rows, cols: layer.weights.cols)
            try be.affine(h, layer.weights, bias: layer.bias, activation: layer.activation, into: y)
            h = y
        }
        if softmax { try be.softmaxRows(h, into: h) }
        return h
    }
}

let netCases: [(widths: [Int], acts: [Activation])] = [
    ([784, 50, 100, 10], [.sigmoid, .sigmoid, .identity]),  // the book's chapter 3
    ([5, 3], [.identity]),
    ([7, 17], [.sigmoid]),
    ([33, 1, 9], [.relu, .identity]),
    ([13, 40, 8, 33, 2], [.sigmoid, .relu, .identity, .sigmoid]),
    ([64, 256, 31, 10], [.relu, .sigmoid, .identity]),
    ([0, 5, 4], [.sigmoid, .identity]),
    ([9, 0, 4], [.sigmoid, .identity]),
    ([12, 16, 48, 16], [.identity, .relu, .sigmoid]),
]

@Test(arguments: netCases.indices, [1, 7, 33, 100, 0])
func fusedForwardAndPredictEqualLayerByLayer(_ index: Int, _ batch: Int) throws {
    let (widths, acts) = netCases[index]
    let net = TestNet(widths: widths, activations: acts, seed: UInt64(1300 + index))
    var rng = TestRandom(seed: UInt64(1400 + index * 10 + batch))
    var x = rng.tensor(batch, widths[0], scale: 2)
    if batch >= 7 && widths[0] >= 3 {
        x.scalars[widths[0] + 1] = .nan  // row 1
        x.scalars[2 * widths[0]] = .infinity  // row 2
        x.scalars[3 * widths[0] + 2] = -.infinity  // row 3
    }
    let cpu = CPUBackend()
    let cpuLayers = try net.dense(on: cpu)
    for softmax in [true, false] {
        let want = try cpu.download(net.layerByLayer(cpu, try cpu.upload(x), cpuLayers, softmax: softmax))
        let wantArg = rowArgmax(want, width: widths[widths.count - 1])
        for be in TunedDevices.all() {
            let layers = try net.dense(on: be)
            let dx = try be.upload(x)
            let label = "net \(widths) \(acts) batch \(batch) softmax \(softmax) rows/item \(be.tuning.netRows)"
            let unfused = try be.download(net.layerByLayer(be, dx, layers, softmax: softmax))
            expectBitwise(unfused, want, "\(label): layer by layer vs CPU")
            let y = try be.makeMatrix(rows: batch, cols: widths[widths.count - 1])
            let fits = widths.count - 1 <= be.tuning.netMaxLayers && widths.dropFirst().allSatisfy { $0 <= be.tuning.netMaxWidth }
            #expect(try be.forward(dx, layers: layers, softmax: softmax, into: y) == fits, "\(label): forward taken")
            var predictions = [Int32](repeating: -1, count: batch)
            let predicted = try predictions.withUnsafeMutableBufferPointer {
                try be.predict(dx, layers: layers, softmax: softmax, into: $0)
            }
            #expect(predicted == fits, "\(label): predict taken")
            guard fits else { continue }
            expectBitwise(try be.download(y), want, "\(label): fused forward")
            #expect(predictions.map { Int($0) } == wantArg, "\(label): fused predict")
        }
    }
}

@Test func fusedPathsRefuseWideOrDeepNetworks() throws {
    guard let be = TestDevice.backend() else { return }
    let limit = be.tuning.netMaxWidth
    for widths in [[4, limit + 1, 3], [4, 3, limit + 1], [3, 3, 3, 3, 3, 3]] {
        let net = TestNet(widths: widths, activations: [.sigmoid], seed: 5)
        let layers = try net.dense(on: be)
        var r6 = TestRandom(seed: 6)
        let x = try be.upload(r6.tensor(5, widths[0]))
        let y = try be.makeMatrix(rows: 5, cols: widths[widths.count - 1])
        #expect(try be.forward(x, layers: layers, softmax: true, into: y) == false, "\(widths)")
        var p = [Int32](repeating: 0, count: 5)
        #expect(try p.withUnsafeMutableBufferPointer { try be.predict(x, layers: layers, softmax: true, into: $0) } == false)
    }
    // Exactly at the limit is taken.
    let net = TestNet(widths: [4, limit, 3], activations: [.relu, .identity], seed: 8)
    let layers = try net.dense(on: be)
    var r9 = TestRandom(seed: 9)
    let x = try be.upload(r9.tensor(5, 4))
    let y = try be.makeMatrix(rows: 5, cols: 3)
    #expect(try be.forward(x, layers: layers, softmax: true, into: y))
    expectBitwise(try be.download(y), try be.download(net.layerByLayer(be, x, layers, softmax: true)), "at the limit")
}

@Test func fusedPathsRejectBadShapes() throws {
    guard let be = TestDevice.backend() else { return }
    let net = TestNet(widths: [6, 5, 4], activations: [.sigmoid, .identity], seed: 10)
    let layers = try net.dense(on: be)
    var r11 = TestRandom(seed: 11)
    let x = try be.upload(r11.tensor(3, 7))  // 7 columns, W1 takes 6
    let y = try be.makeMatrix(rows: 3, cols: 4)
    #expect(throws: BackendError.self) { try be.forward(x, layers: layers, softmax: true, into: y) }
    let good = try be.upload(r11.tensor(3, 6))
    #expect(throws: BackendError.self) { try be.forward(good, layers: layers, softmax: true, into: try be.makeMatrix(rows: 3, cols: 5)) }
    var p = [Int32](repeating: 0, count: 2)  // 2 slots for 3 rows
    #expect(throws: BackendError.self) { try p.withUnsafeMutableBufferPointer { try be.predict(good, layers: layers, softmax: true, into: $0) } }
}

@Test func fusedForwardMatchesCPUOnTheBookShapesAtLargeBatch() throws {
    guard let be = TestDevice.backend() else { return }
    let net = TestNet(widths: [784, 50, 100, 10], activations: [.sigmoid, .sigmoid, .identity], seed: 12)
    var rng = TestRandom(seed: 13)
    let x = rng.tensor(1003, 784, scale: 1)
    let cpu = CPUBackend()
    let want = try cpu.download(net.layerByLayer(cpu, try cpu.upload(x), try net.dense(on: cpu), softmax: true))
    let y = try be.makeMatrix(rows: 1003, cols: 10)
    let layers = try net.dense(on: be)
    let dx = try be.upload(x)
    #expect(try be.forward(dx, layers: layers, softmax: true, into: y))
    expectBitwise(try be.download(y), want, "book shapes, 1003 rows")
    // Steady state reuses the index buffer: many predicts of different sizes give the same answers.
    for rows in [1003, 1, 500] {
        let part = try be.upload(try Tensor(shape: [rows, 784], scalars: Array(x.scalars[0..<(rows * 784)])))
        var p = [Int32](repeating: -1, count: rows)
        #expect(try p.withUnsafeMutableBufferPointer { try be.predict(part, layers: layers, softmax: true, into: $0) })
        #expect(p.map { Int($0) } == Array(rowArgmax(want, width: 10).prefix(rows)))
    }
}

// MARK: Program-binary cache

/// A fresh, empty cache folder.
func freshCacheFolder() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-cache-\(UUID().uuidString)", isDirectory: true)
}

@Test func secondBackendLoadsProgramsFromTheCache() throws {
    guard TestDevice.backend() != nil else { return }
    let dir = freshCacheFolder()
    defer { try? FileManager.default.removeItem(at: dir) }
    let first = try OpenCLBackend(deviceIndex: 0, cache: ProgramCacheOptions(directory: dir))
    #expect(first.buildSource == "source")
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".bin") }
    #expect(files.count == KernelSources.kernelFiles.count)
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).allSatisfy { !$0.hasSuffix(".tmp") })
    let second = try OpenCLBackend(deviceIndex: 0, cache: ProgramCacheOptions(directory: dir))
    #expect(second.buildSource == "cache")
    #expect(Set(second.programOrigins.keys) == Set(KernelSources.kernelFiles))
    // Programs from the cache compute the same bits.
    var rng = TestRandom(seed: 14)
    let a = rng.tensor(20, 30), b = rng.tensor(30, 17)
    let c = try second.makeMatrix(rows: 20, cols: 17)
    try second.matmul(try second.upload(a), try second.upload(b), into: c)
    expectBitwise(try second.download(c), try Reference.matmul(a, b), "matmul from cached binaries")
}

@Test func corruptCacheFilesAreRebuiltAndReplaced() throws {
    guard TestDevice.backend() != nil else { return }
    let dir = freshCacheFolder()
    defer { try? FileManager.default.removeItem(at: dir) }
    _ = try OpenCLBackend(deviceIndex: 0, cache: ProgramCacheOptions(directory: dir))
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".bin") }.sorted()
    #expect(files.count >= 3)
    guard files.count >= 3 else { return }
    // 1: a flipped payload byte (checksum mismatch); 2: truncated; 3: valid header and checksum around garbage,
    // so the driver itself has to reject it.
    let flipped = dir.appendingPathComponent(files[0])
    var data = [UInt8](try Data(contentsOf: flipped))
    data[data.count / 2] ^= 0x55
    try Data(data).write(to: flipped)
    let truncated = dir.appendingPathComponent(files[1])
    let full = try Data(contentsOf: truncated)
    try full.prefix(full.count / 3).write(to: truncated)
    let garbage = dir.appendingPathComponent(files[2])
    let key = String(files[2].dropLast(4))
    #expect(ProgramCache(options: ProgramCacheOptions(directory: dir)).store(key: key, binary: Array(repeating: 0x42, count: 1000)))
    let damaged = try [flipped, truncated, garbage].map { try Data(contentsOf: $0) }

    let rebuilt = try OpenCLBackend(deviceIndex: 0, cache: ProgramCacheOptions(directory: dir))
    #expect(rebuilt.buildSource == "mixed")
    #expect(rebuilt.programOrigins.values.filter { $0 == "source" }.count == 3)
    for (url, bad) in zip([flipped, truncated, garbage], damaged) {
        #expect(try Data(contentsOf: url) != bad, "\(url.lastPathComponent) was not replaced")
    }
    let again = try OpenCLBackend(deviceIndex: 0, cache: ProgramCacheOptions(directory: dir))
    #expect(again.buildSource == "cache")
    var rng = TestRandom(seed: 15)
    let x = rng.tensor(9, 4)
    let y = try again.makeMatrix(rows: 9, cols: 4)
    try again.softmaxRows(try again.upload(x), into: y)
    expectBitwise(try again.download(y), try Reference.softmaxRows(x), "softmax after rebuild")
}

@Test func disabledCacheNeitherReadsNorWrites() throws {
    guard TestDevice.backend() != nil else { return }
    let dir = freshCacheFolder()
    defer { try? FileManager.default.removeItem(at: dir) }
    let off = try OpenCLBackend(deviceIndex: 0, cache: ProgramCacheOptions(directory: dir, enabled: false))
    #expect(off.buildSource == "source")
    #expect(!FileManager.default.fileExists(atPath: dir.path))
    _ = try OpenCLBackend(deviceIndex: 0, cache: ProgramCacheOptions(directory: dir))
    let offAgain = try OpenCLBackend(deviceIndex: 0, cache: ProgramCacheOptions(directory: dir, enabled: false))
    #expect(offAgain.buildSource == "source")
}

@Test func cacheOptionsComeFromTheEnvironment() {
    let xdg = ProgramCacheOptions.fromEnvironment(["XDG_CACHE_HOME": "/x/cache", "HOME": "/home/u"])
    #expect(xdg.directory.path == "/x/cache/scratchnet")
    #expect(xdg.enabled)
    let home = ProgramCacheOptions.fromEnvironment(["HOME": "/home/u"])
    #expect(home.directory.path == "/home/u/.cache/scratchnet")
    #expect(!ProgramCacheOptions.fromEnvironment(["HOME": "/home/u", "SCRATCHNET_NO_CACHE": "1"]).enabled)
    #expect(ProgramCacheOptions.fromEnvironment(["HOME": "/home/u", "SCRATCHNET_NO_CACHE": "0"]).enabled)
}

@Test func cacheKeysSeparateEveryInput() {
    let base = ProgramCache.key(source: "s", options: "-D A=1", device: "d", driver: "1", platform: "p")
    #expect(base.count == 32)
    #expect(base == ProgramCache.key(source: "s", options: "-D A=1", device: "d", driver: "1", platform: "p"))
    let variants = [
        ProgramCache.key(source: "s", options: "-D A=2", device: "d", driver: "1", platform: "p"),
        ProgramCache.key(source: "s2", options: "-D A=1", device: "d", driver: "1", platform: "p"),
        ProgramCache.key(source: "s", options: "-D A=1", device: "e", driver: "1", platform: "p"),
        ProgramCache.key(source: "s", options: "-D A=1", device: "d", driver: "2", platform: "p"),
        ProgramCache.key(source: "s", options: "-D A=1", device: "d", driver: "1", platform: "q"),
        ProgramCache.key(source: "s", options: "-D A=", device: "d", driver: "1", platform: "1p"),
    ]
    #expect(Set(variants + [base]).count == variants.count + 1)
}

@Test func changedTuningBuildsNewCacheEntries() throws {
    guard TestDevice.backend() != nil else { return }
    let dir = freshCacheFolder()
    defer { try? FileManager.default.removeItem(at: dir) }
    _ = try OpenCLBackend(deviceIndex: 0, cache: ProgramCacheOptions(directory: dir))
    var t = OpenCLTuning.cpu
    t.netRows = 4  // a different -D SN_NET_ROWS: every program's options change
    let other = try OpenCLBackend(deviceIndex: 0, cache: ProgramCacheOptions(directory: dir), tuning: t)
    #expect(other.buildSource == "source")
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".bin") }
    #expect(files.count == 2 * KernelSources.kernelFiles.count)
}

// MARK: Bytes fused into the first layer

@Test(arguments: [1, 5, 100, 0])
func fusedPathsReadWrittenBytesLikeTheirFloats(_ batch: Int) throws {
    // write(bytes:) defers the conversion; the network kernel divides inside its first layer. Same bits as
    // converting first (the floats the same bytes give through download) and running layer by layer; 300
    // inputs cross the first layer's k chunk (256) with a tail that is not a multiple of 8.
    let widths = [300, 37, 10]
    let net = TestNet(widths: widths, activations: [.sigmoid, .identity], seed: 16)
    let bytes = (0..<(batch * 300)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / 7) }
    for be in TunedDevices.all() {
        let layers = try net.dense(on: be)
        let x = try be.makeMatrix(rows: batch, cols: 300)
        try bytes.withUnsafeBufferPointer { try be.write(bytes: $0, dividedBy: 255, to: x) }
        let y = try be.makeMatrix(rows: batch, cols: 10)
        let fused = try be.forward(x, layers: layers, softmax: true, into: y)
        var predictions = [Int32](repeating: -1, count: batch)
        try bytes.withUnsafeBufferPointer { try be.write(bytes: $0, dividedBy: 255, to: x) }
        _ = try predictions.withUnsafeMutableBufferPointer { try be.predict(x, layers: layers, softmax: true, into: $0) }
        // Now the floats: converted on first read, then layer by layer.
        let floats = try be.download(x)
        #expect(floats.scalars.map(\.bitPattern) == bytes.map { (Float($0) / 255).bitPattern })
        let want = try be.download(net.layerByLayer(be, x, layers, softmax: true))
        #expect(fused)
        expectBitwise(try be.download(y), want, "bytes forward, batch \(batch), \(be.tuning)")
        #expect(predictions.map { Int($0) } == rowArgmax(want, width: 10))
    }
}

@Test func floatWritesReplacePendingBytes() throws {
    guard let be = TestDevice.backend() else { return }
    let x = try be.makeMatrix(rows: 2, cols: 3)
    try [UInt8](repeating: 200, count: 6).withUnsafeBufferPointer { try be.write(bytes: $0, dividedBy: 255, to: x) }
    let values: [Float] = [1, 2, 3, 4, 5, 6]
    try values.withUnsafeBufferPointer { try be.write($0, to: x) }
    #expect(try be.download(x).scalars == values)
    // And an op output replaces them too.
    try [UInt8](repeating: 9, count: 6).withUnsafeBufferPointer { try be.write(bytes: $0, dividedBy: 255, to: x) }
    let src = try be.upload(values, rows: 2, cols: 3)
    try be.apply(.identity, src, into: x)
    #expect(try be.download(x).scalars == values)
}

@Test func warmUpRunsEveryKernelAndLeavesResultsExact() throws {
    for be in TunedDevices.all() {
        try be.warmUp()
        var rng = TestRandom(seed: 17)
        let a = rng.tensor(8, 5), b = rng.tensor(5, 9)
        let c = try be.makeMatrix(rows: 8, cols: 9)
        try be.matmul(try be.upload(a), try be.upload(b), into: c)
        expectBitwise(try be.download(c), try Reference.matmul(a, b), "after warm-up \(be.tuning)")
    }
}
