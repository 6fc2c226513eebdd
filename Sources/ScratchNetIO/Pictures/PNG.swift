// PNG: a small encoder and reader for 8-bit grayscale and RGB images (no palette, alpha or interlacing), with
// zlib from the CZlib system module. The encoder writes IHDR, one IDAT and IEND with per-row adaptive filters;
// the reader checks every chunk CRC and the zlib Adler-32, undoes all five filter types, and is used by the tests
// (and anyone who wants to check a written file) to compare pixels bit for bit. The same reader (`PNG.decode`)
// also accepts palette, gray + alpha and RGBA files for DigitImage.swift, which converts them to gray.

import CZlib
import Foundation

/// An 8-bit grayscale or RGB raster, row-major from the top-left pixel.
public struct PNGImage: Sendable, Equatable {
    /// The pixel layout: one gray byte, or three bytes red, green, blue.
    public enum ColorType: UInt8, Sendable {
        /// One byte per pixel, 0 = black, 255 = white (PNG color type 0).
        case gray = 0
        /// Three bytes per pixel: red, green, blue (PNG color type 2).
        case rgb = 2

        /// Bytes per pixel.
        public var channels: Int { self == .gray ? 1 : 3 }
    }

    /// How the encoder filters each row before compressing (the reader accepts all five PNG filter types).
    public enum Filter: Sendable {
        /// Filter type 0 on every row.
        case none
        /// Per row, the filter type (0...4) whose output has the smallest sum of absolute signed bytes (the
        /// heuristic the PNG specification suggests).
        case adaptive
    }

    /// Width in pixels (at least 1).
    public let width: Int
    /// Height in pixels (at least 1).
    public let height: Int
    /// Gray or RGB.
    public let colorType: ColorType
    /// `width * height * colorType.channels` bytes, row after row.
    public internal(set) var pixels: [UInt8]

    /// The largest image accepted (bytes of pixel data), by both the encoder and the reader.
    public static let maxPixelBytes = 1 << 28

    /// Creates an image, checking that the size is positive and `pixels` holds exactly
    /// `width * height * colorType.channels` bytes.
    public init(width: Int, height: Int, colorType: ColorType = .gray, pixels: [UInt8]) throws(LoadError) {
        let n = try Self.byteCount(width: width, height: height, colorType: colorType, source: "PNG image")
        guard pixels.count == n else {
            throw LoadError("PNG image", "\(pixels.count) pixel bytes do not fill \(width)x\(height) \(colorType) pixels (\(n) bytes)")
        }
        self.width = width
        self.height = height
        self.colorType = colorType
        self.pixels = pixels
    }

    /// A `width`×`height` image filled with one gray value (`fill` has 1 byte) or one color (3 bytes, RGB).
    public init(width: Int, height: Int, colorType: ColorType = .gray, fill: [UInt8]) throws(LoadError) {
        guard fill.count == colorType.channels else {
            throw LoadError("PNG image", "a \(colorType) fill color needs \(colorType.channels) bytes, not \(fill.count)")
        }
        let n = try Self.byteCount(width: width, height: height, colorType: colorType, source: "PNG image")
        var pixels: [UInt8] = []
        pixels.reserveCapacity(n)
        for _ in 0..<(n / fill.count) { pixels.append(contentsOf: fill) }
        try self.init(width: width, height: height, colorType: colorType, pixels: pixels)
    }

