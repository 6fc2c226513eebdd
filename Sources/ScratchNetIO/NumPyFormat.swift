// NumPyFormat: NumPy's own file formats. `.npy` (versions 1, 2 and 3: magic, a Python-literal header dict with
// descr/fortran_order/shape, then raw data) and `.npz` (a zip archive of .npy members, stored or deflated; the
// zip central directory is parsed here, members are checked against their CRC-32).

import Foundation
import ScratchNet

/// `.npy` and `.npz` reading, `.npy` writing.
public enum NumPyFormat {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59] // "\x93NUMPY"
    /// The largest .npz member ScratchNet inflates (a guard against zip bombs).
    static let maxMemberSize = 1 << 31
    /// The most bytes all the members of one .npz may decompress to together.
    static let maxArchiveSize = 1 << 32

    /// Loads one array from a `.npy` file (float32/float64 in either byte order, integers or bool; C or Fortran
    /// order). Object arrays (which hold pickles) are refused.
    public static func loadNPY(_ data: Data, source: String) throws(LoadError) -> Tensor {
        try loadNPY([UInt8](data)[...], source: source, name: "array")
    }

    /// Loads every `.npy` member of a `.npz` archive (as written by `np.savez` or `np.savez_compressed`), keyed by
    /// member name without the `.npy` suffix.
    public static func loadNPZ(_ data: Data, source: String) throws(LoadError) -> [String: Tensor] {
        let bytes = [UInt8](data)
        var result: [String: Tensor] = [:]
        let members = try ZipArchive.members(bytes, source: source).filter { $0.name.hasSuffix(".npy") }
        try ZipArchive.checkDisjoint(members, source: source)
        var total = 0
        for member in members {
            guard member.size <= maxMemberSize else {
                throw LoadError(source, "member \(member.name) declares \(member.size) bytes, more than the \(maxMemberSize)-byte limit (NumPyFormat.maxMemberSize)",
                                fix: "the archive is damaged or a zip bomb; split the arrays over several files")
            }
            total += member.size
            guard total <= maxArchiveSize else {
                throw LoadError(source, "the .npz members decompress to more than the \(maxArchiveSize)-byte limit (NumPyFormat.maxArchiveSize)",
                                fix: "the archive is damaged or a zip bomb; split the arrays over several files")
            }
            let content = try ZipArchive.extract(member, from: bytes, source: source, maxSize: maxMemberSize)
            let key = String(member.name.dropLast(4))
            result[key] = try loadNPY(content[...], source: "\(source) (member \(member.name))", name: key)
        }
        return result
    }

    /// Encodes `t` as a version-1 `.npy` file: little-endian float32, C order, header padded to 64 bytes.
    public static func encodeNPY(_ t: Tensor) -> Data {
        let shape: String
        switch t.shape.count {
        case 0: shape = "()"
        case 1: shape = "(\(t.shape[0]),)"
        default: shape = "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        }
        var header = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }".utf8)
        let unpadded = magic.count + 2 + 2 + header.count + 1
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (64 - unpadded % 64) % 64))
        header.append(UInt8(ascii: "\n"))
        var out = Data(magic)
        out.append(contentsOf: [1, 0, UInt8(header.count & 0xFF), UInt8(header.count >> 8)])
        out.append(contentsOf: header)
        t.scalars.withUnsafeBufferPointer { buf in
            for v in buf {
                var bits = v.bitPattern.littleEndian
                withUnsafeBytes(of: &bits) { out.append(contentsOf: $0) }
            }
        }
        return out
    }

    static func loadNPY(_ bytes: ArraySlice<UInt8>, source: String, name: String) throws(LoadError) -> Tensor {
        var reader = ByteReader(Array(bytes), source: source)
        guard Array(try reader.take(6, "npy magic")) == magic else {
            throw LoadError(source, "not a .npy file (it does not start with \\x93NUMPY)", fix: "pass a file written by numpy.save")
        }
        let major = try reader.u8("npy version"), minor = try reader.u8("npy version")
        let headerLength: Int
        switch major {
        case 1: headerLength = try reader.u16le("npy header length")
        case 2, 3: headerLength = try reader.u32le("npy header length")
        default:
            throw LoadError(source, ".npy format version \(major).\(minor) is not supported (only 1.0, 2.0 and 3.0)", fix: "save it with numpy.save from a current NumPy")
        }
        let headerBytes = try reader.take(headerLength, "npy header")
        let headerText: String
        if major == 3 {
            guard let s = String(validating: headerBytes, as: UTF8.self) else { throw LoadError(source, "the .npy header is not valid UTF-8", fix: "the file is damaged; save it again") }
            headerText = s
        } else {
            headerText = String(headerBytes.map { Character(Unicode.Scalar($0)) })
        }
        var parser = PythonLiteral(text: headerText, source: source)
        guard case .dict(let header) = try parser.parse() else {
            throw LoadError(source, "the .npy header is not a dict", fix: "the file is damaged; save it again")
        }
        guard let descrValue = header["descr"], let orderValue = header["fortran_order"], let shapeValue = header["shape"],
              case .bool(let fortran) = orderValue, case .sequence(let dims) = shapeValue else {
            throw LoadError(source, "the .npy header lacks descr, fortran_order or shape", fix: "the file is damaged; save it again")
        }
        guard case .string(let descr) = descrValue else {
            throw LoadError(source, "array '\(name)' has a structured (record) dtype, which ScratchNet cannot read", fix: "save plain numeric arrays")
        }
        guard let type = ElementType(numpy: descr) else {
            if descr.contains("O") {
                throw LoadError(source, "refusing array '\(name)' with dtype '\(descr)': object arrays hold pickled Python objects; only numeric arrays are allowed",
                                fix: "convert it with arr.astype(np.float32) and save again")
            }
            throw LoadError(source, "array '\(name)' has dtype '\(descr)', which ScratchNet cannot read", fix: "convert it with arr.astype(np.float32) and save again")
        }
        var shape: [Int] = []
        for d in dims {
            guard case .int(let n) = d else { throw LoadError(source, "the .npy shape holds a non-integer", fix: "the file is damaged; save it again") }
            shape.append(n)
        }
        let raw = bytes[(bytes.startIndex + reader.offset)...]
        return try ArrayDecoding.tensor(shape: shape, raw: raw, type: type, fortranOrder: fortran, source: source, name: name)
    }
}

