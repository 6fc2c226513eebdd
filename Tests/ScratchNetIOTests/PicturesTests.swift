// Tests of ScratchNetIO's pictures: the PNG encoder and reader (bitwise round trips, CRCs checked with an
// independent CRC-32, all five filter types, clear errors on damaged files), the image grid (layout sizes, image,
// frame and caption pixels), the SVG line plot (well-formed XML, series, escaping, nice ticks, determinism), CSV
// quoting, terminal rendering (exact strings) and the progress bar (bar text, terminal and non-terminal modes).

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import ScratchNet
import ScratchNetIO
import Testing

/// An independent PNG writer for the tests: bitwise CRC-32, Adler-32 and stored (uncompressed) deflate blocks.
enum PNGBytes {
    static func crc32<S: Sequence<UInt8>>(_ bytes: S) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for x in bytes {
            a = (a + UInt32(x)) % 65_521
            b = (b + a) % 65_521
        }
        return b << 16 | a
    }

    static func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    /// A zlib stream made of stored blocks.
    static func zlibStored(_ bytes: [UInt8], adler: UInt32? = nil) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65_535, bytes.count - i)
            out += [i + n == bytes.count ? 1 : 0, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += bytes[i..<(i + n)]
            i += n
        } while i < bytes.count
        return out + be(adler ?? adler32(bytes))
    }

    static func chunk(_ type: String, _ body: [UInt8], crc: UInt32? = nil) -> [UInt8] {
        let tb = Array(type.utf8)
        return be(UInt32(body.count)) + tb + body + be(crc ?? crc32(tb + body))
    }

    static func file(width: Int, height: Int, colorType: UInt8, depth: UInt8 = 8, interlace: UInt8 = 0, scanlines: [UInt8],
                     adler: UInt32? = nil) -> Data {
        let ihdr = be(UInt32(width)) + be(UInt32(height)) + [depth, colorType, 0, 0, interlace]
        return Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr)
            + chunk("IDAT", zlibStored(scanlines, adler: adler)) + chunk("IEND", []))
    }

    /// Splits a PNG into (type, body, stored CRC) chunks.
    static func chunks(_ data: Data) -> [(type: String, body: [UInt8], crc: UInt32)] {
        let b = [UInt8](data)
        var i = 8, out: [(String, [UInt8], UInt32)] = []
        while i + 12 <= b.count {
            let n = Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
            guard i + 12 + n <= b.count else { break }
            let type = String(decoding: b[(i + 4)..<(i + 8)], as: UTF8.self)
            let body = Array(b[(i + 8)..<(i + 8 + n)])
            let c = b[(i + 8 + n)..<(i + 12 + n)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            out.append((type, body, c))
            i += 12 + n
        }
        return out
    }
}

/// Deterministic test pixels (a 32-bit LCG).
func testPixels(_ n: Int, seed: UInt32) -> [UInt8] {
    var s = seed
    return (0..<n).map { _ in
        s = s &* 1_664_525 &+ 1_013_904_223
        return UInt8(s >> 24)
    }
}

@Suite struct PNGTests {
    @Test("encode → decode is bitwise identical", arguments: [
        (1, 1, PNGImage.ColorType.gray), (1, 1, .rgb), (7, 3, .gray), (7, 3, .rgb), (33, 1, .gray), (1, 33, .rgb), (28, 28, .gray),
    ])
    func roundTrip(width: Int, height: Int, colorType: PNGImage.ColorType) throws {
        for (k, pixels) in [testPixels(width * height * colorType.channels, seed: UInt32(width * 31 + height)),
                            // smooth gradients, where the adaptive filter picks Sub/Up/Average/Paeth
                            (0..<(width * height * colorType.channels)).map { UInt8(truncatingIfNeeded: $0 * 3 + $0 / 7) }].enumerated() {
            let image = try PNGImage(width: width, height: height, colorType: colorType, pixels: pixels)
            for filter in [PNGImage.Filter.none, .adaptive] {
                let data = image.pngData(filter: filter)
                let back = try PNGImage(pngData: data, source: "test")
                #expect(back == image, "\(width)x\(height) \(colorType) set \(k) \(filter)")
                #expect(back.pixels == pixels)
            }
        }
    }

