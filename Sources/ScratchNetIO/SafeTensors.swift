// SafeTensors: reads and writes the safetensors format (an 8-byte little-endian header length, a JSON header
// mapping names to dtype/shape/data_offsets, then the raw little-endian tensor data). Reading accepts float and
// integer dtypes (F64, F16, BF16 and integers are converted to Float) and checks every offset; writing stores F32.

import Foundation
import ScratchNet

/// The safetensors file format (https://github.com/huggingface/safetensors).
public enum SafeTensors {
    /// Header sizes above this are refused as corrupt (the reference implementation uses the same 100 MB limit).
    static let maxHeaderSize = 100_000_000

    /// Loads every tensor of a safetensors file (the `__metadata__` entry is skipped).
    /// - Throws: ``LoadError`` for a bad header, an unsupported dtype, offsets that overlap, leave holes, or run
    ///   past the data, or a size that does not match the shape.
    public static func load(_ data: Data, source: String) throws(LoadError) -> [String: Tensor] {
        let bytes = [UInt8](data)
        var reader = ByteReader(bytes, source: source)
        let headerSize = try reader.u64le("safetensors header length")
        guard headerSize <= maxHeaderSize else {
            throw LoadError(source, "safetensors header length \(headerSize) is larger than the \(maxHeaderSize)-byte limit (SafeTensors.maxHeaderSize)", fix: "the file is damaged or not a safetensors file")
        }
        let headerBytes = try reader.take(headerSize, "safetensors header")
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw LoadError(source, "the safetensors header does not start with '{'", fix: "the file is damaged or not a safetensors file")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(headerBytes))
        } catch {
            throw LoadError(source, "the safetensors header is not valid JSON (\(error.localizedDescription))", fix: "the file is damaged; export it again")
        }
        guard let header = json as? [String: Any] else {
            throw LoadError(source, "the safetensors header is not a JSON object", fix: "the file is damaged; export it again")
        }
        let dataStart = reader.offset
        let dataCount = bytes.count - dataStart

        struct Entry { let name: String; let type: ElementType; let shape: [Int]; let begin: Int; let end: Int }
        var entries: [Entry] = []
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shapeValues = info["shape"] as? [Any], let offsetValues = info["data_offsets"] as? [Any] else {
                throw LoadError(source, "tensor '\(name)' lacks dtype, shape or data_offsets in the header", fix: "the file is damaged; export it again")
            }
            guard let type = elementType(dtype) else {
                throw LoadError(source, "tensor '\(name)' has dtype \(dtype), which ScratchNet cannot read",
                                fix: "store it as F32 (or F64/F16/BF16/integers)")
            }
            guard let shape = integers(shapeValues), shape.allSatisfy({ $0 >= 0 }),
                  let offsets = integers(offsetValues), offsets.count == 2 else {
                throw LoadError(source, "tensor '\(name)' has a malformed shape or data_offsets", fix: "the file is damaged; export it again")
            }
            entries.append(Entry(name: name, type: type, shape: shape, begin: offsets[0], end: offsets[1]))
        }
        // Offsets: within the data, not overlapping, no holes (as the reference implementation requires).
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var expectedBegin = 0
        var result: [String: Tensor] = [:]
        for e in entries {
            guard e.begin <= e.end, e.end <= dataCount else {
                throw LoadError(source, "tensor '\(e.name)' has data_offsets [\(e.begin), \(e.end)] outside the \(dataCount) data bytes",
                                fix: "the file is truncated or damaged; export it again")
            }
            guard e.begin == expectedBegin else {
                throw LoadError(source, e.begin < expectedBegin ? "tensor '\(e.name)' overlaps the data of another tensor" : "the data has a hole before tensor '\(e.name)'",
                                fix: "the file is damaged; export it again")
            }
            expectedBegin = e.end
            let raw = bytes[(dataStart + e.begin)..<(dataStart + e.end)]
            result[e.name] = try ArrayDecoding.tensor(shape: e.shape, raw: raw, type: e.type, fortranOrder: false, source: source, name: e.name)
        }
        guard expectedBegin == dataCount else {
            throw LoadError(source, "\(dataCount - expectedBegin) bytes after the last tensor belong to no tensor", fix: "the file is damaged; export it again")
        }
        return result
    }

    /// Encodes `tensors` as a safetensors file with F32 little-endian data, names in sorted order and the header
    /// padded with spaces to a multiple of 8 bytes.
    /// `metadata` goes into the header's `__metadata__` object (string to string, as the format defines).
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws(LoadError) -> Data {
        let names = tensors.keys.sorted()
        var header = "{"
        if !metadata.isEmpty {
            header += "\"__metadata__\":{"
            header += metadata.keys.sorted().map { jsonString($0) + ":" + jsonString(metadata[$0] ?? "") }.joined(separator: ",")
            header += "}" + (names.isEmpty ? "" : ",")
        }
        var offset = 0
        for (i, name) in names.enumerated() {
            guard name != "__metadata__", let t = tensors[name] else {
                throw LoadError("safetensors", "'__metadata__' is reserved and cannot be a tensor name", fix: "rename the tensor")
            }
            let size = t.count * 4
            header += (i > 0 ? "," : "") + jsonString(name)
            header += ":{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + size)]}"
            offset += size
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(UInt8(ascii: " ")) }
        var out = Data(capacity: 8 + headerBytes.count + offset)
        var n = UInt64(headerBytes.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        for name in names {
            guard let t = tensors[name] else { continue }
            t.scalars.withUnsafeBufferPointer { buf in
                for v in buf {
                    var bits = v.bitPattern.littleEndian
                    withUnsafeBytes(of: &bits) { out.append(contentsOf: $0) }
                }
            }
        }
        return out
    }

    /// Writes `tensors` to `url` safely: into a temporary file next to it, then renamed over `url`, so a crash
    /// never leaves a half-written file under the final name.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws(LoadError) {
        try FileOps.writeAtomically(try encode(tensors, metadata: metadata), to: url)
    }

    /// The header's `__metadata__` (string values only; others are skipped), or [:] when there is none or the
    /// data is not a safetensors file. Use ``load(_:source:)`` to validate the file itself.
    public static func metadata(_ data: Data) -> [String: String] {
        guard data.count >= 8 else { return [:] }
        let bytes = [UInt8](data.prefix(8))
        var size = 0
        for i in (0..<8).reversed() { size = (size << 8) | Int(bytes[i]) }
        guard size > 0, size <= maxHeaderSize, data.count >= 8 + size,
              let json = try? JSONSerialization.jsonObject(with: data.subdata(in: (data.startIndex + 8)..<(data.startIndex + 8 + size))),
              let header = json as? [String: Any], let meta = header["__metadata__"] as? [String: Any] else { return [:] }
        return meta.compactMapValues { $0 as? String }
    }

    /// safetensors dtype names to element types.
    static func elementType(_ dtype: String) -> ElementType? {
        switch dtype {
        case "F32": return .float32
        case "F64": return ElementType(kind: .float, size: 8, bigEndian: false)
        case "F16": return ElementType(kind: .float, size: 2, bigEndian: false)
        case "BF16": return ElementType(kind: .bfloat, size: 2, bigEndian: false)
        case "I8": return ElementType(kind: .signed, size: 1, bigEndian: false)
        case "I16": return ElementType(kind: .signed, size: 2, bigEndian: false)
        case "I32": return ElementType(kind: .signed, size: 4, bigEndian: false)
        case "I64": return ElementType(kind: .signed, size: 8, bigEndian: false)
        case "U8": return ElementType(kind: .unsigned, size: 1, bigEndian: false)
        case "U16": return ElementType(kind: .unsigned, size: 2, bigEndian: false)
        case "U32": return ElementType(kind: .unsigned, size: 4, bigEndian: false)
        case "U64": return ElementType(kind: .unsigned, size: 8, bigEndian: false)
        case "BOOL": return ElementType(kind: .bool, size: 1, bigEndian: false)
        default: return nil
        }
    }

    /// JSON numbers as Ints, or nil if any is not a whole number.
    private static func integers(_ values: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in values {
            guard let n = v as? NSNumber else { return nil }
            let d = n.doubleValue
            guard d.isFinite, d == d.rounded(), abs(d) < 9.0e15 else { return nil }
            out.append(Int(d))
        }
        return out
    }

    /// A JSON string literal for `s`.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

/// File writing helpers shared by SafeTensors and Downloads.
enum FileOps {
    /// A temporary file name next to `url` (same directory, so the final rename is atomic).
    static func temporaryURL(next url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(UUID().uuidString)")
    }

    /// Writes to a temporary file next to `url`, then renames it over `url`.
    static func writeAtomically(_ data: Data, to url: URL) throws(LoadError) {
        let temp = temporaryURL(next: url)
        do {
            try data.write(to: temp)
        } catch {
            throw LoadError(url.path, "cannot write (\(error.localizedDescription))", fix: "check that the folder exists and is writable")
        }
        try replace(url, with: temp)
    }

    /// Renames `temp` over `url` (atomic on one file system); removes `temp` if that fails.
    static func replace(_ url: URL, with temp: URL) throws(LoadError) {
        guard rename(temp.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temp)
            throw LoadError(url.path, "cannot move the finished file into place (\(reason))", fix: "check that the folder is writable")
        }
    }
}