/// The subset of Python literal syntax used in .npy headers: dicts, tuples, lists, strings, ints, booleans, None.
struct PythonLiteral {
    enum Value {
        case string(String)
        case int(Int)
        case bool(Bool)
        case none
        case sequence([Value])
        case dict([String: Value])
    }

    let chars: [Character]
    var i = 0
    let source: String

    init(text: String, source: String) {
        chars = Array(text)
        self.source = source
    }

    func error(_ what: String) -> LoadError {
        LoadError(source, "cannot parse the .npy header: \(what) at character \(i)", fix: "the file is damaged; save it again")
    }

    mutating func skipSpace() { while i < chars.count, chars[i].isWhitespace { i += 1 } }

    mutating func parse() throws(LoadError) -> Value {
        let v = try value(depth: 0)
        skipSpace()
        guard i == chars.count else { throw error("unexpected text after the header") }
        return v
    }

    mutating func value(depth: Int) throws(LoadError) -> Value {
        guard depth < 32 else { throw error("nesting too deep") }
        skipSpace()
        guard i < chars.count else { throw error("unexpected end") }
        let c = chars[i]
        switch c {
        case "'", "\"":
            i += 1
            var s = ""
            while i < chars.count, chars[i] != c {
                if chars[i] == "\\" { i += 1; guard i < chars.count else { break } }
                s.append(chars[i])
                i += 1
            }
            guard i < chars.count else { throw error("unterminated string") }
            i += 1
            return .string(s)
        case "(", "[":
            let close: Character = c == "(" ? ")" : "]"
            i += 1
            var items: [Value] = []
            while true {
                skipSpace()
                guard i < chars.count else { throw error("unterminated \(c)") }
                if chars[i] == close { i += 1; return .sequence(items) }
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard i < chars.count else { throw error("unterminated \(c)") }
                if chars[i] == "," { i += 1 } else if chars[i] != close { throw error("expected ',' or '\(close)'") }
            }
        case "{":
            i += 1
            var dict: [String: Value] = [:]
            while true {
                skipSpace()
                guard i < chars.count else { throw error("unterminated {") }
                if chars[i] == "}" { i += 1; return .dict(dict) }
                guard case .string(let key) = try value(depth: depth + 1) else { throw error("dict key is not a string") }
                skipSpace()
                guard i < chars.count, chars[i] == ":" else { throw error("expected ':'") }
                i += 1
                dict[key] = try value(depth: depth + 1)
                skipSpace()
                guard i < chars.count else { throw error("unterminated {") }
                if chars[i] == "," { i += 1 } else if chars[i] != "}" { throw error("expected ',' or '}'") }
            }
        default:
            var word = ""
            while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "-" || chars[i] == "_" {
                word.append(chars[i])
                i += 1
            }
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default:
                var digits = Substring(word)
                if digits.hasSuffix("L") { digits = digits.dropLast() } // Python 2 long
                guard let n = Int(digits) else { throw error(word.isEmpty ? "unexpected character '\(c)'" : "unknown word '\(word)'") }
                return .int(n)
            }
        }
    }
}