    @Test("chunks: IHDR, IDAT, IEND with correct CRCs (independent CRC-32) and header fields")
    func chunkStructure() throws {
        let image = try PNGImage(width: 7, height: 3, colorType: .rgb, pixels: testPixels(63, seed: 9))
        let data = image.pngData()
        #expect(Array(data.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let chunks = PNGBytes.chunks(data)
        #expect(chunks.map(\.type) == ["IHDR", "IDAT", "IEND"])
        for c in chunks {
            #expect(c.crc == PNGBytes.crc32(Array(c.type.utf8) + c.body), "CRC of \(c.type)")
        }
        #expect(chunks.first?.body == [0, 0, 0, 7, 0, 0, 0, 3, 8, 2, 0, 0, 0])
        #expect(chunks.last?.body == [])
        #expect(chunks.last?.crc == 0xAE42_6082)  // the well-known CRC of an empty IEND
        #expect(image.pngData() == data, "deterministic")
    }

    @Test("the reader undoes all five filter types (file written by the tests' own encoder)")
    func allFilterTypes() throws {
        let width = 7, height = 10, bpp = 3, stride = width * bpp
        // Random bytes, and bytes 0...3 (many Paeth ties, where the predictor's tie order matters).
        for pixels in [testPixels(stride * height, seed: 77), testPixels(stride * height, seed: 78).map { $0 & 3 }] {
            let scanlines = filteredScanlines(pixels, width: width, height: height, bpp: bpp) { UInt8($0 % 5) }
            let data = PNGBytes.file(width: width, height: height, colorType: 2, scanlines: scanlines)
            let image = try PNGImage(pngData: data)
            #expect(image.width == width && image.height == height && image.colorType == .rgb)
            #expect(image.pixels == pixels)
        }
    }

    @Test("write(to:) is atomic and reads back; no temporary file is left")
    func writeAndRead() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scratchnet-png-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("a.png")
        let image = try PNGImage(width: 5, height: 4, pixels: testPixels(20, seed: 3))
        try image.write(to: url)
        try image.write(to: url)  // replaces
        #expect(try PNGImage(contentsOf: url) == image)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["a.png"])
        let missing = expectLoadError { _ = try image.write(to: dir.appendingPathComponent("no/such/dir/b.png")) }
        #expect(missing?.description.contains("b.png") == true)
    }

    @Test("damaged or unsupported files give a LoadError that says what is wrong")
    func corruptFiles() throws {
        let good = try PNGImage(width: 7, height: 3, pixels: testPixels(21, seed: 5)).pngData()
        var bytes = [UInt8](good)

        // One bit flipped inside IDAT: its CRC no longer matches.
        let idatAt = 8 + 25 + 8
        bytes[idatAt + 3] ^= 0x10
        let crc = expectLoadError { _ = try PNGImage(pngData: Data(bytes), source: "x.png") }
        #expect(crc?.description.contains("CRC mismatch in chunk 'IDAT'") == true, "\(String(describing: crc))")
        #expect(crc?.source == "x.png")

        let signature = expectLoadError { _ = try PNGImage(pngData: Data("GIF89a....".utf8)) }
        #expect(signature?.problem.contains("not a PNG") == true)

        let truncated = expectLoadError { _ = try PNGImage(pngData: good.prefix(good.count - 20)) }
        #expect(truncated?.description.contains("truncated") == true, "\(String(describing: truncated))")

        let noEnd = expectLoadError { _ = try PNGImage(pngData: good.prefix(good.count - 12)) }
        #expect(noEnd?.description.contains("IEND") == true, "\(String(describing: noEnd))")

        let rgba = expectLoadError { _ = try PNGImage(pngData: PNGBytes.file(width: 1, height: 1, colorType: 6, scanlines: [0, 1, 2, 3, 4])) }
        #expect(rgba?.problem.contains("RGBA") == true)
        let sixteen = expectLoadError { _ = try PNGImage(pngData: PNGBytes.file(width: 1, height: 1, colorType: 0, depth: 16, scanlines: [0, 1, 2])) }
        #expect(sixteen?.problem.contains("bit depth 16") == true)
        let interlaced = expectLoadError { _ = try PNGImage(pngData: PNGBytes.file(width: 1, height: 1, colorType: 0, interlace: 1, scanlines: [0, 1])) }
        #expect(interlaced?.problem.contains("interlaced") == true)

        let filter = expectLoadError { _ = try PNGImage(pngData: PNGBytes.file(width: 2, height: 2, colorType: 0, scanlines: [0, 1, 2, 7, 3, 4])) }
        #expect(filter?.problem.contains("filter type 7") == true, "\(String(describing: filter))")

        let adler = expectLoadError {
            _ = try PNGImage(pngData: PNGBytes.file(width: 2, height: 1, colorType: 0, scanlines: [0, 1, 2], adler: 12345))
        }
        #expect(adler?.problem.contains("Adler-32") == true, "\(String(describing: adler))")

        let short = expectLoadError { _ = try PNGImage(pngData: PNGBytes.file(width: 2, height: 2, colorType: 0, scanlines: [0, 1, 2])) }
        #expect(short != nil)

        let zeroSize = expectLoadError { _ = try PNGImage(pngData: PNGBytes.file(width: 0, height: 1, colorType: 0, scanlines: [0])) }
        #expect(zeroSize?.problem.contains("empty") == true)
    }

    @Test("PNGImage checks its size and pixel count")
    func imageValidation() throws {
        expectLoadError { _ = try PNGImage(width: 0, height: 3, pixels: []) }
        expectLoadError { _ = try PNGImage(width: 2, height: 2, colorType: .rgb, pixels: [1, 2, 3, 4]) }
        expectLoadError { _ = try PNGImage(width: 1 << 40, height: 1 << 40, pixels: []) }
        expectLoadError { _ = try PNGImage(width: 2, height: 2, colorType: .rgb, fill: [1]) }
        let filled = try PNGImage(width: 2, height: 1, colorType: .rgb, fill: [1, 2, 3])
        #expect(filled.pixels == [1, 2, 3, 1, 2, 3])
        #expect(filled.color(x: 1, y: 0) == RGB(1, 2, 3))
    }
}

