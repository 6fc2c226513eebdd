// Hostile files: pickles shaped like known attacks (code-running globals, __reduce__ chains, BUILD on foreign
// objects, memo abuse, deep nesting, forbidden opcodes), header sizes that would allocate gigabytes, decompression
// bombs, and every crash input libFuzzer found (Tests/Fuzz/crashes/). Each must end in a clear LoadError (or a
// harmless load), quickly, without running anything or allocating what the header claims.
//
// The pickles are written byte by byte with the helpers in `PK` below; each test says what the bytes are. A few
// come from python3's own pickle (quoted verbatim, with the Python that made them). The bombs are made by
// Tests/Fuzz/make_bombs.py.

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

/// Pickle opcodes and small builders for hand-written pickles.
private enum PK {
    static let proto4: [UInt8] = [0x80, 0x04]
    static let mark: UInt8 = 0x28, stop: UInt8 = 0x2E, pop: UInt8 = 0x30, none: UInt8 = 0x4E
    static let tuple: UInt8 = 0x74, tuple1: UInt8 = 0x85, emptyTuple: UInt8 = 0x29
    static let emptyList: UInt8 = 0x5D, append: UInt8 = 0x61, appends: UInt8 = 0x65
    static let emptyDict: UInt8 = 0x7D, setitem: UInt8 = 0x73, emptySet: UInt8 = 0x8F
    static let reduce: UInt8 = 0x52, build: UInt8 = 0x62, newobj: UInt8 = 0x81, newobjEx: UInt8 = 0x92
    static let stackGlobal: UInt8 = 0x93, memoize: UInt8 = 0x94
    static let binput: UInt8 = 0x71, binget: UInt8 = 0x68, longBinput: UInt8 = 0x72, longBinget: UInt8 = 0x6A

    static func le32(_ n: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(truncatingIfNeeded: n).littleEndian, Array.init) }
    static func le64(_ n: UInt64) -> [UInt8] { withUnsafeBytes(of: n.littleEndian, Array.init) }
    /// GLOBAL 'module\nname\n' (protocol 0-3 style).
    static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }
    /// SHORT_BINUNICODE (a str of up to 255 UTF-8 bytes).
    static func str(_ s: String) -> [UInt8] { let u = Array(s.utf8); return [0x8C, UInt8(u.count)] + u }
    /// BININT1.
    static func int(_ v: UInt8) -> [UInt8] { [0x4B, v] }
    /// BINBYTES.
    static func bytes(_ b: [UInt8]) -> [UInt8] { [0x42] + le32(b.count) + b }
    /// numpy.dtype('f4') by REDUCE.
    static let dtypeF4: [UInt8] = global("numpy", "dtype") + str("f4") + [tuple1, reduce]
    /// `_frombuffer(<buffer>, dtype('f4'), (count,), 'C')`: a float32 array; `buffer` pushes the bytes.
    static func frombuffer(_ buffer: [UInt8], count: UInt8) -> [UInt8] {
        global("numpy.core.numeric", "_frombuffer") + [mark] + buffer + dtypeF4 + int(count) + [tuple1] + str("C") + [tuple, reduce]
    }
    /// A float32 array of `values` (shape (n,)).
    static func array(_ values: [Float]) -> [UInt8] {
        frombuffer(bytes(values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }), count: UInt8(values.count))
    }
    /// `{name: <value>}` then STOP.
    static func dict(_ name: String, _ value: [UInt8]) -> [UInt8] { proto4 + [emptyDict] + str(name) + value + [setitem, stop] }
}

/// Loads `bytes` as a pickle and returns the error's description ("" and an issue if it loaded).
private func pickleError(_ bytes: [UInt8], _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> String {
    let error = expectLoadError(comment, sourceLocation: sourceLocation) { _ = try Pickle.loadArrays(Data(bytes), source: "hostile.pkl") }
    if let error { #expect(error.source == "hostile.pkl", sourceLocation: sourceLocation) }
    return error?.description ?? ""
}

/// CRC-32 (the zip checksum), bit by bit.
private func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        crc ^= UInt32(b)
        for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0xEDB8_8320 : 0) }
    }
    return ~crc
}

/// The Tests/Fuzz folder (crash inputs, bombs).
private let fuzzDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fuzz")

private func fuzzFile(_ path: String) throws -> Data { try Data(contentsOf: fuzzDirectory.appendingPathComponent(path)) }

@Suite struct HostilePickleTests {
    @Test func theHelpersBuildLoadablePickles() throws {
        // Positive control for the byte builders: {'w': float32 [1.5, -2]} loads.
        let arrays = try Pickle.loadArrays(Data(PK.dict("w", PK.array([1.5, -2]))), source: "ok.pkl")
        #expect(arrays["w"]?.shape == [2] && arrays["w"]?.scalars == [1.5, -2])
    }