/// Just enough of the zip format to read .npz files: the (zip64-aware) central directory and stored or
/// deflated members.
enum ZipArchive {
    struct Member {
        let name: String
        let method: Int
        let flags: Int
        let crc: UInt32
        let compressedSize: Int
        let size: Int
        let localHeaderOffset: Int
    }

    static func corrupt(_ source: String, _ what: String) -> LoadError {
        LoadError(source, "corrupt zip archive: \(what)", fix: "the file is truncated or damaged; save it again with numpy.savez")
    }

    /// The members listed in the central directory.
    static func members(_ bytes: [UInt8], source: String) throws(LoadError) -> [Member] {
        // End of central directory record: 22 bytes plus a comment of up to 65535 bytes, at the end of the file.
        guard bytes.count >= 22 else { throw corrupt(source, "too short for a zip file (\(bytes.count) bytes)") }
        var eocd = -1
        var p = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 65535)
        while p >= lowest {
            if bytes[p] == 0x50, bytes[p + 1] == 0x4B, bytes[p + 2] == 0x05, bytes[p + 3] == 0x06 { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else { throw corrupt(source, "no end-of-central-directory record") }
        var r = ByteReader(bytes, offset: eocd + 4, source: source)
        try r.skip(6, "zip end record")
        var count = try r.u16le("zip entry count")
        var cdSize = try r.u32le("zip central directory size")
        var cdOffset = try r.u32le("zip central directory offset")
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // zip64: a locator 20 bytes before the end record points at the zip64 end record.
            guard eocd >= 20 else { throw corrupt(source, "zip64 locator missing") }
            var loc = ByteReader(bytes, offset: eocd - 20, source: source)
            guard try loc.littleEndian(4, "zip64 locator") == 0x0706_4B50 else { throw corrupt(source, "zip64 locator missing") }
            try loc.skip(4, "zip64 locator")
            let recordOffset = try loc.u64le("zip64 end record offset")
            guard recordOffset <= bytes.count else { throw corrupt(source, "zip64 end record offset out of range") }
            var rec = ByteReader(bytes, offset: recordOffset, source: source)
            guard try rec.littleEndian(4, "zip64 end record") == 0x0606_4B50 else { throw corrupt(source, "zip64 end record missing") }
            try rec.skip(8 + 2 + 2 + 4 + 4 + 8, "zip64 end record")
            count = try rec.u64le("zip64 entry count")
            cdSize = try rec.u64le("zip64 central directory size")
            cdOffset = try rec.u64le("zip64 central directory offset")
        }
        guard cdOffset <= bytes.count, cdSize <= bytes.count - cdOffset else {
            throw corrupt(source, "central directory (offset \(cdOffset), \(cdSize) bytes) lies outside the \(bytes.count)-byte file")
        }
        guard count <= cdSize / 46 else { throw corrupt(source, "\(count) entries cannot fit in a \(cdSize)-byte central directory") }
        var cd = ByteReader(Array(bytes[cdOffset..<(cdOffset + cdSize)]), source: source)
        var members: [Member] = []
        for _ in 0..<count {
            guard try cd.littleEndian(4, "zip central directory entry") == 0x0201_4B50 else { throw corrupt(source, "bad central directory entry signature") }
            try cd.skip(4, "zip entry")
            let flags = try cd.u16le("zip entry flags")
            let method = try cd.u16le("zip entry method")
            try cd.skip(4, "zip entry")
            let crc = UInt32(try cd.littleEndian(4, "zip entry crc"))
            var csize = try cd.u32le("zip entry compressed size")
            var usize = try cd.u32le("zip entry size")
            let nameLength = try cd.u16le("zip entry name length")
            let extraLength = try cd.u16le("zip entry extra length")
            let commentLength = try cd.u16le("zip entry comment length")
            try cd.skip(8, "zip entry")
            var offset = try cd.u32le("zip entry offset")
            let nameBytes = try cd.take(nameLength, "zip entry name")
            var extra = ByteReader(Array(try cd.take(extraLength, "zip entry extra field")), source: source)
            try cd.skip(commentLength, "zip entry comment")
            // zip64 extended information: the 64-bit values for fields stored as 0xFFFFFFFF, in this order.
            while extra.remaining >= 4 {
                let id = try extra.u16le("zip extra id"), size = try extra.u16le("zip extra size")
                var field = ByteReader(Array(try extra.take(size, "zip extra field")), source: source)
                guard id == 0x0001 else { continue }
                if usize == 0xFFFF_FFFF { usize = try field.u64le("zip64 size") }
                if csize == 0xFFFF_FFFF { csize = try field.u64le("zip64 compressed size") }
                if offset == 0xFFFF_FFFF { offset = try field.u64le("zip64 offset") }
            }
            let name = String(decoding: nameBytes, as: UTF8.self)
            members.append(Member(name: name, method: method, flags: flags, crc: crc, compressedSize: csize, size: usize, localHeaderOffset: offset))
        }
        return members
    }

