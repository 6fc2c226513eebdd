// Tests of the restricted unpickler: the book's real sample_weight.pkl, fixtures for protocols 2-5 in NumPy 1.x
// and 2.x style (float64, Fortran order, big-endian, empty, scalars, plain containers), and hostile pickles that
// must be refused without anything running.

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

@Suite struct PickleTests {
    @Test func bookWeightsShapesAndValues() throws {
        let url = SharedData.bookWeights
        try #require(FileManager.default.fileExists(atPath: url.path), "the book's weights are expected at \(url.path)")
        let w = try WeightsFile.load(url)
        #expect(Set(w.keys) == ["W1", "b1", "W2", "b2", "W3", "b3"])
        #expect(w["W1"]?.shape == [784, 50])
        #expect(w["b1"]?.shape == [50])
        #expect(w["W2"]?.shape == [50, 100])
        #expect(w["b2"]?.shape == [100])
        #expect(w["W3"]?.shape == [100, 10])
        #expect(w["b3"]?.shape == [10])
        // Bit patterns printed with python3 + NumPy: d['W1'][i, j].view(np.uint32). W1 is stored in Fortran
        // order, so these also check the reordering.
        let w1 = try #require(w["W1"])
        let spots: [(Int, Int, UInt32)] = [(0, 0, 3_153_257_591), (0, 1, 3_154_215_275), (1, 0, 3_156_784_803),
                                           (783, 49, 3_173_299_402), (400, 25, 1_041_972_928), (100, 7, 1_008_429_833)]
        for (i, j, bits) in spots { #expect(w1.scalars[i * 50 + j].bitPattern == bits, "W1[\(i),\(j)]") }
        #expect(w1.scalars[0] == -0.007412489)
        let w2 = try #require(w["W2"]), w3 = try #require(w["W3"])
        #expect(w2.scalars[49 * 100 + 99].bitPattern == 1_007_994_033)
        #expect(w2.scalars[3 * 100 + 17].bitPattern == 3_202_303_252)
        #expect(w3.scalars[99 * 10 + 9].bitPattern == 1_023_550_227)
        let b3Bits: [UInt32] = [3_178_675_727, 1_008_258_368, 3_160_330_304, 1_018_267_639, 1_009_773_338,
                                1_032_294_985, 3_182_164_546, 3_155_523_222, 1_002_245_902, 1_029_311_326]
        #expect(w["b3"]?.scalars.map(\.bitPattern) == b3Bits)
        // SHA-256 of each array's C-order little-endian float32 bytes, from NumPy.
        let digests = [
            "W1": "2d0714ca8d07d756e0057aafc56676dff0d5d894b28f0d3011077566133719ec",
            "W2": "10bbf55337dc7d2ae5879a99983cac7ced6b98eda4fa8a3501adc140dfeb0dac",
            "W3": "fdcf773d0e9734a3549791243f5c2856bb1c72f8f63249c5ea92af3053bf37ac",
            "b1": "44a9e3f961c33cd7cee40f099ad7f05c0d662b59a08b12f7fa17a214695bd622",
            "b2": "6384406e92d5fe327f6ae4cb1d3051fee65723aa4aeee1e05920eb915dd6ac9e",
            "b3": "9e4452c9a0a7589eb5e239340644c90ef1be49f7798c576bb86635555c4a3cb3",
        ]
        for (name, digest) in digests {
            let t = try #require(w[name])
            let bytes = t.scalars.withUnsafeBufferPointer { Data(buffer: $0) }
            #expect(SHA256.hex(bytes) == digest, "\(name)")
        }
    }

    @Test(arguments: ["p2_np1", "p2_np2", "p3_np1", "p3_np2", "p4_np1", "p4_np2", "p5_np1", "p5_np2"])
    func protocolsAndNumPyStyles(_ name: String) throws {
        let arrays = try Pickle.loadArrays(try Fixtures.data("\(name).pkl"), source: "\(name).pkl")
        let expected = FixtureArrays.all
        for (key, want) in expected {
            let got = try #require(arrays[key], "\(name): missing \(key)")
            #expect(bitwiseEqual(got, want), "\(name): \(key) = \(got.shape) \(got.scalars.prefix(8))")
        }
        // The NumPy scalar comes back as a rank-0 tensor; plain values (dict, int) are skipped.
        let scalar = try #require(arrays["scalar"])
        #expect(scalar.shape == [] && scalar.scalars == [2.5])
        #expect(Set(arrays.keys) == Set(expected.keys).union(["scalar"]))
    }

    @Test func dispatchedByMagicThroughWeightsFile() throws {
        let w = try WeightsFile.load(Fixtures.url("p3_np1.pkl"))
        #expect(bitwiseEqual(try #require(w["f"]), FixtureArrays.f))
    }

    @Test(arguments: [
        ("hostile_os_system.pkl", "os.system"),
        ("hostile_builtins_eval.pkl", "builtins.eval"),
        ("hostile_subprocess_popen.pkl", "subprocess.Popen"),
        ("hostile_numpy_other.pkl", "numpy.ctypeslib.load_library"),
    ])
    func hostileGlobalsAreRefusedAndNothingRuns(_ file: String, _ global: String) throws {
        try? FileManager.default.removeItem(atPath: Fixtures.pwnedPath)
        let data = try Fixtures.data(file)
        let error = expectLoadError { _ = try Pickle.loadArrays(data, source: file) }
        let message = error?.description ?? ""
        #expect(message.contains("refusing to load global '\(global)'"), "\(message)")
        #expect(message.contains(file))
        #expect(message.contains("only NumPy arrays and plain containers are allowed"))
        // Also through the format-detecting entry point.
        expectLoadError { _ = try WeightsFile.load(Fixtures.url(file)) }
        Thread.sleep(forTimeInterval: 0.05)
        #expect(!FileManager.default.fileExists(atPath: Fixtures.pwnedPath), "the pickle's command ran")
    }

    @Test func reconstructOfNonArrayIsRefused() throws {
        let data = try Fixtures.data("hostile_reconstruct_dtype.pkl")
        let error = expectLoadError { _ = try Pickle.loadArrays(data, source: "x.pkl") }
        #expect(error?.description.contains("_reconstruct") == true)
    }

    @Test func objectArraysAreRefused() throws {
        let data = try Fixtures.data("object_array.pkl")
        let error = expectLoadError { _ = try Pickle.loadArrays(data, source: "object_array.pkl") }
        #expect(error?.description.contains("object") == true, "\(String(describing: error))")
    }

    @Test func topLevelListIsNotADict() throws {
        let data = try Fixtures.data("toplevel_list.pkl")
        let error = expectLoadError { _ = try Pickle.loadArrays(data, source: "toplevel_list.pkl") }
        #expect(error?.description.contains("not a dict") == true)
    }

    @Test func handWrittenOpcodes() throws {
        // protocol 2: {'a': 1, 'b': [1.5, None], 'c': (True,)} with DICT/LIST/TUPLE, MARK, BINFLOAT, no arrays
        var bytes: [UInt8] = [0x80, 0x02, 0x28]
        bytes += [0x55, 1, UInt8(ascii: "a"), 0x4B, 1] // 'a': 1
        bytes += [0x55, 1, UInt8(ascii: "b"), 0x28, 0x47] + withUnsafeBytes(of: (1.5).bitPattern.bigEndian, Array.init) + [0x4E, 0x6C]
        bytes += [0x55, 1, UInt8(ascii: "c"), 0x88, 0x85]
        bytes += [0x64, 0x2E] // DICT, STOP
        let arrays = try Pickle.loadArrays(Data(bytes), source: "hand.pkl")
        #expect(arrays.isEmpty)
    }

    @Test func corruptStructuresAreErrors() throws {
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("only PROTO", [0x80, 0x02]),
            ("STOP on empty stack", [0x80, 0x02, 0x2E]),
            ("unknown opcode", [0x80, 0x02, 0xFF]),
            ("protocol 6", [0x80, 0x06, 0x4E, 0x2E]),
            ("BINGET of missing memo", [0x80, 0x02, 0x68, 0x05, 0x2E]),
            ("SETITEM on a list", [0x80, 0x02, 0x5D, 0x4B, 1, 0x4B, 2, 0x73, 0x2E]),
            ("APPEND to a dict", [0x80, 0x02, 0x7D, 0x4B, 1, 0x61, 0x2E]),
            ("TUPLE without MARK", [0x80, 0x02, 0x74, 0x2E]),
            ("huge BINUNICODE", [0x80, 0x02, 0x58, 0xFF, 0xFF, 0xFF, 0x7F, 0x61]),
            ("huge BINBYTES8", [0x80, 0x04, 0x8E] + [UInt8](repeating: 0xFF, count: 8)),
            ("FRAME longer than the file", [0x80, 0x04, 0x95, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0x4E, 0x2E]),
            ("REDUCE of a non-callable", [0x80, 0x02, 0x4B, 1, 0x29, 0x52, 0x2E]),
            ("STOP inside MARK", [0x80, 0x02, 0x4E, 0x28, 0x2E]),
            ("invalid UTF-8", [0x80, 0x02, 0x8C, 0x02, 0xC3, 0x28, 0x2E]),
            ("INST opcode", [0x80, 0x02, 0x28, 0x69] + Array("os\nsystem\n".utf8) + [0x2E]),
            ("persistent id", [0x80, 0x02, 0x4E, 0x51, 0x2E]),
            ("out-of-band buffer", [0x80, 0x05, 0x97, 0x2E]),
            ("EXT1", [0x80, 0x02, 0x82, 0x01, 0x2E]),
        ]
        for (what, bytes) in cases {
            expectLoadError("\(what) should fail") { _ = try Pickle.loadArrays(Data(bytes), source: "bad.pkl") }
        }
    }

