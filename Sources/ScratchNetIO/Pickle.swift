// Pickle: a RESTRICTED unpickler for the files NumPy writes with Python's pickle (protocols 2-5), such as the
// book's sample_weight.pkl. It interprets the pickle opcodes itself and rebuilds only NumPy arrays and plain
// containers. It never executes or imports anything: the only globals it accepts are a short allow-list of
// NumPy reconstruction functions, the ndarray and dtype types, and a few builtins (all emulated here); any other
// global (os.system, builtins.eval, subprocess.Popen, ...) stops the load with an error naming it.

import Foundation
import ScratchNet

/// Reads NumPy arrays out of Python pickles without running any Python code.
public enum Pickle {
    /// Loads a pickled dict (or OrderedDict) and returns its entries whose values are numeric NumPy arrays (float32
    /// or float64 in either byte order, C or Fortran order; float64 and integer arrays are converted to Float),
    /// keyed by their string keys. NumPy scalars come back as rank-0 tensors. Other plain values (numbers,
    /// strings, lists, nested dicts) are accepted and skipped.
    ///
    /// - Parameters:
    ///   - data: the whole file.
    ///   - source: the file name, used in error messages.
    /// - Throws: ``LoadError`` for a global outside the allow-list (naming it), an unsupported opcode or
    ///   array type, or a truncated/corrupt file.
    public static func loadArrays(_ data: Data, source: String) throws(LoadError) -> [String: Tensor] {
        var machine = PickleMachine(bytes: [UInt8](data), source: source)
        let root = try machine.run()
        switch root {
        case .dict(let d):
            var result: [String: Tensor] = [:]
            var decoded: [Int: Tensor] = [:]
            var rawBytes = 0
            for (key, value) in machine.dicts[d].entries {
                guard case .string(let name) = key, case .array(let a) = value else { continue }
                if let t = decoded[a] { result[name] = t; continue } // one array under two names: decoded once
                // Distinct arrays each need their own data in the file; arrays sharing one memoized buffer could
                // otherwise make a small file decode to gigabytes.
                rawBytes += machine.arrays[a].raw.count
                guard rawBytes <= data.count else {
                    throw LoadError(source, "the arrays hold more data (\(rawBytes)+ bytes) than the \(data.count)-byte file stores: they share buffers",
                                    fix: "the file is damaged or hostile; re-save the weights as a dict of NumPy arrays")
                }
                let t = try machine.arrays[a].tensor(source: source, name: name)
                decoded[a] = t
                result[name] = t
            }
            return result
        case .array(let a):
            return ["array": try machine.arrays[a].tensor(source: source, name: "array")]
        default:
            throw LoadError(source, "the pickle holds \(root.typeName), not a dict of arrays",
                            fix: "save the weights as a dict, e.g. pickle.dump({'W1': W1, ...}, f)")
        }
    }
}

// MARK: - Values

/// What the restricted unpickler can build. Containers, dtypes and arrays are indices into the machine's arenas,
/// so values are flat: no recursive teardown (a hostile pickle nesting a million tuples cannot overflow the
/// stack) and no reference cycles (a list appended to itself).
private enum PValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer too large for Int (kept only so containers holding one still load).
    case bigInt
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple(Int)
    case list(Int)
    case dict(Int)
    case set
    case global(AllowedGlobal)
    case dtype(Int)
    case array(Int)

    var typeName: String {
        switch self {
        case .none: return "None"
        case .bool: return "a bool"
        case .int, .bigInt: return "an int"
        case .float: return "a float"
        case .string: return "a str"
        case .bytes: return "bytes"
        case .tuple: return "a tuple"
        case .list: return "a list"
        case .dict: return "a dict"
        case .set: return "a set"
        case .global(let g): return "the global '\(g.rawValue)'"
        case .dtype: return "a numpy dtype"
        case .array: return "a numpy array"
        }
    }
}

/// A Python dict. Entries keep their order; a repeated string key replaces the earlier value, as in Python.
private struct PDict {
    var entries: [(key: PValue, value: PValue)] = []
    private var stringIndex: [String: Int] = [:]