    /// `width * height * channels`, checking that the size is positive and within ``maxPixelBytes``.
    static func byteCount(width: Int, height: Int, colorType: ColorType, source: String) throws(LoadError) -> Int {
        guard width > 0, height > 0 else {
            throw LoadError(source, "image size \(width)x\(height) is empty", fix: "images need at least one pixel")
        }
        let (n, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, n <= maxPixelBytes / colorType.channels else {
            throw LoadError(source, "image size \(width)x\(height) is larger than the \(maxPixelBytes)-byte limit")
        }
        return n * colorType.channels
    }

    /// The bytes of pixel (`x`, `y`): one for gray, three for RGB. `x` and `y` must lie inside the image.
    public func pixel(x: Int, y: Int) -> ArraySlice<UInt8> {
        let c = colorType.channels, start = (y * width + x) * c
        return pixels[start..<(start + c)]
    }

    // MARK: Encoding

    /// The PNG file bytes: signature, IHDR, one IDAT (zlib, default level), IEND.
    public func pngData(filter: Filter = .adaptive) -> Data {
        var out = Data(PNG.signature)
        var ihdr: [UInt8] = []
        PNG.appendBE(UInt32(width), to: &ihdr)
        PNG.appendBE(UInt32(height), to: &ihdr)
        ihdr += [8, colorType.rawValue, 0, 0, 0]  // bit depth 8, compression 0, filter method 0, no interlace
        PNG.appendChunk("IHDR", ihdr, to: &out)
        PNG.appendChunk("IDAT", PNG.zlibCompress(filtered(filter)), to: &out)
        PNG.appendChunk("IEND", [], to: &out)
        return out
    }

    /// Writes the PNG to `url` atomically (a temporary file in the same folder, then renamed over `url`).
    public func write(to url: URL, filter: Filter = .adaptive) throws(LoadError) {
        try FileOps.writeAtomically(pngData(filter: filter), to: url)
    }

    /// The filtered scanlines: per row, one filter-type byte then the filtered row bytes.
    func filtered(_ filter: Filter) -> [UInt8] {
        let bpp = colorType.channels, stride = width * bpp
        var out = [UInt8]()
        out.reserveCapacity((stride + 1) * height)
        var prior = [UInt8](repeating: 0, count: stride)  // the row above the first row is all zeros
        var candidate = [UInt8](repeating: 0, count: stride)
        var best = [UInt8](repeating: 0, count: stride)
        for y in 0..<height {
            let row = Array(pixels[(y * stride)..<((y + 1) * stride)])
            if filter == .none {
                out.append(0)
                out.append(contentsOf: row)
            } else {
                var bestType: UInt8 = 0, bestScore = Int.max
                for type in UInt8(0)...4 {
                    let score = PNG.filterRow(type, row: row, prior: prior, bpp: bpp, into: &candidate)
                    if score < bestScore {
                        bestScore = score
                        bestType = type
                        swap(&best, &candidate)
                    }
                }
                out.append(bestType)
                out.append(contentsOf: best)
            }
            prior = row
        }
        return out
    }

    // MARK: Decoding

    /// Decodes an 8-bit grayscale or RGB, non-interlaced PNG, bit for bit (no conversion).
    ///
    /// For any other 8-bit PNG (palette, gray + alpha, RGBA) use ``init(grayscalePNG:source:)``, which converts
    /// to gray.
    ///
    /// - Parameters:
    ///   - data: the PNG file's bytes.
    ///   - source: the file name for error messages.
    /// - Throws: ``LoadError`` for a missing signature, a truncated file, a chunk whose CRC does not match, a
    ///   missing IHDR/IDAT/IEND, an unsupported format (palette, alpha, 16-bit, interlaced), corrupt zlib data
    ///   or a bad Adler-32, or an unknown filter type.
    public init(pngData data: Data, source: String = "PNG") throws(LoadError) {
        let raster = try PNG.decode(data, source: source, accepting: [ColorType.gray.rawValue, ColorType.rgb.rawValue])
        let colorType: ColorType = raster.colorType == ColorType.rgb.rawValue ? .rgb : .gray
        try self.init(width: raster.width, height: raster.height, colorType: colorType, pixels: raster.samples)
    }

    /// Reads and decodes a PNG file (see ``init(pngData:source:)``).
    public init(contentsOf url: URL) throws(LoadError) {
        try self.init(pngData: PNG.read(url), source: url.path)
    }
}

/// A decoded 8-bit PNG before any conversion: the unfiltered samples and the palette and transparency chunks.
struct PNGRaster {
    var width: Int
    var height: Int
    /// The PNG color type: 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA.
    var colorType: UInt8
    /// `width * height * PNG.channels(colorType)` samples, row after row.
    var samples: [UInt8]
    /// The PLTE chunk: red, green, blue per entry (color type 3 only; empty otherwise).
    var palette: [UInt8] = []
    /// The tRNS chunk: per palette entry an alpha (type 3), or the one transparent gray / RGB value as 16-bit
    /// big-endian samples (types 0, 2). Empty when absent.
    var transparency: [UInt8] = []
}

extension PNG {
    /// Samples per pixel of an 8-bit PNG color type (palette: one index), or nil for an invalid type.
    static func channels(_ colorType: UInt8) -> Int? {
        switch colorType {
        case 0, 3: 1
        case 4: 2
        case 2: 3
        case 6: 4
        default: nil
        }
    }

    static let colorTypeNames: [UInt8: String] = [0: "gray", 2: "RGB", 3: "palette", 4: "gray + alpha", 6: "RGBA"]