@Suite struct ImageGridTests {
    /// 2×3 images: ink 255 at (0,0), 0 elsewhere except a 128 at (1,2).
    static func cell(_ caption: Caption) -> ImageGrid.Cell {
        ImageGrid.Cell(pixels: [255, 0, 0, 0, 0, 128], width: 2, height: 3, caption: caption)
    }

    @Test("layout: sizes and origins")
    func layout() throws {
        let cells = [Self.cell(Caption("1", color: .red)), Self.cell("22"), Self.cell("3")]
        let grid = ImageGrid(scale: 2)
        let l = grid.layout(for: cells)
        // ⌈√3⌉ = 2 columns, 2 rows; image 4x6 (+ frame 6x8); widest caption "22" = 11 px at text scale 1
        // (scale 2 would need 22 px > 6): cell 11 x (6 + 2 + 2 + 7) = 11 x 17; padding 6.
        #expect(l.columns == 2 && l.rows == 2 && l.textScale == 1)
        #expect(l.cellWidth == 11 && l.cellHeight == 17)
        #expect(l.width == 6 + 2 * (11 + 6) && l.height == 6 + 2 * (17 + 6))
        #expect(l.cellOrigin(3) == (23, 29))
        #expect(l.imageOrigin(0) == (6 + 2 + 1, 7))
        #expect(l.captionOrigin(0, captionWidth: 5) == (9, 6 + 6 + 2 + 2))

        let sheet = try grid.render(cells)
        #expect(sheet.width == l.width && sheet.height == l.height && sheet.colorType == .rgb)
        let o = l.imageOrigin(0)
        // Ink 255 → black 2x2 block; ink 0 → white; ink 128 → 127; frame around it.
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] { #expect(sheet.color(x: o.x + dx, y: o.y + dy) == .black) }
        #expect(sheet.color(x: o.x + 2, y: o.y) == .white)
        #expect(sheet.color(x: o.x + 3, y: o.y + 5) == RGB(gray: 127))
        #expect(sheet.color(x: o.x - 1, y: o.y - 1) == RGB(gray: 0xC8))
        #expect(sheet.color(x: o.x + 4, y: o.y + 6) == RGB(gray: 0xC8))
        // Caption "1" in red, centered under cell 0: glyph row 0 is ..#.. (0x04).
        let c = l.captionOrigin(0, captionWidth: 5)
        #expect(sheet.color(x: c.x + 2, y: c.y) == .red)
        #expect(sheet.color(x: c.x + 1, y: c.y) == .white)
        #expect(sheet.color(x: c.x + 2, y: c.y + 6) == .red)  // bottom row ###
        // Cell 3 does not exist: blank.
        let empty = l.cellOrigin(3)
        for y in empty.y..<(empty.y + l.cellHeight) {
            for x in empty.x..<(empty.x + l.cellWidth) where sheet.color(x: x, y: y) != .white {
                Issue.record("pixel (\(x), \(y)) of the empty cell is not white")
            }
        }
    }