    mutating func set(_ key: PValue, _ value: PValue) {
        if case .string(let s) = key {
            if let i = stringIndex[s] {
                entries[i].value = value
                return
            }
            stringIndex[s] = entries.count
        }
        entries.append((key, value))
    }
}

/// A numpy.dtype under construction: `dtype('f4', False, True)` then BUILD with the byte order.
private struct PDType {
    var code: String
    var byteOrder: Character = "="
    var hasFields = false

    init(code: String) { self.code = code }

    /// The element type, or nil for dtypes ScratchNet does not read.
    var elementType: ElementType? {
        guard !hasFields else { return nil }
        if let first = code.first, "<>|=".contains(first) { return ElementType(numpy: code) }
        let order = byteOrder == ">" ? ">" : "<"
        return ElementType(numpy: order + code)
    }
}

/// A numpy.ndarray under construction: created empty by `_reconstruct`, filled by BUILD (or made in one go by
/// `_frombuffer`).
private struct PArray {
    var shape: [Int] = [0]
    var type: ElementType?
    var typeName = "uninitialised"
    var fortranOrder = false
    var raw: [UInt8] = []
    var filled = false

    func tensor(source: String, name: String) throws(LoadError) -> Tensor {
        guard filled else {
            throw LoadError(source, "array '\(name)' was created but never given its data", fix: "the file is damaged; export it again")
        }
        guard let type else {
            throw LoadError(source, "array '\(name)' has dtype '\(typeName)', which ScratchNet cannot read",
                            fix: "only numeric arrays (float32/float64, integers, bool) can be loaded; convert it with arr.astype(np.float32)")
        }
        return try ArrayDecoding.tensor(shape: shape, raw: raw[...], type: type, fortranOrder: fortranOrder,
                                        source: source, name: name)
    }
}

/// The only globals a pickle may name. Everything else is refused before anything is built.
private enum AllowedGlobal: String {
    case reconstruct = "numpy.core.multiarray._reconstruct"
    case reconstruct2 = "numpy._core.multiarray._reconstruct"
    case scalar = "numpy.core.multiarray.scalar"
    case scalar2 = "numpy._core.multiarray.scalar"
    case frombuffer = "numpy.core.numeric._frombuffer"
    case frombuffer2 = "numpy._core.numeric._frombuffer"
    case ndarray = "numpy.ndarray"
    case dtype = "numpy.dtype"
    case codecsEncode = "_codecs.encode"
    case bytes = "builtins.bytes"
    case bytearray = "builtins.bytearray"
    case set = "builtins.set"
    case frozenset = "builtins.frozenset"
    case orderedDict = "collections.OrderedDict"

    init?(module: String, name: String) {
        // Protocol 2 pickles from Python 3 name builtins by their Python 2 module.
        let module = module == "__builtin__" ? "builtins" : module
        self.init(rawValue: module + "." + name)
    }
}

// MARK: - The machine

/// The pickle virtual machine, restricted to data-building opcodes.
private struct PickleMachine {
    var reader: ByteReader
    let source: String
    var stack: [PValue] = []
    var marks: [Int] = []
    var memo: [Int: PValue] = [:]
    // Arenas: PValue's .tuple/.list/.dict/.dtype/.array cases index into these.
    var tuples: [[PValue]] = []
    var lists: [[PValue]] = []
    var dicts: [PDict] = []
    var dtypes: [PDType] = []
    var arrays: [PArray] = []