    /// Globals that run code, by GLOBAL, STACK_GLOBAL and in Python 2 naming; each refused by name.
    @Test(arguments: [
        ("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("subprocess", "check_output"),
        ("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"), ("builtins", "__import__"),
        ("builtins", "open"), ("__builtin__", "eval"), ("numpy", "load"), ("numpy.testing._private.utils", "runstring"),
        ("torch._utils", "_rebuild_tensor_v2"), ("collections", "defaultdict"), ("numpy.core.multiarray", "_reconstruct\nos"),
    ])
    func codeRunningGlobalsAreRefusedByName(_ module: String, _ name: String) {
        let shown = "\(module).\(name)"
        // GLOBAL 'module\nname\n'; SHORT_BINUNICODE 'echo'; TUPLE1; REDUCE; STOP   ==  module.name('echo')
        let viaGlobal = PK.proto4 + PK.global(module, name) + PK.str("echo") + [PK.tuple1, PK.reduce, PK.stop]
        if !name.contains("\n") {
            #expect(pickleError(viaGlobal).contains("refusing to load global '\(shown)'"))
        } else {
            // A newline in the name splits the GLOBAL line: 'numpy.core.multiarray._reconstruct' is allowed, but the
            // next line 'os' is then read as an opcode stream and fails.
            _ = pickleError(viaGlobal)
        }
        // The same through STACK_GLOBAL (protocol 4): two strings on the stack.
        let viaStack = PK.proto4 + PK.str(module) + PK.str(name) + [PK.stackGlobal] + PK.str("echo") + [PK.tuple1, PK.reduce, PK.stop]
        #expect(pickleError(viaStack).contains("refusing to load global '\(module).\(name)'"))
    }

    /// Pickles made by python3's pickle.dumps: `class A: __reduce__ = lambda self: (os.system, ("echo",))`,
    /// dumped as {"w": A()} with protocols 0, 2 and 4 (Python names os.system 'posix.system' on Linux), and
    /// `subprocess.Popen(["echo"])`, `builtins.exec("x=1")` by the same trick.
    @Test(arguments: [
        ("(dp0\nVw\np1\ncposix\nsystem\np2\n(Vecho\np3\ntp4\nRp5\ns.", "posix.system"),
        ("\u{80}\u{02}}q\u{00}X\u{01}\u{00}\u{00}\u{00}wq\u{01}cposix\nsystem\nq\u{02}X\u{04}\u{00}\u{00}\u{00}echoq\u{03}\u{85}q\u{04}Rq\u{05}s.", "posix.system"),
        ("\u{80}\u{04}\u{95}&\u{00}\u{00}\u{00}\u{00}\u{00}\u{00}\u{00}}\u{94}\u{8c}\u{01}w\u{94}\u{8c}\u{05}posix\u{94}\u{8c}\u{06}system\u{94}\u{93}\u{94}\u{8c}\u{04}echo\u{94}\u{85}\u{94}R\u{94}s.", "posix.system"),
        ("\u{80}\u{04}\u{95}&\u{00}\u{00}\u{00}\u{00}\u{00}\u{00}\u{00}\u{8c}\nsubprocess\u{94}\u{8c}\u{05}Popen\u{94}\u{93}\u{94}]\u{94}\u{8c}\u{04}echo\u{94}a\u{85}\u{94}R\u{94}.", "subprocess.Popen"),
        ("\u{80}\u{04}\u{95}\u{1f}\u{00}\u{00}\u{00}\u{00}\u{00}\u{00}\u{00}\u{8c}\u{08}builtins\u{94}\u{8c}\u{04}exec\u{94}\u{93}\u{94}\u{8c}\u{03}x=1\u{94}\u{85}\u{94}R\u{94}.", "builtins.exec"),
    ])
    func pythonMadeReducePayloads(_ latin1: String, _ global: String) {
        // The byte strings above are written as latin-1 text: each scalar is one byte.
        let bytes = latin1.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) }
        #expect(pickleError(bytes).contains("refusing to load global '\(global)'"))
    }

    @Test func reduceChainsAndNonCallables() {
        // REDUCE of a str: 'os.system' ('echo',) REDUCE
        #expect(pickleError(PK.proto4 + PK.str("os.system") + PK.str("echo") + [PK.tuple1, PK.reduce, PK.stop]).contains("not callable"))
        // REDUCE of an allowed call's result: bytes() then calling the bytes object: bytes()() 
        #expect(pickleError(PK.proto4 + PK.global("builtins", "bytes") + [PK.emptyTuple, PK.reduce, PK.emptyTuple, PK.reduce, PK.stop])
            .contains("REDUCE of bytes"))
        // OrderedDict() result called again: OrderedDict()()
        #expect(pickleError(PK.proto4 + PK.global("collections", "OrderedDict") + [PK.emptyTuple, PK.reduce, PK.emptyTuple, PK.reduce, PK.stop])
            .contains("REDUCE of a dict"))
        // _reconstruct(numpy.dtype, (0,), b'b'): an allowed function building something other than an ndarray
        #expect(pickleError(PK.proto4 + PK.global("numpy.core.multiarray", "_reconstruct") + [PK.mark] + PK.global("numpy", "dtype")
                            + PK.int(0) + [PK.tuple1, 0x43, 1, 0x62, PK.tuple, PK.reduce, PK.stop]).contains("_reconstruct"))
        // numpy.ndarray((2,)) called directly, and through NEWOBJ / NEWOBJ_EX
        #expect(pickleError(PK.proto4 + PK.global("numpy", "ndarray") + PK.int(2) + [PK.tuple1, PK.reduce, PK.stop]).contains("numpy.ndarray directly"))
        #expect(pickleError(PK.proto4 + PK.global("numpy", "ndarray") + [PK.emptyTuple, PK.newobj, PK.stop]).contains("numpy.ndarray directly"))
        #expect(pickleError(PK.proto4 + PK.global("os", "system") + [PK.emptyTuple, PK.emptyDict, PK.newobjEx, PK.stop]).contains("'os.system'"))
        // NEWOBJ of a list (not a class), REDUCE with a dict for arguments
        #expect(pickleError(PK.proto4 + [PK.emptyList, PK.emptyTuple, PK.newobj, PK.stop]).contains("NEWOBJ needs a class"))
        #expect(pickleError(PK.proto4 + PK.global("builtins", "set") + [PK.emptyDict, PK.reduce, PK.stop]).contains("not a tuple"))
        // _codecs.encode('x', 'zlib_codec'): only latin-1 is emulated
        #expect(pickleError(PK.proto4 + PK.global("_codecs", "encode") + PK.str("x") + PK.str("zlib_codec") + [0x86, PK.reduce, PK.stop])
            .contains("_codecs.encode"))
    }

    @Test func buildOnAnythingButArraysAndDictsIsRefused() {
        // BUILD (obj.__setstate__(state)) with an empty dict as state, on: a list, the ndarray class itself, None, a set,
        // a str, and bytes.
        let targets: [(String, [UInt8])] = [
            ("a list", [PK.emptyList]), ("the global 'numpy.ndarray'", PK.global("numpy", "ndarray")), ("None", [PK.none]),
            ("a set", [PK.emptySet]), ("a str", PK.str("x")), ("bytes", PK.bytes([1])),
        ]
        for (name, push) in targets {
            let message = pickleError(PK.proto4 + push + [PK.emptyDict, PK.build, PK.stop], "BUILD on \(name)")
            #expect(message.contains("refusing BUILD (__setstate__) on \(name)"), "\(message)")
        }
        // BUILD on a dtype or an array with a state of the wrong shape is corrupt, not a crash.
        #expect(pickleError(PK.proto4 + PK.dtypeF4 + PK.int(3) + [PK.build, PK.stop]).contains("dtype state"))
        let emptyArray = PK.global("numpy.core.multiarray", "_reconstruct") + [PK.mark] + PK.global("numpy", "ndarray") + PK.int(0)
            + [PK.tuple1, 0x43, 1, 0x62, PK.tuple, PK.reduce]
        #expect(pickleError(PK.proto4 + emptyArray + PK.str("state") + [PK.build, PK.stop]).contains("array state"))
        // An array that was created but never BUILT is an error when read, not uninitialised memory.
        #expect(pickleError(PK.dict("a", emptyArray)).contains("never given its data"))
        // BUILD on a dict merges a dict state (OrderedDict.__setstate__), harmless.
        #expect((try? Pickle.loadArrays(Data(PK.proto4 + [PK.emptyDict, PK.emptyDict, PK.build, PK.stop]), source: "d.pkl"))?.isEmpty == true)
    }

    @Test func memoAbuse() throws {
        #expect(pickleError(PK.proto4 + [PK.binget, 5, PK.stop]).contains("never stored"), "BINGET of an unset index")
        #expect(pickleError(PK.proto4 + [PK.longBinget] + PK.le32(0xFFFF_FFFF) + [PK.stop]).contains("never stored"), "LONG_BINGET 2^32-1")
        #expect(pickleError(PK.proto4 + [PK.none, PK.longBinput] + PK.le32(0xFFFF_FFFF) + [PK.stop]).contains("out of range"), "LONG_BINPUT 2^32-1")
        #expect(pickleError(PK.proto4 + [PK.none, 0x70] + Array("-1\n".utf8) + [PK.stop]).contains("out of range"), "PUT -1")
        #expect(pickleError(PK.proto4 + [0x67] + Array("99999999999999999999\n".utf8) + [PK.stop]).contains("GET index"), "GET beyond Int")
        #expect(pickleError(PK.proto4 + [PK.memoize, PK.stop]).contains("empty stack"), "MEMOIZE on an empty stack")
        #expect(pickleError(PK.proto4 + [PK.binput, 0, PK.stop]).contains("empty stack"), "BINPUT on an empty stack")
        // PUT overwriting: memo 0 = array [1], then memo 0 = 'x'; GET 0 under 'b' yields the str, as in Python, so
        // only 'a' is an array. (No type confusion: the memo holds values, not slots of a particular kind.)
        let overwrite = PK.proto4 + [PK.emptyDict] + PK.str("a") + PK.array([1]) + [PK.binput, 0, PK.setitem]
            + PK.str("x") + [PK.binput, 0, PK.pop] + PK.str("b") + [PK.binget, 0, PK.setitem, PK.stop]
        let arrays = try Pickle.loadArrays(Data(overwrite), source: "overwrite.pkl")
        #expect(Array(arrays.keys) == ["a"] && arrays["a"]?.scalars == [1])
        // One array under two names (memo GET of the array) is fine: both names, the same values.
        let shared = PK.proto4 + [PK.emptyDict] + PK.str("a") + PK.array([7, 8]) + [PK.binput, 0, PK.setitem]
            + PK.str("b") + [PK.binget, 0, PK.setitem, PK.stop]
        let both = try Pickle.loadArrays(Data(shared), source: "shared.pkl")
        #expect(both["a"]?.scalars == [7, 8] && both["b"]?.scalars == [7, 8])
    }

    @Test func deeplyNestedStructuresNeverOverflowTheStack() throws {
        let n = 100_000
        // 100k EMPTY_LIST then 99,999 APPEND: [[[...]]] 100k deep, under key 'l'.
        let lists = PK.proto4 + [PK.emptyDict] + PK.str("l") + [UInt8](repeating: PK.emptyList, count: n)
            + [UInt8](repeating: PK.append, count: n - 1) + [PK.setitem, PK.stop]
        #expect(try Pickle.loadArrays(Data(lists), source: "lists.pkl").isEmpty)
        // 100k MARK then 100k TUPLE: ((((...)))), and a million unclosed MARKs (an error at STOP).
        let tuples = PK.proto4 + [PK.emptyDict] + PK.str("t") + [UInt8](repeating: PK.mark, count: n)
            + [UInt8](repeating: PK.tuple, count: n) + [PK.setitem, PK.stop]
        #expect(try Pickle.loadArrays(Data(tuples), source: "tuples.pkl").isEmpty)
        #expect(pickleError(PK.proto4 + [PK.none] + [UInt8](repeating: PK.mark, count: 1_000_000) + [PK.stop]).contains("MARK"))
        // 100k dicts {'k': {'k': ...}}: EMPTY_DICT 'k' repeated, then SETITEM 99,999 times.
        var dicts = PK.proto4
        for _ in 0..<n { dicts += [PK.emptyDict] + PK.str("k") }
        dicts.removeLast(3) // the innermost dict has no key after it
        dicts += [UInt8](repeating: PK.setitem, count: n - 1) + [PK.stop]
        #expect(try Pickle.loadArrays(Data(dicts), source: "dicts.pkl").isEmpty)
    }

    @Test func stackGlobalWithNonStrings() {
        #expect(pickleError(PK.proto4 + PK.int(1) + PK.int(2) + [PK.stackGlobal, PK.stop]).contains("two strings"))
        #expect(pickleError(PK.proto4 + PK.str("os") + PK.int(2) + [PK.stackGlobal, PK.stop]).contains("two strings"))
        #expect(pickleError(PK.proto4 + PK.bytes(Array("os".utf8)) + PK.str("system") + [PK.stackGlobal, PK.stop]).contains("two strings"))
        #expect(pickleError(PK.proto4 + [PK.stackGlobal, PK.stop]).contains("empty stack"))
    }

    @Test func forbiddenOpcodes() {
        let cases: [(String, [UInt8], String)] = [
            ("PERSID 'x'", [0x50] + Array("x\n".utf8), "persistent"),
            ("BINPERSID", PK.str("x") + [0x51], "persistent"),
            ("EXT1 1", [0x82, 1], "EXT"), ("EXT2 1", [0x83, 1, 0], "EXT"), ("EXT4 1", [0x84, 1, 0, 0, 0], "EXT"),
            ("INST os system", [PK.mark, 0x69] + Array("os\nsystem\n".utf8), "INST"),
            ("OBJ builtins.set", [PK.mark] + PK.global("builtins", "set") + [0x6F], "OBJ"),
            ("NEXT_BUFFER", [0x97], "out-of-band"),
        ]
        for (what, body, word) in cases {
            let message = pickleError(PK.proto4 + body + [PK.stop], "\(what)")
            #expect(message.contains(word), "\(what): \(message)")
        }
    }

    @Test func sizesFromTheFileAreCheckedBeforeAllocating() {
        let cases: [(String, [UInt8])] = [
            ("FRAME 2^40", [0x95] + PK.le64(1 << 40)),
            ("BINUNICODE 2^32-1", [0x58] + PK.le32(0xFFFF_FFFF)),
            ("BINBYTES 2^32-1", [0x42] + PK.le32(0xFFFF_FFFF)),
            ("BINBYTES8 2^63-1", [0x8E] + PK.le64(UInt64(Int.max))),
            ("BINBYTES8 2^64-1", [0x8E] + PK.le64(.max)),
            ("BINUNICODE8 2^62", [0x8D] + PK.le64(1 << 62)),
            ("BYTEARRAY8 2^40", [0x96] + PK.le64(1 << 40)),
            ("BINSTRING -1", [0x54] + PK.le32(-1)),
            ("LONG4 -1", [0x8B] + PK.le32(-1)),
            ("LONG4 2^31-1", [0x8B] + PK.le32(Int(Int32.max))),
        ]
        for (what, body) in cases { _ = pickleError(PK.proto4 + body + [PK.stop], "\(what)") }
    }

    @Test func arraysSharingOneBufferCannotAmplifyMemory() throws {
        // One 64 KiB buffer (memo 0), then 1000 arrays made from it by _frombuffer: a 130 KB file that would
        // decode to 256 MB of floats. Refused once the arrays hold more data than the file.
        var bytes = PK.proto4 + [PK.emptyDict]
        let buffer = PK.bytes([UInt8](repeating: 0, count: 64 << 10)) + [PK.binput, 0]
        for i in 0..<1000 {
            let raw = i == 0 ? buffer : [PK.binget, 0]
            bytes += PK.str("a\(i)") + PK.global("numpy.core.numeric", "_frombuffer") + [PK.mark] + raw + PK.dtypeF4
                + [0x4D, 0x00, 0x40, PK.tuple1] + PK.str("C") + [PK.tuple, PK.reduce, PK.setitem] // shape (16384,)
        }
        let message = pickleError(bytes + [PK.stop])
        #expect(message.contains("share buffers"), "\(message)")
        // The same with the buffer used once is fine (positive control).
        var one = PK.proto4 + [PK.emptyDict] + PK.str("a") + PK.global("numpy.core.numeric", "_frombuffer") + [PK.mark] + buffer
        one += PK.dtypeF4 + [0x4D, 0x00, 0x40, PK.tuple1] + PK.str("C") + [PK.tuple, PK.reduce, PK.setitem, PK.stop]
        #expect(try Pickle.loadArrays(Data(one), source: "one.pkl")["a"]?.shape == [16384])
    }

    @Test func quadraticWorkIsBounded() throws {
        // A list of 100,000 None (memo 0), then OrderedDict(list) k times: k * 100,000 steps from a ~100 KB file.
        func pickle(calls: Int) -> [UInt8] {
            var bytes = PK.proto4 + [PK.emptyDict, PK.emptyList, PK.binput, 0, PK.mark]
            bytes += [UInt8](repeating: PK.none, count: 100_000) + [PK.appends, PK.pop]
            for _ in 0..<calls {
                bytes += PK.global("collections", "OrderedDict") + [PK.binget, 0, PK.tuple1, PK.reduce, PK.pop]
            }
            return bytes + [PK.stop]
        }
        let start = Date()
        let message = pickleError(pickle(calls: 50))
        #expect(message.contains("maxWork"), "\(message)")
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(try Pickle.loadArrays(Data(pickle(calls: 8)), source: "ok.pkl").isEmpty, "8 calls (800,000 steps) stay under the limit")
        // The fuzzer's find: BUILD merging a dict into itself doubles it each time (non-str keys are appended).
        // {None: None}, then DUP + BUILD 22 times would make 2^22 entries (2^22 steps, over the 2^20 limit; few
        // enough that a loader without the limit still finishes, so the test fails rather than the process).
        let doubling = PK.proto4 + [PK.emptyDict, PK.none, PK.none, PK.setitem] + [UInt8](repeating: 0, count: 22).flatMap { _ in [0x32, PK.build] }
        let start2 = Date()
        #expect(pickleError(doubling + [PK.stop]).contains("maxWork"))
        #expect(Date().timeIntervalSince(start2) < 5)
    }

    /// `_codecs.encode(<text>, 'latin1')`: how protocol 2 stores bytes; `text` is latin-1, one scalar per byte.
    private func latin1Bytes(_ bytes: [UInt8]) -> [UInt8] {
        let utf8 = Array(String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) })).utf8)
        return PK.global("_codecs", "encode") + [0x58] + PK.le32(utf8.count) + utf8 + PK.str("latin1") + [0x86, PK.reduce]
    }

    @Test func largeProtocol2ArraysLoad() throws {
        // A protocol-2 pickle keeps array data as latin-1 text. 1,000,000 floats of -1.5 (bytes 00 00 c0 bf) are
        // 6 MB of UTF-8 text; this used to exceed the work limit (one unit per byte), so a 4 MB protocol-2
        // weights file from NumPy was refused. Copying text is now bounded by the file's size instead.
        let count = 1_000_000
        let raw = [UInt8](repeating: 0, count: 4 * count).enumerated().map { i, _ in [0, 0, 0xC0, 0xBF][i % 4] } as [UInt8]
        let array = PK.global("numpy.core.numeric", "_frombuffer") + [PK.mark] + latin1Bytes(raw) + PK.dtypeF4
            + [0x4A] + PK.le32(count) + [PK.tuple1] + PK.str("C") + [PK.tuple, PK.reduce]
        let loaded = try Pickle.loadArrays(Data(PK.dict("W", array)), source: "p2.pkl")
        #expect(loaded["W"]?.shape == [count])
        #expect(loaded["W"]?.scalars.allSatisfy { $0 == -1.5 } == true)
    }

    @Test func reconvertingOneLatin1StringIsBounded() {
        // One 60 KB latin-1 string memoized, then converted 1000 times (60 MB of copies from a ~70 KB file):
        // stopped once the copies pass twice the file's size.
        var bytes = PK.proto4 + [PK.emptyDict] + PK.global("_codecs", "encode") + [PK.binput, 1]
        bytes += [0x58] + PK.le32(60_000) + [UInt8](repeating: 0x41, count: 60_000) + [PK.binput, 2] + PK.str("latin1") + [0x86, PK.reduce, PK.pop]
        for _ in 0..<1000 { bytes += [PK.binget, 1, PK.binget, 2] + PK.str("latin1") + [0x86, PK.reduce, PK.pop] }
        let start = Date()
        let message = pickleError(bytes + [PK.stop])
        #expect(message.contains("converts more than") && message.contains("twice the file's size"), "\(message)")
        #expect(Date().timeIntervalSince(start) < 5)
    }
}

