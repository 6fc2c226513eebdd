// Tests of the IDX reader, gzip decompression, MNIST loading (the real test set from $MNIST_DIR or
// /work/shared/mnist, and tiny fixtures), MNISTSet's tensors and normalisation, and SHA-256 test vectors.

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

@Suite struct MNISTTests {
    static var haveShared: Bool {
        FileManager.default.fileExists(atPath: SharedData.mnistDirectory.appendingPathComponent("t10k-images-idx3-ubyte.gz").path)
    }

    @Test(.enabled(if: haveShared)) func realTestSet() throws {
        let test = try MNIST.load(directory: SharedData.mnistDirectory, split: .test)
        #expect(test.count == 10_000 && test.rows == 28 && test.cols == 28)
        #expect(Array(test.labels[0..<5]) == [7, 2, 1, 0, 4])
        // Values from python3 + NumPy over the same files.
        var histogram = [Int](repeating: 0, count: 10)
        for l in test.labels { histogram[Int(l)] += 1 }
        #expect(histogram == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
        #expect(SHA256.hex(Data(test.images)) == "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161")
        #expect(test.images[0..<784].reduce(0) { $0 + Int($1) } == 18454)
        // x.astype(np.float32); x /= 255.0 -- bit for bit.
        let x = test.images(0..<10_000)
        #expect(x.shape == [10_000, 784])
        let bytes = x.scalars.withUnsafeBufferPointer { Data(buffer: $0) }
        #expect(SHA256.hex(bytes) == "bc9f8f501f39b3ca61f899a2f402edf2024bde012b73223431b6bd735e47a165")
        #expect(x.scalars[200..<210].map(\.bitPattern) == [0, 0, 1_051_240_617, 1_060_747_706, 1_059_037_088, 1_058_510_744,
                                                           1_047_589_105, 1_041_272_977, 0, 0])
        let t = test.labels(0..<5, oneHot: true)
        #expect(t.shape == [5, 10] && t.scalars[7] == 1 && t.scalars[10 + 2] == 1 && t.scalars.reduce(0, +) == 5)
        #expect(test.labels(9_999..<20_000).scalars == [Float(test.labels[9_999])])
        #expect(test.images(3..<4, flatten: false).shape == [1, 1, 28, 28])
        #expect(test.images(0..<1, normalize: false).scalars.reduce(0, +) == 18454)
    }

    @Test(.enabled(if: haveShared)) func realTrainLabelsAndMissingTrainImages() throws {
        let url = SharedData.mnistDirectory.appendingPathComponent("train-labels-idx1-ubyte.gz")
        let labels = try IDX.read(try Data(contentsOf: url), source: url.path)
        #expect(labels.dims == [60_000])
        #expect(Array(labels.bytes.prefix(10)) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
        if !FileManager.default.fileExists(atPath: SharedData.mnistDirectory.appendingPathComponent("train-images-idx3-ubyte.gz").path) {
            let error = expectLoadError { _ = try MNIST.load(directory: SharedData.mnistDirectory, split: .train) }
            #expect(error?.source.hasSuffix("train-images-idx3-ubyte.gz") == true)
            #expect(error?.description.contains("MNIST_DIR") == true)
        }
    }

    @Test func defaultDirectoryHonoursMNIST_DIR() {
        #expect(MNIST.defaultDirectory(environment: ["MNIST_DIR": "/some/where"])?.path == "/some/where")
        #expect(Downloads.defaultWeights(environment: ["SCRATCHNET_WEIGHTS": "/w.pkl"])?.path == "/w.pkl")
        #expect(Downloads.defaultDirectory(environment: ["SCRATCHNET_DATA": "/d"]).path == "/d")
        // Without the variables: ../shared/... or ./shared/... if present, else the data in the box.
        let found = MNIST.defaultDirectory(environment: [:])
        #expect(found != nil)
        #expect(found?.path.hasSuffix("shared/mnist") == true || found?.path.hasSuffix("Data/mnist") == true)
        let weights = Downloads.defaultWeights(environment: [:])
        #expect(weights?.path.hasSuffix("book/sample_weight.pkl") == true)
    }

    /// The data in the box: the files `download` would fetch, byte for byte (their SHA-256 digests), with their
    /// licences, and a loadable 10,000-image test set.
    @Test func dataInTheBoxIsTheDownloadedData() throws {
        let data = try #require(Downloads.bundledData, "the package's Data/ folder is missing")
        let items = Downloads.book(environment: [:])
        for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "sample_weight.pkl"] {
            let item = try #require(items.first { $0.name == name })
            let url = data.appendingPathComponent(item.subfolder).appendingPathComponent(name)
            #expect(item.accepts(SHA256.hex(try Data(contentsOf: url))), "\(url.path)")
        }
        for licence in ["LICENSE-MNIST.md", "LICENSE-book.md"] {
            let text = try String(contentsOf: data.appendingPathComponent(licence), encoding: .utf8)
            #expect(text.contains(licence == "LICENSE-MNIST.md" ? "Attribution-Share Alike 3.0" : "The MIT License"))
        }
        let test = try MNIST.load(directory: data.appendingPathComponent("mnist"), split: .test)
        #expect(test.count == 10_000 && test.rows == 28 && test.cols == 28)
        let weights = try WeightsFile.load(data.appendingPathComponent("book/sample_weight.pkl"))
        #expect(weights["W1"]?.shape == [784, 50] && weights["b3"]?.shape == [10])
    }

    /// A temporary folder with the tiny fixture under MNIST's test-split names.
    static func tinyFolder(images: String = "tiny-images.idx3", labels: String = "tiny-labels.idx1.gz",
                           imagesAs: String = "t10k-images-idx3-ubyte", labelsAs: String = "t10k-labels-idx1-ubyte.gz") throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-mnist-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.url(images), to: dir.appendingPathComponent(imagesAs))
        try FileManager.default.copyItem(at: Fixtures.url(labels), to: dir.appendingPathComponent(labelsAs))
        return dir
    }

    @Test func tinyFixtureRawAndGzip() throws {
        let raw = try IDX.read(try Fixtures.data("tiny-images.idx3"), source: "raw")
        let gz = try IDX.read(try Fixtures.data("tiny-images.idx3.gz"), source: "gz")
        #expect(raw.dims == [3, 2, 4] && gz.dims == raw.dims && gz.bytes == raw.bytes)
        let pixels: [UInt8] = (0..<24).map { (k: Int) -> UInt8 in UInt8((k * 10) % 256) }
        #expect(raw.bytes == pixels)
        // Raw images + gzip labels, under the standard names.
        let dir = try Self.tinyFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let set = try MNIST.load(directory: dir, split: .test)
        #expect(set.count == 3 && set.rows == 2 && set.cols == 4 && set.labels == [7, 0, 9])
        let x = set.images(1..<3)
        #expect(x.shape == [2, 8])
        let want: [Float] = (8..<24).map { (k: Int) -> Float in Float((k * 10) % 256) / 255 }
        #expect(x.scalars == want)
        #expect(set.images(0..<3, flatten: false).shape == [3, 1, 2, 4])
        #expect(set.images(2..<2).shape == [0, 8])
        #expect(set.labels(0..<3).scalars == [7, 0, 9])
        var oneHot = [Float](repeating: 0, count: 30)
        oneHot[7] = 1; oneHot[10] = 1; oneHot[29] = 1
        #expect(set.labels(0..<3, oneHot: true).scalars == oneHot)
    }

    @Test func swappedAndMismatchedFilesAreErrors() throws {
        // Labels where images belong.
        let swapped = try Self.tinyFolder(images: "tiny-labels.idx1", labels: "tiny-images.idx3.gz")
        defer { try? FileManager.default.removeItem(at: swapped) }
        let e1 = expectLoadError { _ = try MNIST.load(directory: swapped, split: .test) }
        #expect(e1?.description.contains("t10k-images-idx3-ubyte") == true)
        // 2 labels for 3 images.
        let dir = try Self.tinyFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let labels = dir.appendingPathComponent("t10k-labels-idx1-ubyte.gz")
        try FileManager.default.removeItem(at: labels)
        try Data([0, 0, 8, 1, 0, 0, 0, 2, 7, 0]).write(to: dir.appendingPathComponent("t10k-labels-idx1-ubyte"))
        let e2 = expectLoadError { _ = try MNIST.load(directory: dir, split: .test) }
        #expect(e2?.description.contains("2 labels") == true && e2?.description.contains("3 images") == true)
        // A label that is not a digit.
        try Data([0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 10]).write(to: dir.appendingPathComponent("t10k-labels-idx1-ubyte"))
        let e3 = expectLoadError { _ = try MNIST.load(directory: dir, split: .test) }
        #expect(e3?.description.contains("not a digit") == true)
        // Missing folder.
        let e4 = expectLoadError { _ = try MNIST.load(directory: URL(fileURLWithPath: "/nonexistent-mnist"), split: .test) }
        #expect(e4?.source == "/nonexistent-mnist/t10k-images-idx3-ubyte.gz")
    }

    @Test func idxChecks() throws {
        let good = [UInt8](try Fixtures.data("tiny-images.idx3"))
        var badMagic = good; badMagic[0] = 1
        var badType = good; badType[2] = 0x09
        var zeroRank = good; zeroRank[3] = 0
        let cases: [(String, [UInt8])] = [
            ("bad magic", badMagic), ("signed-byte type", badType), ("zero dimensions", zeroRank),
            ("trailing byte", good + [0]), ("huge dims", [0, 0, 8, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
        ]
        for (what, bytes) in cases {
            let error = expectLoadError("\(what)") { _ = try IDX.read(Data(bytes), source: "bad-idx") }
            #expect(error?.source == "bad-idx")
        }
        for name in ["tiny-images.idx3", "tiny-images.idx3.gz", "tiny-labels.idx1", "tiny-labels.idx1.gz"] {
            let data = try Fixtures.data(name)
            for length in 0..<data.count {
                let error = expectLoadError("\(name) cut to \(length)") { _ = try IDX.read(data.prefix(length), source: name) }
                #expect(error?.source == name)
            }
        }
    }

    @Test func gzip() throws {
        let gz = try Fixtures.data("tiny-labels.idx1.gz"), raw = try Fixtures.data("tiny-labels.idx1")
        #expect(try Gzip.decompressIfNeeded(gz, source: "g", maxOutput: 1 << 20) == raw)
        #expect(try Gzip.decompressIfNeeded(raw, source: "g", maxOutput: 1) == raw, "not gzip: unchanged")
        #expect(try Gzip.decompressIfNeeded(gz + gz, source: "g", maxOutput: 1 << 20) == raw + raw, "multi-member")
        #expect(try Gzip.decompressIfNeeded(gz + Data(count: 5), source: "g", maxOutput: 1 << 20) == raw, "zero padding")
        let capped = expectLoadError { _ = try Gzip.decompressIfNeeded(gz, source: "cap.gz", maxOutput: raw.count - 1) }
        #expect(capped?.description.contains("limit") == true)
        #expect(try Gzip.decompressIfNeeded(gz, source: "g", maxOutput: raw.count) == raw, "exactly at the cap")
        var badCRC = [UInt8](gz); badCRC[badCRC.count - 6] ^= 1
        expectLoadError("CRC") { _ = try Gzip.decompressIfNeeded(Data(badCRC), source: "crc.gz", maxOutput: 1 << 20) }
        expectLoadError("garbage after") { _ = try Gzip.decompressIfNeeded(gz + Data([1, 2, 3]), source: "g", maxOutput: 1 << 20) }
        expectLoadError("only magic") { _ = try Gzip.decompressIfNeeded(Data([0x1F, 0x8B]), source: "g", maxOutput: 1 << 20) }
    }

    @Test func normalisationIsCorrectlyRoundedDivision() throws {
        let set = try MNISTSet(images: (0..<256).map { UInt8($0) }, labels: [3], count: 1, rows: 16, cols: 16)
        let x = set.images(0..<1)
        for b in 0..<256 {
            // Correctly rounded b/255: the float nearest to the exact quotient (checked in double precision, where
            // b/255 is accurate to far better than half a float ulp).
            let exact = Double(b) / 255
            let f = x.scalars[b]
            let error = abs(Double(f) - exact)
            let upError = abs(Double(f.nextUp) - exact), downError = abs(Double(f.nextDown) - exact)
            #expect(error <= upError && error <= downError, "\(b)")
        }
        #expect(x.scalars[0] == 0 && x.scalars[255] == 1)
        expectLoadError { _ = try MNISTSet(images: [1, 2], labels: [1], count: 1, rows: 1, cols: 1) }
    }
}

@Suite struct SHA256Tests {
    @Test func knownVectors() {
        #expect(SHA256.hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex(Data(repeating: UInt8(ascii: "a"), count: 1_000_000))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test(arguments: [
        (1, "084fed08b978af4d7d196a7446a86b58009e636b611db16211b65a9aadff29c5"),
        (55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"),
        (56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"),
        (63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"),
        (64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"),
        (65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"),
        (127, "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa11d07"),
        (128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6"),
        (1000, "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371"),
    ])
    func paddingBoundaries(_ length: Int, _ digest: String) {
        // Python: hashlib.sha256(bytes((i*7+3) % 256 for i in range(n))).hexdigest()
        let data = Data((0..<length).map { UInt8(($0 * 7 + 3) % 256) })
        #expect(SHA256.hex(data) == digest)
        // A Data slice with a non-zero start index hashes the same.
        let padded = Data([9, 9, 9]) + data
        #expect(SHA256.hex(padded[3...]) == digest)
    }
}