    mutating func newTuple(_ items: [PValue]) -> PValue { tuples.append(items); return .tuple(tuples.count - 1) }
    mutating func newList(_ items: [PValue]) -> PValue { lists.append(items); return .list(lists.count - 1) }
    mutating func newDict(_ d: PDict = PDict()) -> PValue { dicts.append(d); return .dict(dicts.count - 1) }
    mutating func newArray(_ a: PArray) -> PValue { arrays.append(a); return .array(arrays.count - 1) }
    /// Memo entries are bounded by the opcodes that create them, so this only guards absurd LONG_BINPUT indices.
    static let maxMemoIndex = 1 << 31
    /// The most work one load may do: one unit per opcode and per element copied by an emulated call (building
    /// an OrderedDict from a list, bytes() of a list, merging dict states). A weights pickle needs about 15 units
    /// per array (the book's sample_weight.pkl about 100 in all); the limit keeps a small hostile file that
    /// re-uses one big memoized list in a loop from taking quadratic time (or BUILD merging a dict into itself
    /// from doubling it), and bounds the values held (about 70 bytes each with their arenas) to about 70 MB.
    static let maxWork = 1 << 20
    var work = 0
    /// Bytes copied out of latin-1 text (how protocol 2 stores array data): at most twice the file's size plus
    /// 64 KiB. Text read once is copied once, so a real file stays far below this; a hostile file that
    /// converts one memoized string again and again is stopped after a bounded amount of copying.
    let maxCopied: Int
    var copied = 0

    /// Charges `units` of work, failing once the load has done more than ``maxWork``.
    mutating func spend(_ units: Int) throws(LoadError) {
        work += units
        guard work <= Self.maxWork else {
            throw LoadError(source, "the pickle needs more than \(Self.maxWork) operations (the PickleMachine.maxWork limit) at byte \(reader.offset)",
                            fix: "the file is hostile or not a weights file; save the weights as a dict of NumPy arrays, .npz or .safetensors")
        }
    }

    init(bytes: [UInt8], source: String) {
        self.reader = ByteReader(bytes, source: source)
        self.source = source
        self.maxCopied = 2 * bytes.count + (1 << 16)
    }

    /// Charges `count` bytes of latin-1 text converted to bytes, failing past ``maxCopied``.
    mutating func copy(_ count: Int) throws(LoadError) {
        copied += count
        guard copied <= maxCopied else {
            throw LoadError(source, "the pickle converts more than \(maxCopied) bytes of text to array data (twice the file's size) at byte \(reader.offset)",
                            fix: "the file is hostile or not a weights file; save the weights as a dict of NumPy arrays, .npz or .safetensors")
        }
        try spend(1)
    }

    func corrupt(_ what: String) -> LoadError {
        LoadError(source, "corrupt pickle: \(what) at byte \(reader.offset)", fix: "the file is damaged or not a NumPy pickle; export it again")
    }

    mutating func pop(_ op: String) throws(LoadError) -> PValue {
        guard let v = stack.popLast() else { throw corrupt("\(op) on an empty stack") }
        if let m = marks.last, stack.count < m { throw corrupt("\(op) reached below a MARK") }
        return v
    }

    mutating func top(_ op: String) throws(LoadError) -> PValue {
        guard let v = stack.last, stack.count > (marks.last ?? 0) else { throw corrupt("\(op) on an empty stack") }
        return v
    }