@Suite struct ResourceLimitTests {
    @Test func gzipBombStopsAtTheLimit() throws {
        // 16 KB of gzip inflating to 16 MiB of zeros, read with a 1 MiB limit: the output buffer never grows past
        // limit + 1 bytes, and the error names the file and the limit.
        let bomb = try fuzzFile("bombs/zeros16m.gz")
        #expect(bomb.count < 20_000)
        let start = Date()
        let error = expectLoadError { _ = try Gzip.decompressIfNeeded(bomb, source: "bomb.gz", maxOutput: 1 << 20) }
        #expect(Date().timeIntervalSince(start) < 1)
        #expect(error?.description.contains("bomb.gz: gzip data decompresses to more than the 1048576-byte limit") == true,
                "\(String(describing: error))")
        // With room for it, the same file inflates (it is a valid gzip file).
        #expect(try Gzip.decompressIfNeeded(bomb, source: "bomb.gz", maxOutput: 16 << 20).count == 16 << 20)
    }

    /// A gzip file of `bytes` in stored (uncompressed) deflate blocks; `isize` overrides the trailer's size.
    private func storedGzip(_ bytes: [UInt8], isize: Int? = nil) -> [UInt8] {
        var out: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF]
        var start = 0
        repeat {
            let n = min(65_535, bytes.count - start), last = start + n == bytes.count
            out += [last ? 1 : 0, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += bytes[start..<(start + n)]
            start += n
        } while start < bytes.count
        return out + PK.le32(Int(crc32(bytes))) + PK.le32(isize ?? bytes.count)
    }

    @Test func gzippedWeightsInflateOnlyToTheSizeTheirTrailerDeclares() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-gzw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func load(_ name: String, _ bytes: [UInt8]) throws(LoadError) -> [String: Tensor] {
            let url = dir.appendingPathComponent(name)
            do { try Data(bytes).write(to: url) } catch { Issue.record("cannot write \(url.path)") }
            return try WeightsFile.load(url)
        }
        // Positive control: a gzipped safetensors file loads bitwise like the plain one.
        let plain = [UInt8](try Fixtures.data("tensors.safetensors"))
        let expected = try load("plain.safetensors", plain)
        let gzipped = try load("w.safetensors.gz", storedGzip(plain))
        #expect(gzipped.keys.sorted() == expected.keys.sorted() && !expected.isEmpty)
        for (k, v) in expected { #expect(gzipped[k].map { bitwiseEqual($0, v) } == true, "\(k)") }
        // A bomb whose trailer says 1000 bytes while it inflates to 16 MiB stops at 1000 + 1 bytes.
        var liar = [UInt8](try fuzzFile("bombs/zeros16m.gz"))
        liar.replaceSubrange((liar.count - 4)..., with: PK.le32(1000))
        let start = Date()
        let lie = expectLoadError { _ = try load("liar.pkl.gz", liar) }
        #expect(Date().timeIntervalSince(start) < 1)
        #expect(lie?.description.contains("more than the 1000-byte limit (the size its gzip trailer declares") == true, "\(String(describing: lie))")
        // Two gzip members joined: more than the last member's ISIZE, refused with the gunzip advice.
        let joined = expectLoadError { _ = try load("joined.safetensors.gz", storedGzip(plain) + storedGzip(plain)) }
        #expect(joined?.description.contains("gunzip a multi-member file first") == true, "\(String(describing: joined))")
        // A file too short to hold a gzip header and trailer.
        #expect(expectLoadError { _ = try load("short.gz", [0x1F, 0x8B, 8, 0]) }?.description.contains("shorter than a gzip header") == true)
    }

    @Test func idxBombIsStoppedByItsOwnHeader() throws {
        // An IDX header declaring one 28x28 image followed by 16 MiB of zeros: inflation stops after the
        // 16 + 784 bytes the header declares (not at IDX.maxSize = 1 GiB).
        let start = Date()
        let error = expectLoadError { _ = try IDX.read(try fuzzFile("bombs/idx_bomb.idx3.gz"), source: "bomb.idx3.gz") }
        #expect(Date().timeIntervalSince(start) < 1)
        #expect(error?.description.contains("more than the 800-byte limit (what the IDX header's dimensions [1, 28, 28] declare)") == true,
                "\(String(describing: error))")
        // A header declaring 65536 x 65536 x 1 bytes (4 GiB) is refused before inflating anything more.
        let huge = expectLoadError { _ = try IDX.read(try fuzzFile("bombs/idx_huge.idx3.gz"), source: "huge.idx3.gz") }
        #expect(huge?.description.contains("IDX.maxSize") == true, "\(String(describing: huge))")
        // The same header uncompressed.
        let raw: [UInt8] = [0, 0, 8, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]
        #expect(expectLoadError { _ = try IDX.read(Data(raw), source: "huge.idx3") }?.description.contains("1073741824-byte limit") == true)
    }

    @Test func mnistSetSizesThatOverflowAreErrors() {
        expectLoadError { _ = try MNISTSet(images: [], labels: [], count: Int.max / 2, rows: 4, cols: 4) }
        expectLoadError { _ = try MNISTSet(images: [], labels: [], count: 1, rows: Int.max, cols: Int.max) }
    }

    /// A minimal zip writer: local headers + central directory + end record. `entries` lists central directory
    /// entries (name, local header index, declared sizes) so that entries can lie or share one local file.
    private func zip(files: [(name: String, data: [UInt8], method: UInt16)],
                     entries: [(name: String, file: Int, compressedSize: Int?, size: Int?)]) -> [UInt8] {
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
        var out: [UInt8] = [], offsets: [Int] = []
        for f in files {
            offsets.append(out.count)
            out += [0x50, 0x4B, 0x03, 0x04] + le16(20) + le16(0) + le16(Int(f.method)) + le16(0) + le16(0)
            out += PK.le32(0) + PK.le32(f.data.count) + PK.le32(f.data.count) + le16(f.name.utf8.count) + le16(0)
            out += Array(f.name.utf8) + f.data
        }
        let cdStart = out.count
        for e in entries {
            let f = files[e.file]
            out += [0x50, 0x4B, 0x01, 0x02] + le16(20) + le16(20) + le16(0) + le16(Int(f.method)) + le16(0) + le16(0)
            out += PK.le32(Int(crc32(f.data))) + PK.le32(e.compressedSize ?? f.data.count) + PK.le32(e.size ?? f.data.count)
            out += le16(e.name.utf8.count) + le16(0) + le16(0) + le16(0) + le16(0) + PK.le32(0) + PK.le32(offsets[e.file])
            out += Array(e.name.utf8)
        }
        out += [0x50, 0x4B, 0x05, 0x06] + le16(0) + le16(0) + le16(entries.count) + le16(entries.count)
        out += PK.le32(out.count - cdStart) + PK.le32(cdStart) + le16(0)
        return out
    }

    @Test func npzSizesAndOverlapsAreChecked() throws {
        let npy = [UInt8](NumPyFormat.encodeNPY(try Tensor(shape: [2], scalars: [1, 2])))
        // Positive control: one stored member loads.
        let good = zip(files: [("a.npy", npy, 0)], entries: [("a.npy", 0, nil, nil)])
        #expect(try NumPyFormat.loadNPZ(Data(good), source: "good.npz")["a"]?.scalars == [1, 2])
        // Two central directory entries pointing at one local file (the overlapping-files zip bomb).
        let twice = zip(files: [("a.npy", npy, 0)], entries: [("a.npy", 0, nil, nil), ("b.npy", 0, nil, nil)])
        #expect(expectLoadError { _ = try NumPyFormat.loadNPZ(Data(twice), source: "twice.npz") }?.description.contains("overlaps") == true)
        // A deflated member of 10 bytes claiming 2 GiB - 1: refused before a buffer of that size is made.
        // (Without that check a later guard still refuses it, but only after 3-8 s filling a 2 GiB buffer.)
        let liar = zip(files: [("a.npy", [UInt8](repeating: 0, count: 10), 8)], entries: [("a.npy", 0, nil, 0x7FFF_FFFF)])
        let start = Date()
        let error = expectLoadError { _ = try NumPyFormat.loadNPZ(Data(liar), source: "liar.npz") }
        #expect(Date().timeIntervalSince(start) < 1)
        #expect(error?.description.contains("claims 2147483647 bytes, more than 10 bytes of deflate data can hold") == true,
                "\(String(describing: error))")
        // A member claiming 4 GiB - 1 (over the per-member limit).
        let big = zip(files: [("a.npy", [UInt8](repeating: 0, count: 10), 8)], entries: [("a.npy", 0, nil, 0xFFFF_FFFE)])
        #expect(expectLoadError { _ = try NumPyFormat.loadNPZ(Data(big), source: "big.npz") }?.description.contains("NumPyFormat.maxMemberSize") == true)
    }

    @Test func npyAndSafetensorsShapesAreCheckedAgainstTheData() throws {
        func npy(_ header: String) -> Data {
            let h = Array(header.utf8)
            return Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(h.count & 0xFF), UInt8(h.count >> 8)] + h + [0, 0, 0, 0])
        }
        let cases = [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }\n",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }\n",
            "{'descr': '<f8', 'fortran_order': True, 'shape': (4611686018427387904, 4), }\n",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }\n",
        ]
        for header in cases { expectLoadError("\(header)") { _ = try NumPyFormat.loadNPY(npy(header), source: "x.npy") } }
        // safetensors: a header length of 2^40, and a [2^30, 2^30] F32 tensor with 4 bytes of data.
        let longHeader = Data(PK.le64(1 << 40) + Array("{}".utf8))
        #expect(expectLoadError { _ = try SafeTensors.load(longHeader, source: "x.safetensors") }?.description.contains("SafeTensors.maxHeaderSize") == true)
        var header = Array(#"{"a":{"dtype":"F32","shape":[1073741824,1073741824],"data_offsets":[0,4]}}"#.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        let huge = Data(PK.le64(UInt64(header.count)) + header + [0, 0, 0, 0])
        expectLoadError { _ = try SafeTensors.load(huge, source: "x.safetensors") }
        // data_offsets running past the data present (2^40 claimed, 4 bytes there): refused, never sliced.
        var past = Array(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,1099511627776]}}"#.utf8)
        while past.count % 8 != 0 { past.append(0x20) }
        let pastData = Data(PK.le64(UInt64(past.count)) + past + [0, 0, 0, 0])
        #expect(expectLoadError { _ = try SafeTensors.load(pastData, source: "x.safetensors") }?.description
            .contains("outside the 4 data bytes") == true)
    }
}

@Suite struct FuzzCrashRegressionTests {
    /// Every input libFuzzer reported (Tests/Fuzz/crashes/<target>/) runs through its parser again: each must now
    /// end in a LoadError.
    @Test(arguments: ["pickle", "safetensors", "npy", "npz", "idx", "gzip", "weights"])
    func savedCrashInputs(_ target: String) throws {
        let folder = fuzzDirectory.appendingPathComponent("crashes/\(target)")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { !$0.hasPrefix(".") }
        for name in names.sorted() {
            let data = try Data(contentsOf: folder.appendingPathComponent(name))
            let error = expectLoadError("\(target)/\(name) should be refused") {
                switch target {
                case "pickle": _ = try Pickle.loadArrays(data, source: name)
                case "safetensors": _ = try SafeTensors.load(data, source: name)
                case "npy": _ = try NumPyFormat.loadNPY(data, source: name)
                case "npz": _ = try NumPyFormat.loadNPZ(data, source: name)
                case "idx": _ = try IDX.read(data, source: name)
                case "gzip": _ = try Gzip.decompressIfNeeded(data, source: name, maxOutput: 1 << 20)
                default: _ = try WeightsFile.load(data, source: name)
                }
            }
            #expect(error?.source == name)
        }
    }
}
