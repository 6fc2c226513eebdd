// ByteReader and array decoding shared by every format reader: bounds-checked reads (a truncated or corrupt file
// becomes a LoadError, never a crash), NumPy-style element types, byte-order handling, Fortran-to-C reordering,
// and the conversion of raw element bytes into a Float Tensor.

import ScratchNet

/// A cursor over bytes where every read checks the remaining length first.
struct ByteReader {
    let bytes: [UInt8]
    var offset: Int
    let source: String

    init(_ bytes: [UInt8], offset: Int = 0, source: String) {
        self.bytes = bytes
        self.offset = offset
        self.source = source
    }

    var remaining: Int { bytes.count - offset }
    var atEnd: Bool { offset >= bytes.count }

    /// An error saying the file ended while reading `what`.
    func truncated(_ what: String, needed: Int) -> LoadError {
        LoadError(source, "truncated or corrupt file: \(what) at byte \(offset) needs \(needed) bytes but only \(max(remaining, 0)) remain",
                  fix: "the file is incomplete or damaged; download or export it again")
    }

    mutating func u8(_ what: String) throws(LoadError) -> UInt8 {
        guard remaining >= 1 else { throw truncated(what, needed: 1) }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// `n` bytes; `n` may come from the file, so it is checked against the data left (and for being negative).
    mutating func take(_ n: Int, _ what: String) throws(LoadError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else { throw truncated(what, needed: n) }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    mutating func skip(_ n: Int, _ what: String) throws(LoadError) { _ = try take(n, what) }

    mutating func littleEndian(_ n: Int, _ what: String) throws(LoadError) -> UInt64 {
        let s = try take(n, what)
        var v: UInt64 = 0
        for (i, b) in s.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }

    mutating func bigEndian(_ n: Int, _ what: String) throws(LoadError) -> UInt64 {
        let s = try take(n, what)
        var v: UInt64 = 0
        for b in s { v = (v << 8) | UInt64(b) }
        return v
    }

    mutating func u16le(_ what: String) throws(LoadError) -> Int { Int(try littleEndian(2, what)) }
    mutating func u32le(_ what: String) throws(LoadError) -> Int { Int(try littleEndian(4, what)) }
    mutating func i32le(_ what: String) throws(LoadError) -> Int { Int(Int32(truncatingIfNeeded: try littleEndian(4, what))) }
    mutating func u32be(_ what: String) throws(LoadError) -> Int { Int(try bigEndian(4, what)) }

    /// A 64-bit little-endian length; values beyond `Int.max` are reported, not trapped on.
    mutating func u64le(_ what: String) throws(LoadError) -> Int {
        let v = try littleEndian(8, what)
        guard v <= UInt64(Int.max) else {
            throw LoadError(source, "corrupt file: \(what) is \(v), larger than any file", fix: "the file is damaged; export it again")
        }
        return Int(v)
    }
}

/// The element type of a stored array: what NumPy calls a dtype and safetensors a `dtype` string.
struct ElementType: Equatable, CustomStringConvertible {
    enum Kind: Equatable { case float, bfloat, signed, unsigned, bool }
    var kind: Kind
    /// Bytes per element.
    var size: Int
    var bigEndian: Bool

    static let float32 = ElementType(kind: .float, size: 4, bigEndian: false)

    var description: String {
        let order = size == 1 ? "|" : (bigEndian ? ">" : "<")
        switch kind {
        case .float: return "\(order)f\(size)"
        case .bfloat: return "bfloat16"
        case .signed: return "\(order)i\(size)"
        case .unsigned: return "\(order)u\(size)"
        case .bool: return "|b1"
        }
    }

    /// Parses a NumPy type string such as `<f4`, `>f8`, `|u1`, `=i8`, `f4` (native order: little on every
    /// platform ScratchNet supports). Returns nil for types ScratchNet does not read (objects, strings, records,
    /// complex numbers, dates).
    init?(numpy descr: String) {
        var s = Substring(descr)
        var big = false
        if let first = s.first, "<>|=".contains(first) {
            big = first == ">"
            s = s.dropFirst()
        }
        guard let code = s.first, let size = Int(s.dropFirst()) else { return nil }
        switch (code, size) {
        case ("f", 2), ("f", 4), ("f", 8): kind = .float
        case ("i", 1), ("i", 2), ("i", 4), ("i", 8): kind = .signed
        case ("u", 1), ("u", 2), ("u", 4), ("u", 8): kind = .unsigned
        case ("b", 1): kind = .bool
        default: return nil
        }
        self.size = size
        self.bigEndian = size == 1 ? false : big
    }

    init(kind: Kind, size: Int, bigEndian: Bool) {
        self.kind = kind
        self.size = size
        self.bigEndian = bigEndian
    }
}

/// Array decoding: raw element bytes to Float, C or Fortran order to a row-major Tensor.
enum ArrayDecoding {
    /// The number of elements of `shape`, or an error if a dimension is negative or the product overflows.
    static func elementCount(_ shape: [Int], source: String, name: String) throws(LoadError) -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw LoadError(source, "array '\(name)' has a negative dimension in shape \(shape)", fix: "the file is damaged; export it again") }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow else { throw LoadError(source, "array '\(name)' has an impossibly large shape \(shape)", fix: "the file is damaged; export it again") }
            n = p
        }
        return n
    }

    /// Builds a row-major Float tensor from raw element bytes: checks the byte count against the shape, converts
    /// the elements (float64 is rounded to the nearest float32, as NumPy's `astype(float32)` does) and reorders
    /// Fortran-ordered data.
    static func tensor(shape: [Int], raw: ArraySlice<UInt8>, type: ElementType, fortranOrder: Bool,
                       source: String, name: String) throws(LoadError) -> Tensor {
        let count = try elementCount(shape, source: source, name: name)
        let (bytes, overflow) = count.multipliedReportingOverflow(by: type.size)
        guard !overflow, bytes == raw.count else {
            throw LoadError(source, "array '\(name)' of shape \(shape) and type \(type) needs \(overflow ? "too many" : String(bytes)) bytes of data but has \(raw.count)",
                            fix: "the file is truncated or damaged; export it again")
        }
        var values = decode(raw, type: type, count: count)
        if fortranOrder && shape.count > 1 { values = fortranToC(values, shape: shape) }
        do {
            return try Tensor(shape: shape, scalars: values)
        } catch {
            throw LoadError(source, "array '\(name)': \(error.message)")
        }
    }

    /// Converts `count` elements of `type` to Float. `raw.count` must be `count * type.size`.
    static func decode(_ raw: ArraySlice<UInt8>, type: ElementType, count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { out, initialized in
            raw.withUnsafeBytes { src in
                let swap = type.bigEndian
                switch (type.kind, type.size) {
                case (.float, 4):
                    for i in 0..<count {
                        let b = src.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)
                        out[i] = Float(bitPattern: swap ? b.byteSwapped : b)
                    }
                case (.float, 8):
                    for i in 0..<count {
                        let b = src.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)
                        out[i] = Float(Double(bitPattern: swap ? b.byteSwapped : b))
                    }
                case (.float, 2):
                    for i in 0..<count {
                        let b = src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)
                        out[i] = halfToFloat(swap ? b.byteSwapped : b)
                    }
                case (.bfloat, _):
                    for i in 0..<count {
                        let b = src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)
                        out[i] = Float(bitPattern: UInt32(swap ? b.byteSwapped : b) << 16)
                    }
                case (.bool, _), (.unsigned, 1):
                    for i in 0..<count { out[i] = Float(src[i]) }
                case (.signed, 1):
                    for i in 0..<count { out[i] = Float(Int8(bitPattern: src[i])) }
                case (.signed, _), (.unsigned, _):
                    for i in 0..<count {
                        var v: UInt64 = 0
                        for k in 0..<type.size {
                            let byte = UInt64(src[i * type.size + (swap ? type.size - 1 - k : k)])
                            v |= byte << (8 * UInt64(k))
                        }
                        if type.kind == .signed {
                            let shift = UInt64(64 - 8 * type.size)
                            out[i] = Float(Int64(bitPattern: v << shift) >> shift)
                        } else {
                            out[i] = Float(v)
                        }
                    }
                default:
                    for i in 0..<count { out[i] = .nan }
                }
            }
            initialized = count
        }
    }

    /// IEEE 754 binary16 to Float (exact: every half value is a float value).
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        switch exponent {
        case 0:
            // zero or subnormal: mantissa * 2^-24
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -magnitude : magnitude
        case 31:
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        default:
            return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
        }
    }

    /// Reorders column-major (Fortran) values of `shape` into row-major (C) order.
    static func fortranToC(_ values: [Float], shape: [Int]) -> [Float] {
        let count = values.count
        guard count > 1 else { return values }
        if shape.count == 2 {
            // (rows, cols) stored column by column: v[i, j] is at j*rows + i
            let rows = shape[0], cols = shape[1]
            return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                for i in 0..<rows {
                    for j in 0..<cols { out[i * cols + j] = values[j * rows + i] }
                }
                initialized = count
            }
        }
        // General rank: walk the C index in order while tracking the Fortran offset.
        let rank = shape.count
        var fStride = [Int](repeating: 1, count: rank)
        for d in 1..<rank { fStride[d] = fStride[d - 1] * shape[d - 1] }
        var index = [Int](repeating: 0, count: rank)
        var fOffset = 0
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            for c in 0..<count {
                out[c] = values[fOffset]
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    fOffset += fStride[d]
                    if index[d] < shape[d] { break }
                    fOffset -= fStride[d] * shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
            initialized = count
        }
    }
}