    /// The bytes of the file at `url`, or a LoadError naming it.
    static func read(_ url: URL) throws(LoadError) -> Data {
        do {
            return try Data(contentsOf: url)
        } catch {
            let missing = !FileManager.default.fileExists(atPath: url.path)
            throw LoadError(url.path, missing ? "no such file" : "cannot read the file (\(error.localizedDescription))",
                            fix: "check the path and its permissions")
        }
    }

    /// Decodes a non-interlaced, 8-bit PNG whose color type is one of `accepting`: checks every chunk CRC and the
    /// zlib Adler-32 and undoes all five filter types. The error for a color type outside `accepting` lists them.
    static func decode(_ data: Data, source: String, accepting: [UInt8]) throws(LoadError) -> PNGRaster {
        guard !data.isEmpty else {
            throw LoadError(source, "is empty (0 bytes), not a PNG file", fix: "write the picture again as a PNG")
        }
        var reader = ByteReader([UInt8](data), source: source)
        // A short file that is not a PNG at all is "not a PNG", not "truncated".
        guard Array(data.prefix(8)) == Array(PNG.signature.prefix(data.count)) else {
            throw LoadError(source, "not a PNG file (it does not start with the 8-byte PNG signature 89 50 4E 47 0D 0A 1A 0A)")
        }
        let signature = try reader.take(8, "PNG signature")
        guard Array(signature) == PNG.signature else {
            throw LoadError(source, "not a PNG file (it does not start with the 8-byte PNG signature 89 50 4E 47 0D 0A 1A 0A)")
        }
        var header: (width: Int, height: Int, colorType: UInt8)?
        var idat: [UInt8] = []
        var palette: [UInt8] = [], transparency: [UInt8] = []
        var sawEnd = false
        while !reader.atEnd, !sawEnd {
            let length = try reader.u32be("chunk length")
            let typeBytes = try reader.take(4, "chunk type")
            let type = String(decoding: typeBytes, as: UTF8.self)
            guard length <= Int(Int32.max) else { throw LoadError(source, "chunk '\(type)' declares an impossible length \(length)") }
            let body = try reader.take(length, "chunk '\(type)' (\(length) bytes)")
            let stored = UInt32(try reader.u32be("CRC of chunk '\(type)'"))
            let computed = Zlib.crc32(Array(typeBytes)[...] + body)
            guard stored == computed else {
                throw LoadError(source, "CRC mismatch in chunk '\(type)' at byte \(reader.offset - length - 12): stored "
                                + "\(PNG.hex(stored)), computed \(PNG.hex(computed))", fix: "the file is damaged; write it again")
            }
            switch type {
            case "IHDR":
                guard header == nil else { throw LoadError(source, "has two IHDR chunks") }
                header = try parseHeader(Array(body), source: source, accepting: accepting)
            case "IDAT":
                guard header != nil else { throw LoadError(source, "IDAT chunk before IHDR") }
                idat += body
            case "IEND":
                sawEnd = true
            case "PLTE":
                // parseHeader has refused a palette image already when `accepting` lacks it; in an RGB or RGBA
                // image the chunk is only a suggested palette for limited displays, and is skipped.
                guard let header, idat.isEmpty else { throw LoadError(source, "PLTE chunk is not between IHDR and IDAT") }
                guard header.colorType == 3 else { continue }
                guard body.count % 3 == 0, (3...768).contains(body.count) else {
                    throw LoadError(source, "PLTE chunk has \(body.count) bytes, not 1...256 RGB entries", fix: "the file is damaged")
                }
                palette = Array(body)
            case "tRNS":
                transparency = Array(body)
            default:
                // Ancillary chunks (lower-case first letter) may be skipped; critical ones may not.
                if let first = typeBytes.first, first & 0x20 == 0 {
                    throw LoadError(source, "unknown critical chunk '\(type)'")
                }
            }
        }
        guard let header else { throw LoadError(source, "has no IHDR chunk", fix: "the file is damaged or not a PNG image") }
        guard !idat.isEmpty else { throw LoadError(source, "has no image data (no IDAT chunk)", fix: "the file is damaged") }
        guard sawEnd else { throw LoadError(source, "is truncated: no IEND chunk", fix: "the file is incomplete; write it again") }
        if header.colorType == 3, palette.isEmpty {
            throw LoadError(source, "is a palette image without a PLTE chunk", fix: "the file is damaged")
        }

        let bpp = channels(header.colorType) ?? 1, stride = header.width * bpp
        let expected = (stride + 1) * header.height
        let raw = try zlibDecompress(idat, expectedSize: expected, source: source)
        var samples = [UInt8](repeating: 0, count: stride * header.height)
        try unfilter(raw, into: &samples, width: header.width, height: header.height, bpp: bpp, source: source)
        return PNGRaster(width: header.width, height: header.height, colorType: header.colorType, samples: samples,
                         palette: palette, transparency: transparency)
    }

