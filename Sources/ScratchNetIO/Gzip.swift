// Gzip and raw-deflate decompression through zlib (the CZlib system module): gzip for MNIST's .gz IDX files,
// raw deflate for the members of .npz archives, and CRC-32 for checking zip members. Output is capped so a
// corrupt or hostile file cannot exhaust memory.

import CZlib
import Foundation

/// Gzip detection and decompression.
public enum Gzip {
    /// True when `data` starts with the gzip magic bytes 1f 8b.
    public static func isGzip(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1F && data[data.startIndex + 1] == 0x8B
    }

    /// Returns `data` unchanged unless it starts with the gzip magic 1f 8b, in which case it is decompressed
    /// (all members of a multi-member file, as `gunzip` does; trailing zero padding is ignored).
    ///
    /// - Parameters:
    ///   - data: the file's contents, gzip-compressed or not.
    ///   - source: the file name for error messages.
    ///   - maxOutput: the largest decompressed size accepted, in bytes.
    /// - Throws: ``LoadError`` when the data is truncated, corrupt, fails its CRC, or exceeds `maxOutput`.
    public static func decompressIfNeeded(_ data: Data, source: String, maxOutput: Int) throws(LoadError) -> Data {
        guard isGzip(data) else { return data }
        let bytes = [UInt8](data)
        return Data(try Zlib.inflate(bytes[...], format: .gzip, maxOutput: maxOutput, source: source))
    }

    /// Like ``decompressIfNeeded(_:source:maxOutput:)``, but inflates no more than the size the gzip trailer
    /// declares (ISIZE, the last four bytes: the uncompressed size modulo 2³²). A file whose data runs past it,
    /// a gzip bomb that lies about its size, stops there; one that tells the truth is checked against
    /// `maxOutput` before inflating. Files of several gzip members joined together are refused when their total
    /// exceeds the last member's ISIZE (decompress those with gunzip first).
    public static func decompressDeclared(_ data: Data, source: String, maxOutput: Int) throws(LoadError) -> Data {
        guard isGzip(data) else { return data }
        let bytes = [UInt8](data)
        guard bytes.count >= 18 else {
            throw LoadError(source, "gzip data of \(bytes.count) bytes is shorter than a gzip header and trailer", fix: "the file is truncated; download or export it again")
        }
        let declared = bytes[(bytes.count - 4)...].reversed().reduce(0) { ($0 << 8) | Int($1) }
        guard declared <= maxOutput else {
            throw LoadError(source, "gzip trailer declares \(declared) decompressed bytes, more than the \(maxOutput)-byte limit",
                            fix: "the file is too large for ScratchNet or not a weights file")
        }
        return Data(try Zlib.inflate(bytes[...], format: .gzip, maxOutput: declared,
                                     limitReason: "the size its gzip trailer declares; gunzip a multi-member file first",
                                     source: source))
    }

    /// The first `count` decompressed bytes of gzip `data` (fewer if it is shorter), inflating no further: lets a
    /// reader look at a header (e.g. IDX dimensions) and size the full decompression from it.
    static func prefix(_ data: Data, count: Int, source: String) throws(LoadError) -> [UInt8] {
        let bytes = [UInt8](data)
        return try Zlib.inflate(bytes[...], format: .gzip, maxOutput: count, stopAt: count, source: source)
    }
}

/// zlib wrappers shared by Gzip and the .npz reader.
enum Zlib {
    enum Format {
        /// RFC 1952 gzip: zlib windowBits 15 + 16.
        case gzip
        /// RFC 1951 raw deflate (zip members): windowBits -15.
        case rawDeflate

        var windowBits: Int32 { self == .gzip ? 15 + 16 : -15 }
    }