    @Test("error captions: predicted red, arrow gray, true green; text scale grows when the caption fits")
    func errorCaption() throws {
        let cell = ImageGrid.Cell(pixels: [UInt8](repeating: 0, count: 28 * 28), width: 28, height: 28,
                                  caption: .error(predicted: "7", true: "2"))
        let grid = ImageGrid(scale: 2, padding: 4)
        let l = grid.layout(for: [cell])
        #expect(l.textScale == 2)  // "7→2" is 34 px at scale 2, under a 56 px image
        let sheet = try grid.render([cell])
        #expect(sheet.width == 4 + 58 + 4 && sheet.height == 4 + 58 + 4 + 14 + 4)
        let c = l.captionOrigin(0, captionWidth: BitmapFont.width(of: "7→2", scale: 2))
        #expect(sheet.color(x: c.x, y: c.y) == .red)  // "7" row 0 is #####
        #expect(sheet.color(x: c.x + 12, y: c.y + 6) == .gray)  // "→" row 3 is #####
        #expect(sheet.color(x: c.x + 24 + 2, y: c.y) == .green)  // "2" row 0 is .###.
        #expect(sheet.color(x: c.x + 24, y: c.y) == .white)
    }

    @Test("light-on-dark ink, fixed columns, no cells, and size errors")
    func variants() throws {
        let dark = try ImageGrid(scale: 1, columns: 3, padding: 1, textScale: 1, ink: .lightOnDark)
            .render([Self.cell(""), Self.cell("")])
        #expect(dark.width == 1 + 2 * (4 + 1) && dark.color(x: 0, y: 0) == .black)  // 2 cells: 2 columns, not 3
        #expect(dark.color(x: 2, y: 2) == .white)  // ink 255 at (0,0) of cell 0
        let none = try ImageGrid().render([])
        #expect(none.width == 12 && none.height == 12 && none.pixels.allSatisfy { $0 == 255 })
        let mixed = [Self.cell("a"), ImageGrid.Cell(pixels: [0], width: 1, height: 1, caption: "b")]
        let sizeError = expectLoadError { _ = try ImageGrid().render(mixed) }
        #expect(sizeError?.problem.contains("1x1") == true)
        expectLoadError { _ = try ImageGrid().render([ImageGrid.Cell(pixels: [0, 1], width: 2, height: 2, caption: "")]) }
    }

    @Test("font: every glyph has 7 rows of 5 bits; unknown characters are a box")
    func font() {
        #expect(BitmapFont.characters.count == 90)
        for character in BitmapFont.characters {
            let rows = BitmapFont.glyph(character)
            #expect(rows.count == 7 && rows.allSatisfy { $0 < 32 }, "\(character)")
        }
        for character in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz .,:;-+=_/\\()[]<>#%!?'\"*|→←×" {
            #expect(BitmapFont.hasGlyph(character), "\(character)")
        }
        #expect(BitmapFont.glyph("€") == BitmapFont.glyph("\u{1}"))
        #expect(!BitmapFont.hasGlyph("€") && BitmapFont.hasGlyph("→") && BitmapFont.hasGlyph("z"))
        #expect(BitmapFont.width(of: "") == 0 && BitmapFont.width(of: "ab", scale: 3) == 33)
    }

    @Test("MNISTSet.pixels(of:)")
    func mnistPixels() throws {
        let set = try MNISTSet(images: (0..<8).map { UInt8($0) }, labels: [1, 2], count: 2, rows: 2, cols: 2)
        #expect(set.pixels(of: 1) == [4, 5, 6, 7])
        #expect(set.pixels(of: 2).isEmpty && set.pixels(of: -1).isEmpty)
    }
}