    @Test func deepNestingAndCyclesDoNotCrash() throws {
        // A million nested tuples and 200,000 nested dicts (values are flat, so nothing is torn down recursively).
        var tuples: [UInt8] = [0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 1_000_000) + [0x2E]
        expectLoadError { _ = try Pickle.loadArrays(Data(tuples), source: "deep.pkl") }
        tuples = [0x80, 0x04, 0x7D, 0x94] // {} memoized as 0, then d(i+1) = {'k': d(i)}, 200,000 deep
        for i in 0..<200_000 {
            let index = withUnsafeBytes(of: UInt32(i).littleEndian, Array.init)
            tuples += [0x7D, 0x8C, 1, UInt8(ascii: "k"), 0x6A] + index + [0x73, 0x94]
        }
        tuples.append(0x2E)
        #expect(try Pickle.loadArrays(Data(tuples), source: "deep.pkl").isEmpty)
        // A list appended to itself (l = []; l.append(l)) inside a dict.
        let cycle: [UInt8] = [0x80, 0x02, 0x7D, 0x8C, 1, UInt8(ascii: "l"), 0x5D, 0x94, 0x68, 0, 0x61, 0x73, 0x2E]
        #expect(try Pickle.loadArrays(Data(cycle), source: "cycle.pkl").isEmpty)
    }

    @Test func everyTruncationOfEveryFixtureIsAnError() throws {
        for name in ["p2_np1.pkl", "p3_np2.pkl", "p4_np1.pkl", "p5_np2.pkl"] {
            let data = try Fixtures.data(name)
            for length in 0..<data.count {
                let prefix = data.prefix(length)
                do {
                    _ = try Pickle.loadArrays(prefix, source: name)
                    Issue.record("\(name) cut to \(length) of \(data.count) bytes loaded without error")
                } catch {
                    #expect(error.source == name)
                }
            }
        }
    }

    @Test func corruptedBytesNeverCrash() throws {
        // Deterministic byte flips: each result is either an error or a dict of well-formed tensors.
        var rng = SplitMix64(seed: 0x5EED)
        for name in ["p2_np2.pkl", "p3_np1.pkl", "p5_np1.pkl"] {
            let original = [UInt8](try Fixtures.data(name))
            for _ in 0..<400 {
                var bytes = original
                for _ in 0..<Int(rng.next() % 4 + 1) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                if let arrays = try? Pickle.loadArrays(Data(bytes), source: name) {
                    for t in arrays.values { #expect(t.scalars.count == t.shape.reduce(1, *)) }
                }
            }
        }
    }
}

