// Tests of .npy (v1/v2/v3, Fortran order, float64, big-endian, 0-d, empty), .npz (stored and deflated),
// safetensors (fixture written from the spec, round trips, offset checks) and WeightsFile's format detection,
// including truncated and corrupt files of each format.

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

@Suite struct NumPyTests {
    @Test(arguments: [("c_v1.npy", "c"), ("c_v2.npy", "c"), ("c_v3.npy", "c"), ("f_fortran.npy", "f"),
                      ("f3_fortran.npy", "f3"), ("d_f64.npy", "d"), ("be_f4.npy", "be"), ("empty2.npy", "empty2")])
    func npyFixtures(_ file: String, _ key: String) throws {
        let t = try NumPyFormat.loadNPY(try Fixtures.data(file), source: file)
        let want = try #require(FixtureArrays.all[key])
        #expect(bitwiseEqual(t, want), "\(file): \(t.shape) \(t.scalars.prefix(8))")
    }

    @Test func zeroDimensional() throws {
        let t = try NumPyFormat.loadNPY(try Fixtures.data("scalar0d.npy"), source: "scalar0d.npy")
        #expect(t.shape == [] && t.scalars == [1.5])
    }

    @Test func objectArraysAreRefused() throws {
        let error = expectLoadError { _ = try NumPyFormat.loadNPY(try Fixtures.data("object.npy"), source: "object.npy") }
        #expect(error?.description.contains("object") == true)
    }

    @Test(arguments: ["stored.npz", "deflated.npz"])
    func npzFixtures(_ file: String) throws {
        let arrays = try NumPyFormat.loadNPZ(try Fixtures.data(file), source: file)
        #expect(Set(arrays.keys) == ["c", "f", "d", "be", "one", "empty"])
        for (key, t) in arrays {
            #expect(bitwiseEqual(t, try #require(FixtureArrays.all[key])), "\(file): \(key)")
        }
        let viaDetection = try WeightsFile.load(Fixtures.url(file))
        #expect(viaDetection.keys.sorted() == arrays.keys.sorted())
    }

    @Test(arguments: [[], [1], [7], [33], [1, 1], [7, 33], [1000], [2, 3, 5], [0], [0, 4]])
    func npyRoundTrip(_ shape: [Int]) throws {
        let n = shape.reduce(1, *)
        var t = FixtureArrays.make(shape) { Float($0) * 0.37 - 5 }
        if n > 2 { t.scalars[1] = .nan; t.scalars[2] = -.infinity }
        let data = NumPyFormat.encodeNPY(t)
        #expect((data.count - 4 * n) % 64 == 0, "header is padded to 64 bytes")
        #expect(bitwiseEqual(try NumPyFormat.loadNPY(data, source: "rt.npy"), t))
        let viaDetection = try WeightsFile.load(data, source: "weights.npy", name: "weights")
        #expect(viaDetection.keys.sorted() == ["weights"])
    }