#if canImport(FoundationXML) || canImport(Darwin)
/// Collects element names, attributes and text; records whether parsing succeeded.
final class XMLCollector: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []
    var texts: [String] = []
    var current = ""

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        elements.append((name, attributes))
        current = ""
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" || name == "title" { texts.append(current) }
        current = ""
    }

    static func parse(_ text: String) -> (ok: Bool, collector: XMLCollector) {
        let collector = XMLCollector()
        let parser = XMLParser(data: Data(text.utf8))
        parser.delegate = collector
        return (parser.parse(), collector)
    }
}
#endif

@Suite struct LinePlotTests {
    static let plot = LinePlot(
        title: "Loss & accuracy <test>", xLabel: "epoch", x: [1, 2, 3, 4, 5],
        panels: [
            .init(yLabel: "loss", series: [.init("train loss", [1.04, 0.6, 0.52, .nan, 0.48])]),
            .init(yLabel: "accuracy", series: [
                .init("train \"acc\"", [0.77, 0.81, 0.83, 0.84, 0.85]), .init("test", [0.76, 0.79, 0.81, 0.82, 0.82]),
            ]),
        ])

    @Test("SVG is well-formed XML with every series, escaped text and a gap at NaN")
    func svgStructure() throws {
        let svg = Self.plot.svg()
        #expect(svg.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(svg.hasSuffix("</svg>\n"))
        #expect(svg.contains("Loss &amp; accuracy &lt;test&gt;"))
        #expect(svg.contains("data-name=\"train &quot;acc&quot;\""))
        #expect(svg == Self.plot.svg(), "deterministic")
        #if canImport(FoundationXML) || canImport(Darwin)
        let (ok, xml) = XMLCollector.parse(svg)
        #expect(ok, "XMLParser accepts the SVG")
        #expect(xml.elements.first?.name == "svg")
        #expect(xml.texts.contains("Loss & accuracy <test>"))
        for name in ["train loss", "train \"acc\"", "test", "loss", "accuracy", "epoch"] {
            #expect(xml.texts.contains(name), "\(name)")
        }
        let series = xml.elements.filter { $0.name == "g" && $0.attributes["class"] == "series" }
        #expect(series.map { $0.attributes["data-name"] ?? "" } == ["train loss", "train \"acc\"", "test"])
        // The NaN splits "train loss" into two polylines: 1-2-3 and (5 alone, no line): 1 + 1 + 1 polylines.
        #expect(xml.elements.filter { $0.name == "polyline" }.count == 3)
        #expect(xml.elements.filter { $0.name == "circle" }.count == 4 + 5 + 5)
        let points = xml.elements.filter { $0.name == "polyline" }.map { $0.attributes["points"] ?? "" }
        #expect(points.first?.split(separator: " ").count == 3)
        #expect(xml.elements.filter { $0.name == "g" && $0.attributes["class"] == "legend" }.count == 2)
        #endif
    }

    @Test("nice ticks")
    func ticks() {
        #expect(LinePlot.niceStep(range: 0.07, count: 5) == 0.01)
        #expect(LinePlot.niceStep(range: 1000, count: 5) == 200)
        #expect(LinePlot.niceStep(range: 3, count: 5) == 0.5)
        let loss = LinePlot.axis([1.04, 0.31, .nan])
        #expect(loss.step == 0.1 && loss.ticks.count == 9)
        #expect(loss.ticks.map(loss.label) == ["0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0", "1.1"])
        let big = LinePlot.axis([3, 997])
        #expect(big.ticks.map(big.label) == ["0", "200", "400", "600", "800", "1000"])
        let negative = LinePlot.axis([-0.25, 0.25])
        #expect(negative.ticks.map(negative.label) == ["-0.3", "-0.2", "-0.1", "0.0", "0.1", "0.2", "0.3"])
        let flat = LinePlot.axis([0.5, 0.5])
        #expect(flat.lo < 0.5 && flat.hi > 0.5)
        let empty = LinePlot.axis([])
        #expect(empty.lo == 0 && empty.hi == 1)
        let fixed = LinePlot.axis([0.9], fixed: 0...1)
        #expect(fixed.lo == 0 && fixed.hi == 1 && fixed.ticks.map(fixed.label) == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        let epochs = LinePlot.xAxis([1, 2, 3])
        #expect(epochs.ticks == [1, 2, 3], "whole-number x never gets fractional ticks")
        let one = LinePlot.xAxis([1])
        #expect(one.lo == 0 && one.hi == 2)
    }