    private static func parseHeader(_ body: [UInt8], source: String, accepting: [UInt8]) throws(LoadError)
        -> (width: Int, height: Int, colorType: UInt8)
    {
        guard body.count == 13 else { throw LoadError(source, "IHDR chunk has \(body.count) bytes, not 13") }
        var r = ByteReader(body, source: source)
        let width = try r.u32be("IHDR width"), height = try r.u32be("IHDR height")
        let depth = try r.u8("IHDR bit depth"), color = try r.u8("IHDR color type")
        let compression = try r.u8("IHDR compression"), filter = try r.u8("IHDR filter"), interlace = try r.u8("IHDR interlace")
        guard width <= Int(Int32.max), height <= Int(Int32.max) else {
            throw LoadError(source, "IHDR declares an invalid size \(width)x\(height) (PNG sizes are below 2^31)")
        }
        guard let bpp = channels(color), accepting.contains(color) else {
            let list = accepting.map { "\($0), \(colorTypeNames[$0] ?? "?")" }.joined(separator: "; ")
            throw LoadError(source, "color type \(color) (\(colorTypeNames[color] ?? "invalid")) is not supported (only \(list))")
        }
        guard depth == 8 else {
            throw LoadError(source, "bit depth \(depth) is not supported (only 8)", fix: "save it as an 8-bit PNG")
        }
        guard compression == 0, filter == 0 else {
            throw LoadError(source, "IHDR declares compression method \(compression) / filter method \(filter); PNG defines only 0")
        }
        guard interlace == 0 else {
            throw LoadError(source, "interlaced (Adam7) images are not supported", fix: "save it without interlacing")
        }
        // The same size limit as PNGImage, on the decoded samples.
        let (n, overflow) = width.multipliedReportingOverflow(by: height)
        guard width > 0, height > 0 else {
            throw LoadError(source, "image size \(width)x\(height) is empty", fix: "images need at least one pixel")
        }
        guard !overflow, n <= PNGImage.maxPixelBytes / bpp else {
            throw LoadError(source, "image size \(width)x\(height) is larger than the \(PNGImage.maxPixelBytes)-byte limit")
        }
        return (width, height, color)
    }
}

/// PNG chunk, filter and zlib helpers.
enum PNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Eight hex digits.
    static func hex(_ v: UInt32) -> String {
        let digits = String(v, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    static func appendBE(_ v: UInt32, to out: inout [UInt8]) {
        out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    /// length, type, data, CRC-32 of type + data.
    static func appendChunk(_ type: String, _ body: [UInt8], to out: inout Data) {
        var head: [UInt8] = []
        appendBE(UInt32(body.count), to: &head)
        let typeBytes = Array(type.utf8)
        var crcInput = typeBytes
        crcInput += body
        var tail: [UInt8] = []
        appendBE(Zlib.crc32(crcInput[...]), to: &tail)
        out.append(contentsOf: head)
        out.append(contentsOf: crcInput)
        out.append(contentsOf: tail)
    }

    /// The Paeth predictor of PNG filter type 4.
    @inline(__always)
    static func paeth(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8 {
        let p = Int(a) + Int(b) - Int(c)
        let pa = abs(p - Int(a)), pb = abs(p - Int(b)), pc = abs(p - Int(c))
        if pa <= pb && pa <= pc { return a }
        return pb <= pc ? b : c
    }

    /// Filters one row with `type` into `out`; returns the sum of |byte as Int8| (the selection heuristic).
    static func filterRow(_ type: UInt8, row: [UInt8], prior: [UInt8], bpp: Int, into out: inout [UInt8]) -> Int {
        let n = min(row.count, prior.count, out.count)  // equal in the encoder
        var score = 0
        row.withUnsafeBufferPointer { row in
            prior.withUnsafeBufferPointer { prior in
                out.withUnsafeMutableBufferPointer { out in
                    for i in 0..<n {
                        let x = row[i], a = i >= bpp ? row[i - bpp] : 0, b = prior[i], c = i >= bpp ? prior[i - bpp] : 0
                        let v: UInt8
                        switch type {
                        case 1: v = x &- a
                        case 2: v = x &- b
                        case 3: v = x &- UInt8((Int(a) + Int(b)) / 2)
                        case 4: v = x &- paeth(a, b, c)
                        default: v = x
                        }
                        out[i] = v
                        score += abs(Int(Int8(bitPattern: v)))
                    }
                }
            }
        }
        return score
    }

    /// Undoes the per-row filters of `raw` ((1 + width*bpp) bytes per row) into `pixels`.
    static func unfilter(_ raw: [UInt8], into pixels: inout [UInt8], width: Int, height: Int, bpp: Int,
                         source: String) throws(LoadError) {
        let stride = width * bpp
        for y in 0..<height {
            let type = raw[y * (stride + 1)]
            guard type <= 4 else {
                throw LoadError(source, "row \(y) has filter type \(type); PNG defines only 0...4", fix: "the file is damaged")
            }
            let src = y * (stride + 1) + 1, dst = y * stride, up = dst - stride
            for i in 0..<stride {
                let x = raw[src + i]
                let a = i >= bpp ? pixels[dst + i - bpp] : 0
                let b = y > 0 ? pixels[up + i] : 0
                let c = i >= bpp && y > 0 ? pixels[up + i - bpp] : 0
                switch type {
                case 1: pixels[dst + i] = x &+ a
                case 2: pixels[dst + i] = x &+ b
                case 3: pixels[dst + i] = x &+ UInt8((Int(a) + Int(b)) / 2)
                case 4: pixels[dst + i] = x &+ paeth(a, b, c)
                default: pixels[dst + i] = x
                }
            }
        }
    }

    /// A zlib stream (RFC 1950) of `bytes` at zlib's default level (6: level 9 is twice as slow on big grids for 4% less).
    static func zlibCompress(_ bytes: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        guard deflateInit_(&stream, Z_DEFAULT_COMPRESSION, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            return storedZlib(bytes)
        }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))) + 16)
        var status: Int32 = Z_STREAM_ERROR
        bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress)
                stream.avail_in = uInt(src.count)
                stream.next_out = dst.baseAddress
                stream.avail_out = uInt(dst.count)
                status = deflate(&stream, Z_FINISH)
            }
        }
        // deflateBound guarantees one Z_FINISH call suffices; fall back to stored blocks if zlib disagrees.
        guard status == Z_STREAM_END else { return storedZlib(bytes) }
        out.removeSubrange(Int(stream.total_out)...)
        return out
    }

    /// A valid zlib stream of uncompressed (stored) deflate blocks: the fallback if zlib cannot start.
    static func storedZlib(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65_535, bytes.count - i), last: UInt8 = i + n == bytes.count ? 1 : 0
            out += [last, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += bytes[i..<(i + n)]
            i += n
        } while i < bytes.count
        appendBE(adler32(bytes), to: &out)
        return out
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { buf in
            UInt32(truncatingIfNeeded: CZlib.adler32(CZlib.adler32(0, nil, 0), buf.baseAddress, uInt(buf.count)))
        }
    }

    /// Inflates a zlib stream (2-byte header, raw deflate, big-endian Adler-32) that must produce exactly
    /// `expectedSize` bytes.
    static func zlibDecompress(_ stream: [UInt8], expectedSize: Int, source: String) throws(LoadError) -> [UInt8] {
        guard stream.count >= 6 else { throw LoadError(source, "image data is truncated (\(stream.count) zlib bytes)", fix: "the file is damaged") }
        let cmf = stream[0], flg = stream[1]
        guard cmf & 0x0F == 8, cmf >> 4 <= 7, (UInt16(cmf) << 8 | UInt16(flg)) % 31 == 0 else {
            throw LoadError(source, String(format: "image data does not start with a zlib header (%02x %02x)", cmf, flg), fix: "the file is damaged")
        }
        guard flg & 0x20 == 0 else { throw LoadError(source, "image data uses a preset zlib dictionary, which PNG does not allow") }
        let raw = try Zlib.inflate(stream[2..<(stream.count - 4)], format: .rawDeflate, maxOutput: expectedSize,
                                   expectedSize: expectedSize, source: source)
        let n = stream.count
        let stored = UInt32(stream[n - 4]) << 24 | UInt32(stream[n - 3]) << 16 | UInt32(stream[n - 2]) << 8 | UInt32(stream[n - 1])
        let computed = adler32(raw)
        guard stored == computed else {
            throw LoadError(source, "image data fails its Adler-32 check (stored \(hex(stored)), computed \(hex(computed)))",
                            fix: "the file is damaged; write it again")
        }
        return raw
    }
}