    /// Refuses members whose stored data overlap (the "overlapping files" zip bomb, where many central
    /// directory entries point at one compressed blob): each local header must start after the previous member's
    /// header and data. Then the members' compressed sizes sum to at most the file size.
    static func checkDisjoint(_ members: [Member], source: String) throws(LoadError) {
        let sorted = members.sorted { $0.localHeaderOffset < $1.localHeaderOffset }
        var end = 0
        for m in sorted {
            guard m.localHeaderOffset >= end else {
                throw corrupt(source, "member \(m.name) overlaps the data of another member")
            }
            let (e, overflow) = m.localHeaderOffset.addingReportingOverflow(30 + m.compressedSize)
            guard !overflow else { throw corrupt(source, "member \(m.name) has an impossible size") }
            end = e
        }
    }

    /// The most a deflate stream can expand: 1032 output bytes per input byte (258-byte matches coded in under 2
    /// bits), plus a little for tiny streams.
    static func maxInflated(_ compressedSize: Int) -> Int {
        let (n, overflow) = compressedSize.multipliedReportingOverflow(by: 1032)
        return overflow ? Int.max : n + 1024
    }

    /// The uncompressed content of `member`, CRC-checked.
    static func extract(_ member: Member, from bytes: [UInt8], source: String, maxSize: Int) throws(LoadError) -> [UInt8] {
        guard member.flags & 1 == 0 else {
            throw LoadError(source, "member \(member.name) is encrypted", fix: "save the archive without encryption (numpy.savez)")
        }
        guard member.localHeaderOffset <= bytes.count else { throw corrupt(source, "member \(member.name) starts past the end of the file") }
        var local = ByteReader(bytes, offset: member.localHeaderOffset, source: source)
        guard try local.littleEndian(4, "zip local header") == 0x0403_4B50 else { throw corrupt(source, "bad local header signature for \(member.name)") }
        try local.skip(22, "zip local header")
        let nameLength = try local.u16le("zip local name length")
        let extraLength = try local.u16le("zip local extra length")
        try local.skip(nameLength + extraLength, "zip local header")
        let stored = try local.take(member.compressedSize, "data of member \(member.name)")
        let content: [UInt8]
        switch member.method {
        case 0:
            guard member.compressedSize == member.size else { throw corrupt(source, "stored member \(member.name) has different compressed and plain sizes") }
            content = Array(stored)
        case 8:
            // The declared size sizes the output buffer, so it must be possible for this much deflate data.
            guard member.size <= maxInflated(member.compressedSize) else {
                throw corrupt(source, "member \(member.name) claims \(member.size) bytes, more than \(member.compressedSize) bytes of deflate data can hold")
            }
            content = try Zlib.inflate(stored, format: .rawDeflate, maxOutput: maxSize, expectedSize: member.size,
                                       source: "\(source) (member \(member.name))")
        default:
            throw LoadError(source, "member \(member.name) uses zip compression method \(member.method); only stored (0) and deflate (8) are supported",
                            fix: "save it with numpy.savez or numpy.savez_compressed")
        }
        guard Zlib.crc32(content[...]) == member.crc else {
            throw corrupt(source, "member \(member.name) fails its CRC-32 check")
        }
        return content
    }
}