    /// The values pushed since the last MARK, removing them and the mark.
    mutating func popMark(_ op: String) throws(LoadError) -> [PValue] {
        guard let m = marks.popLast() else { throw corrupt("\(op) without a MARK") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    mutating func string(_ n: Int, _ what: String) throws(LoadError) -> String {
        let raw = try reader.take(n, what)
        guard let s = String(validating: raw, as: UTF8.self) else { throw corrupt("\(what) is not valid UTF-8") }
        return s
    }

    /// The bytes up to the next newline (consumed, not returned).
    mutating func lineBytes(_ what: String) throws(LoadError) -> ArraySlice<UInt8> {
        guard let end = reader.bytes[reader.offset...].firstIndex(of: 0x0A) else { throw reader.truncated(what, needed: 1) }
        let raw = try reader.take(end - reader.offset, what)
        reader.offset += 1
        return raw
    }

    /// Python's raw-unicode-escape (protocol 0 UNICODE): bytes are Latin-1 code points except \uXXXX and
    /// \UXXXXXXXX escapes.
    func rawUnicodeEscape(_ raw: ArraySlice<UInt8>) throws(LoadError) -> String {
        var out = String.UnicodeScalarView()
        var i = raw.startIndex
        while i < raw.endIndex {
            let b = raw[i]
            if b == UInt8(ascii: "\\"), i + 1 < raw.endIndex, raw[i + 1] == UInt8(ascii: "u") || raw[i + 1] == UInt8(ascii: "U") {
                let digits = raw[i + 1] == UInt8(ascii: "u") ? 4 : 8
                guard i + 2 + digits <= raw.endIndex,
                      let value = UInt32(String(decoding: raw[(i + 2)..<(i + 2 + digits)], as: UTF8.self), radix: 16),
                      let scalar = Unicode.Scalar(value) else { throw corrupt("UNICODE has a bad \\u escape") }
                out.append(scalar)
                i += 2 + digits
            } else {
                out.append(Unicode.Scalar(b))
                i += 1
            }
        }
        return String(out)
    }

    mutating func line(_ what: String) throws(LoadError) -> String {
        guard let end = reader.bytes[reader.offset...].firstIndex(of: 0x0A) else { throw reader.truncated(what, needed: 1) }
        let s = try string(end - reader.offset, what)
        reader.offset += 1
        return s
    }

    mutating func memoPut(_ index: Int) throws(LoadError) {
        guard index >= 0, index < Self.maxMemoIndex else { throw corrupt("memo index \(index) out of range") }
        memo[index] = try top("PUT")
    }

    mutating func memoGet(_ index: Int) throws(LoadError) {
        guard let v = memo[index] else { throw corrupt("GET of memo entry \(index), which was never stored") }
        stack.append(v)
    }

    /// Refuses every global not on the allow-list, naming it, before anything could be built from it.
    func global(module: String, name: String) throws(LoadError) -> PValue {
        guard let g = AllowedGlobal(module: module, name: name) else {
            throw LoadError(source, "refusing to load global '\(module).\(name)': only NumPy arrays and plain containers are allowed",
                            fix: "this pickle would run code or build objects when opened in Python; re-save the weights as a dict of NumPy arrays (or as .npz/.safetensors)")
        }
        return .global(g)
    }

    mutating func run() throws(LoadError) -> PValue {
        while true {
            let op = try reader.u8("opcode")
            try spend(1)
            switch op {
            case 0x80: // PROTO
                let v = try reader.u8("protocol number")
                guard v <= 5 else { throw LoadError(source, "pickle protocol \(v) is newer than the supported 2...5") }
            case 0x95: // FRAME: a length hint; the opcodes inside are read as usual
                let n = try reader.u64le("frame length")
                guard n <= reader.remaining else { throw reader.truncated("frame", needed: n) }
            case 0x2E: // STOP
                let v = try pop("STOP")
                guard marks.isEmpty else { throw corrupt("STOP inside an unfinished MARK") }
                return v
            case 0x28: marks.append(stack.count) // MARK
            case 0x30: _ = try pop("POP") // POP
            case 0x31: _ = try popMark("POP_MARK") // POP_MARK
            case 0x32: stack.append(try top("DUP")) // DUP

            // Constants and numbers
            case 0x4E: stack.append(.none) // NONE
            case 0x88: stack.append(.bool(true)) // NEWTRUE
            case 0x89: stack.append(.bool(false)) // NEWFALSE
            case 0x4A: stack.append(.int(try reader.i32le("BININT"))) // BININT
            case 0x4B: stack.append(.int(Int(try reader.u8("BININT1")))) // BININT1
            case 0x4D: stack.append(.int(try reader.u16le("BININT2"))) // BININT2
            case 0x8A: stack.append(try long(try Int(reader.u8("LONG1 length")))) // LONG1
            case 0x8B: // LONG4
                let n = try reader.i32le("LONG4 length")
                guard n >= 0 else { throw corrupt("negative LONG4 length") }
                stack.append(try long(n))
            case 0x47: // BINFLOAT (big-endian double)
                stack.append(.float(Double(bitPattern: try reader.bigEndian(8, "BINFLOAT"))))
            case 0x49: // INT (text): also encodes True/False as 01/00
                let s = try line("INT")
                if s == "01" { stack.append(.bool(true)) } else if s == "00" { stack.append(.bool(false)) } else {
                    guard let v = Int(s) else { throw corrupt("INT '\(s)' is not a number") }
                    stack.append(.int(v))
                }
            case 0x4C: // LONG (text)
                var s = try line("LONG")
                if s.hasSuffix("L") { s.removeLast() }
                if let v = Int(s) { stack.append(.int(v)) } else { stack.append(.bigInt) }
            case 0x46: // FLOAT (text)
                let s = try line("FLOAT")
                guard let v = Double(s) else { throw corrupt("FLOAT '\(s)' is not a number") }
                stack.append(.float(v))

            // Strings and bytes
            case 0x58: stack.append(.string(try string(try reader.u32le("BINUNICODE length"), "BINUNICODE"))) // BINUNICODE
            case 0x8C: stack.append(.string(try string(Int(try reader.u8("SHORT_BINUNICODE length")), "SHORT_BINUNICODE")))
            case 0x56: stack.append(.string(try rawUnicodeEscape(try lineBytes("UNICODE")))) // UNICODE (protocol 0)
            case 0x8D: stack.append(.string(try string(try reader.u64le("BINUNICODE8 length"), "BINUNICODE8")))
            case 0x54: // BINSTRING (Python 2 str, signed length)
                let n = try reader.i32le("BINSTRING length")
                stack.append(.bytes(Array(try reader.take(n, "BINSTRING"))))
            case 0x55: stack.append(.bytes(Array(try reader.take(Int(try reader.u8("SHORT_BINSTRING length")), "SHORT_BINSTRING"))))
            case 0x42: stack.append(.bytes(Array(try reader.take(try reader.u32le("BINBYTES length"), "BINBYTES")))) // BINBYTES
            case 0x43: stack.append(.bytes(Array(try reader.take(Int(try reader.u8("SHORT_BINBYTES length")), "SHORT_BINBYTES"))))
            case 0x8E: stack.append(.bytes(Array(try reader.take(try reader.u64le("BINBYTES8 length"), "BINBYTES8"))))
            case 0x96: stack.append(.bytes(Array(try reader.take(try reader.u64le("BYTEARRAY8 length"), "BYTEARRAY8"))))
            case 0x97, 0x98: // NEXT_BUFFER, READONLY_BUFFER
                throw LoadError(source, "the pickle uses out-of-band buffers (pickle protocol 5 with buffer_callback), which need the buffers saved elsewhere",
                                fix: "re-save it with plain pickle.dump(obj, f) or as .npz/.safetensors")

            // Containers
            case 0x7D: stack.append(newDict()) // EMPTY_DICT
            case 0x5D: stack.append(newList([])) // EMPTY_LIST
            case 0x29: stack.append(newTuple([])) // EMPTY_TUPLE
            case 0x8F: stack.append(.set) // EMPTY_SET
            case 0x74: stack.append(newTuple(try popMark("TUPLE"))) // TUPLE
            case 0x85: stack.append(newTuple([try pop("TUPLE1")])) // TUPLE1
            case 0x86: // TUPLE2
                let b = try pop("TUPLE2"), a = try pop("TUPLE2")
                stack.append(newTuple([a, b]))
            case 0x87: // TUPLE3
                let c = try pop("TUPLE3"), b = try pop("TUPLE3"), a = try pop("TUPLE3")
                stack.append(newTuple([a, b, c]))
            case 0x6C: stack.append(newList(try popMark("LIST"))) // LIST
            case 0x64: // DICT
                let items = try popMark("DICT")
                guard items.count % 2 == 0 else { throw corrupt("DICT with an odd number of items") }
                var d = PDict()
                for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }
                stack.append(newDict(d))
            case 0x91: _ = try popMark("FROZENSET"); stack.append(.set) // FROZENSET
            case 0x61: // APPEND
                let v = try pop("APPEND")
                guard case .list(let l) = try top("APPEND") else { throw corrupt("APPEND to something that is not a list") }
                lists[l].append(v)
            case 0x65: // APPENDS
                let items = try popMark("APPENDS")
                switch try top("APPENDS") {
                case .list(let l): lists[l].append(contentsOf: items)
                case .set: break
                default: throw corrupt("APPENDS to something that is not a list")
                }
            case 0x73: // SETITEM
                let v = try pop("SETITEM"), k = try pop("SETITEM")
                guard case .dict(let d) = try top("SETITEM") else { throw corrupt("SETITEM on something that is not a dict") }
                dicts[d].set(k, v)
            case 0x75: // SETITEMS
                let items = try popMark("SETITEMS")
                guard items.count % 2 == 0 else { throw corrupt("SETITEMS with an odd number of items") }
                guard case .dict(let d) = try top("SETITEMS") else { throw corrupt("SETITEMS on something that is not a dict") }
                for i in stride(from: 0, to: items.count, by: 2) { dicts[d].set(items[i], items[i + 1]) }
            case 0x90: // ADDITEMS
                _ = try popMark("ADDITEMS")
                guard case .set = try top("ADDITEMS") else { throw corrupt("ADDITEMS on something that is not a set") }

            // Memo
            case 0x94: memo[memo.count] = try top("MEMOIZE") // MEMOIZE
            case 0x71: try memoPut(Int(try reader.u8("BINPUT index"))) // BINPUT
            case 0x72: try memoPut(try reader.u32le("LONG_BINPUT index")) // LONG_BINPUT
            case 0x68: try memoGet(Int(try reader.u8("BINGET index"))) // BINGET
            case 0x6A: try memoGet(try reader.u32le("LONG_BINGET index")) // LONG_BINGET
            case 0x70: // PUT (text)
                guard let i = Int(try line("PUT")) else { throw corrupt("PUT index is not a number") }
                try memoPut(i)
            case 0x67: // GET (text)
                guard let i = Int(try line("GET")) else { throw corrupt("GET index is not a number") }
                try memoGet(i)

            // Globals and object building: only the allow-list, emulated
            case 0x63: // GLOBAL "module\nname\n"
                let module = try line("GLOBAL module")
                let name = try line("GLOBAL name")
                stack.append(try global(module: module, name: name))
            case 0x93: // STACK_GLOBAL
                let nameValue = try pop("STACK_GLOBAL"), moduleValue = try pop("STACK_GLOBAL")
                guard case .string(let name) = nameValue, case .string(let module) = moduleValue else {
                    throw corrupt("STACK_GLOBAL needs two strings")
                }
                stack.append(try global(module: module, name: name))
            case 0x52: // REDUCE: callable(*args)
                let args = try pop("REDUCE"), callable = try pop("REDUCE")
                guard case .global(let g) = callable else { throw corrupt("REDUCE of \(callable.typeName), which is not callable") }
                guard case .tuple(let a) = args else { throw corrupt("REDUCE arguments are not a tuple") }
                stack.append(try call(g, tuples[a]))
            case 0x62: // BUILD: obj.__setstate__(state)
                let state = try pop("BUILD")
                try build(try top("BUILD"), state: state)
            case 0x81: // NEWOBJ: cls.__new__(cls, *args)
                let args = try pop("NEWOBJ"), cls = try pop("NEWOBJ")
                guard case .global(let g) = cls, case .tuple(let a) = args else { throw corrupt("NEWOBJ needs a class and a tuple") }
                stack.append(try call(g, tuples[a]))
            case 0x92: // NEWOBJ_EX
                _ = try pop("NEWOBJ_EX")
                let args = try pop("NEWOBJ_EX"), cls = try pop("NEWOBJ_EX")
                guard case .global(let g) = cls, case .tuple(let a) = args else { throw corrupt("NEWOBJ_EX needs a class and a tuple") }
                stack.append(try call(g, tuples[a]))
            case 0x69, 0x6F: // INST, OBJ: build class instances
                throw LoadError(source, "refusing the pickle opcode \(op == 0x69 ? "INST" : "OBJ"), which creates arbitrary class instances: only NumPy arrays and plain containers are allowed")
            case 0x50, 0x51: // PERSID, BINPERSID
                throw LoadError(source, "the pickle refers to persistent objects (e.g. a PyTorch checkpoint), which need the program that wrote it",
                                fix: "export the weights as a dict of NumPy arrays, .npz or .safetensors")
            case 0x82, 0x83, 0x84: // EXT1/2/4
                throw LoadError(source, "refusing a pickle extension-registry global (EXT opcode): only NumPy arrays and plain containers are allowed")
            default:
                throw corrupt(String(format: "unknown or unsupported opcode 0x%02x", op))
            }
        }
    }

    /// A LONG1/LONG4 payload: little-endian two's complement of `n` bytes.
    mutating func long(_ n: Int) throws(LoadError) -> PValue {
        let raw = try reader.take(n, "LONG")
        guard n <= 8 else { return .bigInt }
        guard n > 0 else { return .int(0) }
        var v: UInt64 = 0
        for (i, b) in raw.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        let shift = UInt64(64 - 8 * n)
        return .int(Int(Int64(bitPattern: v << shift) >> shift))
    }

    // MARK: Emulated callables

    mutating func call(_ g: AllowedGlobal, _ args: [PValue]) throws(LoadError) -> PValue {
        switch g {
        case .reconstruct, .reconstruct2:
            // _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD fills.
            guard args.count == 3, case .global(.ndarray) = args[0] else {
                throw LoadError(source, "refusing _reconstruct of anything but numpy.ndarray: only NumPy arrays and plain containers are allowed")
            }
            return newArray(PArray())
        case .dtype:
            // dtype('f4', False, True)
            guard let first = args.first, case .string(let code) = first else { throw corrupt("numpy.dtype needs a type string") }
            dtypes.append(PDType(code: code))
            return .dtype(dtypes.count - 1)
        case .frombuffer, .frombuffer2:
            // _frombuffer(buffer, dtype, shape, order)
            guard args.count == 4, case .bytes(let raw) = args[0], case .dtype(let dtype) = args[1],
                  case .string(let order) = args[3] else { throw corrupt("_frombuffer needs (buffer, dtype, shape, order)") }
            var array = PArray()
            array.shape = try shape(args[2])
            try setType(&array, dtypes[dtype])
            array.fortranOrder = order == "F"
            array.raw = raw
            array.filled = true
            return newArray(array)
        case .scalar, .scalar2:
            // scalar(dtype, bytes): a NumPy scalar, read as a 0-d array.
            guard args.count == 2, case .dtype(let dtype) = args[0], case .bytes(let raw) = args[1] else {
                throw LoadError(source, "unsupported numpy scalar (only numeric scalars can be loaded)")
            }
            var array = PArray()
            array.shape = []
            try setType(&array, dtypes[dtype])
            array.raw = raw
            array.filled = true
            return newArray(array)
        case .codecsEncode:
            // _codecs.encode(str, 'latin1'): how protocol 2 stores bytes.
            guard args.count == 2, case .string(let text) = args[0], case .string(let encoding) = args[1],
                  ["latin1", "latin-1", "iso-8859-1", "iso8859-1"].contains(encoding.lowercased()) else {
                throw LoadError(source, "refusing _codecs.encode with anything but (str, 'latin1'): only NumPy arrays and plain containers are allowed")
            }
            try copy(text.utf8.count)
            var out: [UInt8] = []
            out.reserveCapacity(text.unicodeScalars.count)
            for u in text.unicodeScalars {
                guard u.value < 256 else { throw corrupt("latin1-encoded bytes hold the character U+\(String(u.value, radix: 16))") }
                out.append(UInt8(u.value))
            }
            return .bytes(out)
        case .bytes, .bytearray:
            guard let first = args.first else { return .bytes([]) }
            switch first {
            case .bytes(let b): return .bytes(b)
            case .list(let l):
                try spend(lists[l].count)
                var out: [UInt8] = []
                for item in lists[l] {
                    guard case .int(let v) = item, (0...255).contains(v) else { throw corrupt("bytes() of a list that is not bytes") }
                    out.append(UInt8(v))
                }
                return .bytes(out)
            default: throw corrupt("unsupported bytes() argument \(first.typeName)")
            }
        case .set, .frozenset:
            return .set
        case .orderedDict:
            var d = PDict()
            if let first = args.first, case .list(let l) = first {
                try spend(lists[l].count)
                for item in lists[l] {
                    if case .tuple(let t) = item, tuples[t].count == 2 { d.set(tuples[t][0], tuples[t][1]) }
                }
            }
            return newDict(d)
        case .ndarray:
            throw LoadError(source, "refusing to call numpy.ndarray directly: only the standard NumPy pickle form is supported")
        }
    }

    mutating func shape(_ v: PValue) throws(LoadError) -> [Int] {
        switch v {
        case .int(let n): return [n]
        case .tuple(let t):
            try spend(tuples[t].count)
            var dims: [Int] = []
            for item in tuples[t] {
                guard case .int(let d) = item, d >= 0 else { throw corrupt("array shape holds \(item.typeName)") }
                dims.append(d)
            }
            return dims
        default: throw corrupt("array shape is \(v.typeName)")
        }
    }

    func setType(_ array: inout PArray, _ dtype: PDType) throws(LoadError) {
        array.typeName = dtype.code
        array.type = dtype.elementType
        if array.type == nil && dtype.code.hasPrefix("O") {
            throw LoadError(source, "refusing a NumPy object array (dtype 'O'): its elements are arbitrary Python objects; only numeric arrays are allowed",
                            fix: "convert it to a numeric array, e.g. arr.astype(np.float32), before saving")
        }
    }

    mutating func build(_ target: PValue, state: PValue) throws(LoadError) {
        switch target {
        case .dtype(let dtypeIndex):
            // (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
            guard case .tuple(let t) = state else { throw corrupt("unexpected numpy dtype state") }
            let s = tuples[t]
            guard s.count >= 2, case .string(let order) = s[1], let c = order.first else {
                throw corrupt("unexpected numpy dtype state")
            }
            dtypes[dtypeIndex].byteOrder = c
            if s.count >= 5 {
                if case .none = s[2] {} else { dtypes[dtypeIndex].hasFields = true }
                if case .none = s[3] {} else { dtypes[dtypeIndex].hasFields = true }
            }
        case .array(let arrayIndex):
            // (version, shape, dtype, is_fortran, rawdata) or, in old pickles, the same without the version
            guard case .tuple(let t) = state else { throw corrupt("unexpected numpy array state") }
            var s = tuples[t]
            if s.count == 5 { s.removeFirst() }
            guard s.count == 4, case .dtype(let dtype) = s[1], case .bool(let fortran) = s[2] else {
                throw corrupt("unexpected numpy array state")
            }
            var array = arrays[arrayIndex]
            array.shape = try shape(s[0])
            try setType(&array, dtypes[dtype])
            array.fortranOrder = fortran
            switch s[3] {
            case .bytes(let raw): array.raw = raw
            case .string(let text):
                // Python 2 pickles keep the raw data in a str; read it as latin-1 bytes.
                try copy(text.utf8.count)
                var out: [UInt8] = []
                for u in text.unicodeScalars {
                    guard u.value < 256 else { throw corrupt("array data string is not latin-1") }
                    out.append(UInt8(u.value))
                }
                array.raw = out
            case .list:
                throw LoadError(source, "refusing a NumPy array whose data is a list of Python objects (an object array): only numeric arrays are allowed")
            default: throw corrupt("array data is \(s[3].typeName)")
            }
            array.filled = true
            arrays[arrayIndex] = array
        case .dict(let d):
            // e.g. an OrderedDict or a plain __dict__ state: merge dict states, ignore others
            if case .dict(let other) = state {
                try spend(dicts[other].entries.count)
                for (k, v) in dicts[other].entries { dicts[d].set(k, v) }
            }
        default:
            throw LoadError(source, "refusing BUILD (__setstate__) on \(target.typeName): only NumPy arrays and plain containers are allowed")
        }
    }
}