    @Test("no data still gives a valid SVG")
    func emptyPlot() {
        let svg = LinePlot(title: "", xLabel: "epoch", x: [], panels: [.init(yLabel: "loss", series: [.init("loss", [])])]).svg()
        #expect(svg.contains("<svg"))
        for bad in ["\"nan", "\"inf", "\"-inf", "nan,", ">nan<"] { #expect(!svg.contains(bad)) }
        #if canImport(FoundationXML) || canImport(Darwin)
        #expect(XMLCollector.parse(svg).ok)
        #endif
    }

    @Test("escape: markup and control characters")
    func escape() {
        #expect(LinePlot.escape("a<b>&\"c\"'d'") == "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;")
        #expect(LinePlot.escape("x\u{1}y\u{FFFE}") == "x y ")
    }

    @Test("CSV: RFC 4180 quoting, numbers, uneven columns")
    func csv() {
        #expect(CSVTable.quote("plain") == "plain")
        #expect(CSVTable.quote("a,b") == "\"a,b\"")
        #expect(CSVTable.quote("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(CSVTable.quote("two\nlines") == "\"two\nlines\"")
        #expect(CSVTable.quote("crlf\r\nhere") == "\"crlf\r\nhere\"")
        #expect(CSVTable.quote("") == "")
        let table = CSVTable(header: ["name", "note"], rows: [["a,b", "x"], ["c"]])
        #expect(table.text == "name,note\n\"a,b\",x\nc,\n")
        let numbers = CSVTable(columns: [("epoch", [1, 2]), ("loss", [0.5, .nan]), ("acc", [0.9352]), ("big", [1e20, -.infinity])])
        #expect(numbers.text == "epoch,loss,acc,big\n1,0.5,0.9352,1e+20\n2,nan,,-inf\n")
        #expect(CSVTable.number(-0.0) == "0" && CSVTable.number(1e-5) == "1e-05")
    }

    @Test("learning curves: CSV table and a two-panel plot")
    func learningCurves() {
        let curves = LearningCurves(trainLoss: [2.3, 0.5], trainAccuracy: [0.8, 0.9], testAccuracy: [0.79, 0.91])
        #expect(curves.table.text == "epoch,train_loss,train_accuracy,test_accuracy\n1,2.3,0.8,0.79\n2,0.5,0.9,0.91\n")
        let svg = curves.plot.svg()
        #expect(curves.plot.panels.count == 2)
        for name in ["train loss", "train accuracy", "test accuracy", "epoch"] { #expect(svg.contains(">\(name)<")) }
    }
}

@Suite struct TerminalImageTests {
    // 2 wide, 3 tall: ink rows [0, 255], [128, 64], [255, 0].
    static let pixels: [UInt8] = [0, 255, 128, 64, 255, 0]

    @Test("ASCII ramp, two characters per pixel")
    func ascii() {
        #expect(TerminalImage.render(Self.pixels, width: 2, height: 3, color: false) == "  @@\n++::\n@@  \n")
        #expect(TerminalImage.render(Self.pixels, width: 2, height: 3, color: false, charsPerPixel: 1) == " @\n+:\n@ \n")
        #expect(TerminalImage.render([UInt8](), width: 0, height: 0, color: false) == "")
    }

    @Test("half blocks with 24-bit colors, dark ink on white; an odd last row pairs with white")
    func color() {
        let e = "\u{1B}["
        let expected = "\(e)38;2;255;255;255m\(e)48;2;127;127;127m▀\(e)38;2;0;0;0m\(e)48;2;191;191;191m▀\(e)0m\n"
            + "\(e)38;2;0;0;0m\(e)48;2;255;255;255m▀\(e)38;2;255;255;255m▀\(e)0m\n"
        #expect(TerminalImage.render(Self.pixels, width: 2, height: 3, color: true) == expected)
        let dark = TerminalImage.render([255], width: 1, height: 1, color: true, ink: .lightOnDark)
        #expect(dark == "\(e)38;2;255;255;255m\(e)48;2;0;0;0m▀\(e)0m\n")
    }

    @Test("wantsColor: a terminal without NO_COLOR and not TERM=dumb")
    func wantsColor() {
        #expect(TerminalImage.wantsColor(isTerminal: true, environment: [:]))
        #expect(TerminalImage.wantsColor(isTerminal: true, environment: ["NO_COLOR": ""]))
        #expect(!TerminalImage.wantsColor(isTerminal: true, environment: ["NO_COLOR": "1"]))
        #expect(!TerminalImage.wantsColor(isTerminal: true, environment: ["TERM": "dumb"]))
        #expect(!TerminalImage.wantsColor(isTerminal: false, environment: [:]))
    }
}

@Suite struct ProgressBarTests {
    final class Recorder {
        var writes: [String] = []
        var time = 100.0
    }

    @Test("bar text")
    func bar() {
        #expect(ProgressBar.bar(done: 312, total: 600, width: 10) == "=====>    ")
        #expect(ProgressBar.bar(done: 0, total: 600, width: 10) == ">         ")
        #expect(ProgressBar.bar(done: 599, total: 600, width: 10) == "=========>")
        #expect(ProgressBar.bar(done: 600, total: 600, width: 10) == "==========")
        #expect(ProgressBar.bar(done: 0, total: 0, width: 3) == "===")
        #expect(ProgressBar.bar(done: 1, total: 1, width: 1) == "=")
        #expect(ProgressBar.duration(4.14) == "4.1 s" && ProgressBar.duration(59.96) == "1m00s")
        #expect(ProgressBar.duration(125) == "2m05s" && ProgressBar.duration(3725) == "1h02m" && ProgressBar.duration(.nan) == "?")
        let r = Recorder()
        let p = ProgressBar(total: 600, label: "epoch 3/10", isTerminal: true, output: { r.writes.append($0) }, clock: { r.time })
        p.barWidth = 10
        #expect(p.line(done: 312, elapsed: 12.3, extra: "loss 0.31") == "epoch 3/10 [=====>    ] 312/600 12.3 s ETA 11.4 s loss 0.31")
        #expect(p.line(done: 5, elapsed: 1) == "epoch 3/10 [>         ]   5/600 1.0 s ETA 1m59s")
        #expect(p.line(done: 0, elapsed: 0) == "epoch 3/10 [>         ]   0/600 0.0 s ETA ?")
    }

    @Test("not a terminal: silent per step, plain final lines")
    func notTerminal() {
        let r = Recorder()
        let p = ProgressBar(total: 10, label: "epoch 1/2", isTerminal: false, output: { r.writes.append($0) }, clock: { r.time })
        for i in 1...10 {
            r.time += 1
            p.update(done: i, extra: "loss 0.5")
        }
        #expect(r.writes.isEmpty)
        p.finish(line: "epoch 1/2  loss 0.5")
        p.finish(line: "")
        #expect(r.writes == ["epoch 1/2  loss 0.5\n"])
    }

    @Test("terminal: in place, throttled to minInterval, last step always drawn, finish erases the bar")
    func terminal() {
        let r = Recorder()
        let p = ProgressBar(total: 4, label: "e", isTerminal: true, output: { r.writes.append($0) }, clock: { r.time })
        p.barWidth = 4
        // Binary fractions, so the elapsed times are exact.
        p.update(done: 1)  // first update: drawn
        r.time += 0.0625
        p.update(done: 2)  // 0.0625 s later: skipped
        r.time += 0.125
        p.update(done: 3, extra: "x")  // 0.1875 s after the last draw: drawn
        r.time += 0.015625
        p.update(done: 4)  // last step: drawn even though only 0.016 s passed
        p.finish(line: "done")
        #expect(r.writes == [
            "\re [=>  ] 1/4 0.0 s ETA 0.0 s\u{1B}[K",
            "\re [===>] 3/4 0.2 s ETA 0.1 s x\u{1B}[K",
            "\re [====] 4/4 0.2 s ETA 0.0 s\u{1B}[K",
            "\r\u{1B}[Kdone\n",
        ])
    }
}