    @Test func badHeaders() throws {
        func npy(_ header: String, data: [UInt8] = []) -> Data {
            var h = Array(header.utf8)
            h.append(UInt8(ascii: "\n"))
            return Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.count & 0xFF), UInt8(h.count >> 8)] + h + data)
        }
        let cases: [(String, Data)] = [
            ("bad magic", Data("XNUMPY".utf8) + Data([1, 0, 0, 0])),
            ("version 4", Data([0x93] + Array("NUMPY".utf8) + [4, 0, 0, 0])),
            ("no shape", npy("{'descr': '<f4', 'fortran_order': False}")),
            ("unsupported dtype", npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", data: [UInt8](repeating: 0, count: 8))),
            ("record dtype", npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", data: [0, 0, 0, 0])),
            ("too little data", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data: [0, 0, 0, 0])),
            ("too much data", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", data: [UInt8](repeating: 0, count: 8))),
            ("negative dim", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }")),
            ("overflowing shape", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }")),
            ("garbage", npy("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,), }", data: [0, 0, 0, 0])),
            ("unterminated", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,")),
        ]
        for (what, data) in cases {
            let error = expectLoadError("\(what) should fail") { _ = try NumPyFormat.loadNPY(data, source: "bad.npy") }
            #expect(error?.source == "bad.npy", "\(what)")
        }
    }

    @Test func everyTruncationIsAnError() throws {
        for file in ["c_v1.npy", "f_fortran.npy", "stored.npz", "deflated.npz"] {
            let data = try Fixtures.data(file)
            for length in 0..<data.count {
                let prefix = data.prefix(length)
                let loaded: Bool
                if file.hasSuffix(".npy") {
                    loaded = (try? NumPyFormat.loadNPY(prefix, source: file)) != nil
                } else {
                    loaded = (try? NumPyFormat.loadNPZ(prefix, source: file)) != nil
                }
                #expect(!loaded, "\(file) cut to \(length) of \(data.count) bytes loaded")
            }
        }
    }

    @Test func corruptArchiveMembersFailTheirCRC() throws {
        for file in ["stored.npz", "deflated.npz"] {
            var bytes = [UInt8](try Fixtures.data(file))
            // Flip one byte inside the first member's data (after its 30-byte local header and name).
            let nameLength = Int(bytes[26]) | Int(bytes[27]) << 8, extraLength = Int(bytes[28]) | Int(bytes[29]) << 8
            bytes[30 + nameLength + extraLength + 100] ^= 0x10
            let error = expectLoadError("\(file)") { _ = try NumPyFormat.loadNPZ(Data(bytes), source: file) }
            #expect(error?.description.contains(file) == true)
        }
        var rng = SplitMix64(seed: 7)
        let original = [UInt8](try Fixtures.data("deflated.npz"))
        for _ in 0..<300 {
            var bytes = original
            bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            _ = try? NumPyFormat.loadNPZ(Data(bytes), source: "fuzz.npz") // must not crash
        }
    }
}

@Suite struct SafeTensorsTests {
    @Test func fixtureWrittenFromTheSpec() throws {
        let t = try SafeTensors.load(try Fixtures.data("tensors.safetensors"), source: "tensors.safetensors")
        #expect(Set(t.keys) == ["c", "d", "f", "one", "empty"])
        for (key, value) in t { #expect(bitwiseEqual(value, try #require(FixtureArrays.all[key])), "\(key)") }
        #expect(try WeightsFile.load(Fixtures.url("tensors.safetensors")).count == 5)
    }

    @Test func roundTripThroughAFile() throws {
        var tensors: [String: Tensor] = [:]
        for (i, shape) in [[1], [7], [33, 1], [2, 3, 5], [0], [1000], [0, 3], []].enumerated() {
            tensors["t\(i)"] = FixtureArrays.make(shape) { Float($0 + i) * -0.125 }
        }
        tensors["with \"quotes\"\n"] = FixtureArrays.c // NaN, ±inf, and a name needing JSON escapes
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-io-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("w.safetensors")
        try SafeTensors.write(tensors, to: url)
        try SafeTensors.write(tensors, to: url) // overwrite in place
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["w.safetensors"], "no temp files left")
        let back = try WeightsFile.load(url)
        #expect(back.keys.sorted() == tensors.keys.sorted())
        for (k, v) in tensors { #expect(bitwiseEqual(try #require(back[k]), v), "\(k)") }
        let data = try SafeTensors.encode(tensors)
        #expect(data == (try Data(contentsOf: url)), "encoding is deterministic")
        #expect(Int(data[0]) % 8 == 0, "header padded to 8 bytes")
    }

    @Test func writeIntoMissingFolderIsAnError() throws {
        let url = URL(fileURLWithPath: "/nonexistent-\(UUID().uuidString)/w.safetensors")
        let error = expectLoadError { try SafeTensors.write(["a": FixtureArrays.one], to: url) }
        #expect(error?.description.contains(url.path) == true)
    }

    /// A safetensors file with `header` and `dataBytes` zero bytes of data.
    static func file(_ header: String, dataBytes: Int) -> Data {
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var n = UInt64(h.count).littleEndian
        return withUnsafeBytes(of: &n) { Data($0) } + Data(h) + Data(count: dataBytes)
    }

    @Test func offsetAndHeaderChecks() throws {
        let cases: [(String, Data)] = [
            ("empty", Data()),
            ("short length", Data([1, 2, 3])),
            ("huge header length", Data([0, 0, 0, 0, 0, 0, 0, 0x10]) + Data("{}".utf8)),
            ("header past the end", Self.file("{}", dataBytes: 0).prefix(9)),
            ("not JSON", Self.file("{nope", dataBytes: 0)),
            ("not an object", Self.file("[1]", dataBytes: 0)),
            ("missing dtype", Self.file(#"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4)),
            ("unknown dtype", Self.file(#"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, dataBytes: 8)),
            ("past the data", Self.file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, dataBytes: 4)),
            ("size mismatch", Self.file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, dataBytes: 8)),
            ("reversed offsets", Self.file(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#, dataBytes: 4)),
            ("overlap", Self.file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, dataBytes: 8)),
            ("hole", Self.file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, dataBytes: 8)),
            ("trailing bytes", Self.file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 8)),
            ("negative dim", Self.file(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#, dataBytes: 0)),
            ("fractional offset", Self.file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}}"#, dataBytes: 4)),
        ]
        for (what, data) in cases {
            let error = expectLoadError("\(what) should fail") { _ = try SafeTensors.load(data, source: "bad.safetensors") }
            #expect(error?.source == "bad.safetensors", "\(what)")
        }
        // Other dtypes convert: F64, F16, BF16, I32.
        var raw = Data()
        for bits in [(1.5 as Double).bitPattern] { var b = bits.littleEndian; raw.append(contentsOf: withUnsafeBytes(of: &b, Array.init)) }
        raw.append(contentsOf: [0x00, 0x3C, 0x00, 0x7C, 0x01, 0x00]) // F16: 1.0, +inf, smallest subnormal
        raw.append(contentsOf: [0xC0, 0x3F]) // BF16: 1.5
        raw.append(contentsOf: [0xFE, 0xFF, 0xFF, 0xFF]) // I32: -2
        let header = #"{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"h":{"dtype":"F16","shape":[3],"data_offsets":[8,14]},"#
            + #""b":{"dtype":"BF16","shape":[1],"data_offsets":[14,16]},"i":{"dtype":"I32","shape":[1],"data_offsets":[16,20]},"__metadata__":{"k":"v"}}"#
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var n = UInt64(h.count).littleEndian
        let file = withUnsafeBytes(of: &n) { Data($0) } + Data(h) + raw
        let t = try SafeTensors.load(file, source: "dtypes.safetensors")
        #expect(t["a"]?.scalars == [1.5])
        #expect(t["h"]?.scalars == [1.0, .infinity, Float(sign: .plus, exponent: -24, significand: 1)])
        #expect(t["b"]?.scalars == [1.5])
        #expect(t["i"]?.scalars == [-2])
    }

    @Test func everyTruncationIsAnError() throws {
        let data = try Fixtures.data("tensors.safetensors")
        for length in 0..<data.count {
            #expect((try? SafeTensors.load(data.prefix(length), source: "t")) == nil, "cut to \(length)")
        }
    }
}

@Suite struct WeightsFileTests {
    @Test func unknownFormatsAndMissingFiles() throws {
        let missing = URL(fileURLWithPath: "/nonexistent/\(UUID().uuidString).pkl")
        let e1 = expectLoadError { _ = try WeightsFile.load(missing) }
        #expect(e1?.description.contains(missing.path) == true)
        let e2 = expectLoadError { _ = try WeightsFile.load(Data("hello world".utf8), source: "x.bin") }
        #expect(e2?.description.contains("unknown weights format") == true)
        let e3 = expectLoadError { _ = try WeightsFile.load(Data(), source: "empty.bin") }
        #expect(e3?.description.contains("empty") == true)
        // Protocol 0 pickles do not start with PROTO and are not accepted.
        expectLoadError { _ = try WeightsFile.load(Data("(dp0\n.".utf8), source: "p0.pkl") }
    }
}