    /// Decompresses `input`. For gzip, further members after the first are decompressed too.
    /// `expectedSize`, when known (zip members), sizes the buffer and is checked. The output buffer never grows
    /// past `maxOutput + 1` bytes, so a decompression bomb is stopped after at most that much memory. With
    /// `stopAt`, decompression ends quietly once that many bytes are out (a truncated stream is then no error).
    static func inflate(_ input: ArraySlice<UInt8>, format: Format, maxOutput: Int, expectedSize: Int? = nil,
                        stopAt: Int? = nil, limitReason: String? = nil, source: String) throws(LoadError) -> [UInt8] {
        let limit = "the \(maxOutput)-byte limit" + (limitReason.map { " (\($0))" } ?? "")
        guard input.count <= Int(UInt32.max) else {
            throw LoadError(source, "compressed data of \(input.count) bytes is too large for ScratchNet's reader")
        }
        let what = format == .gzip ? "gzip data" : "deflate data"
        if let expectedSize, expectedSize > maxOutput {
            throw LoadError(source, "\(what) would decompress to \(expectedSize) bytes, more than \(limit)",
                            fix: "the file is damaged or not what ScratchNet expects here")
        }
        var stream = z_stream()
        let initStatus = inflateInit2_(&stream, format.windowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else { throw LoadError(source, "zlib could not start (inflateInit2 status \(initStatus))") }
        defer { inflateEnd(&stream) }

        let initial = min(maxOutput + 1, stopAt ?? Int.max, expectedSize ?? max(input.count * 4, 1 << 16))
        var output = [UInt8](repeating: 0, count: max(1, initial))
        var produced = 0
        var failure: LoadError?
        input.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
            guard let base = src.baseAddress?.assumingMemoryBound(to: Bytef.self) else {
                failure = LoadError(source, "\(what) is empty", fix: "the file is truncated; download or export it again")
                return
            }
            stream.next_in = UnsafeMutablePointer(mutating: base)
            stream.avail_in = uInt(src.count)
            while true {
                if let stopAt, produced >= stopAt { return }
                if produced == output.count {
                    guard output.count <= maxOutput else {
                        failure = LoadError(source, "\(what) decompresses to more than \(limit)",
                                            fix: "the file is damaged or not what ScratchNet expects here")
                        return
                    }
                    output.append(contentsOf: repeatElement(0, count: min(output.count, maxOutput + 1 - output.count)))
                }
                let room = min(output.count - produced, Int(UInt32.max))
                let status: Int32 = output.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress.map { $0 + produced }
                    stream.avail_out = uInt(room)
                    return CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                produced += room - Int(stream.avail_out)
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    let left = Int(stream.avail_in)
                    if format == .gzip, left >= 2, stream.next_in[0] == 0x1F, stream.next_in[1] == 0x8B {
                        inflateReset(&stream) // another gzip member follows
                        continue
                    }
                    if left > 0, format == .gzip, !(0..<left).allSatisfy({ stream.next_in[$0] == 0 }) {
                        failure = LoadError(source, "\(left) bytes of unexpected data after the end of the gzip stream",
                                            fix: "the file is damaged; download it again")
                    }
                    return
                case Z_BUF_ERROR where stream.avail_out == 0:
                    continue // output full; grown above
                case Z_BUF_ERROR where stopAt != nil:
                    return // the caller only wants a prefix; a short stream is for it to judge
                case Z_BUF_ERROR:
                    failure = LoadError(source, "\(what) ends early (the file is truncated)", fix: "download or export it again")
                    return
                default:
                    let msg = stream.msg.map { String(cString: $0) } ?? "status \(status)"
                    failure = LoadError(source, "corrupt \(what): zlib says '\(msg)'", fix: "the file is damaged; download or export it again")
                    return
                }
            }
        }
        if let failure { throw failure }
        if let stopAt, produced > stopAt { produced = stopAt }
        guard produced <= maxOutput else {
            throw LoadError(source, "\(what) decompresses to more than \(limit)", fix: "the file is damaged or not what ScratchNet expects here")
        }
        if let expectedSize, produced != expectedSize {
            throw LoadError(source, "\(what) decompressed to \(produced) bytes, but the archive says \(expectedSize)", fix: "the file is damaged; export it again")
        }
        output.removeSubrange(produced...)
        return output
    }

    /// CRC-32 (the zip/gzip checksum) of `bytes`.
    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: uLong = CZlib.crc32(0, nil, 0)
        bytes.withUnsafeBytes { raw in
            var p = raw.baseAddress?.assumingMemoryBound(to: Bytef.self)
            var left = raw.count
            while left > 0, let base = p {
                let n = min(left, Int(UInt32.max))
                crc = CZlib.crc32(crc, base, uInt(n))
                p = base + n
                left -= n
            }
        }
        return UInt32(truncatingIfNeeded: crc)
    }
}
