// Tests of DigitImage and the any-color-type PNG reader behind it: gray and RGB files from the project's encoder
// round-trip (RGB to its luma), gray + alpha, RGBA and palette files hand-built with each of the five filter types,
// transparency composited over a contrasting background, clear errors (16-bit, interlaced, bad palette index,
// no ink), and the MNIST-style preprocessing: ink box scaled to 20 pixels by area averaging, centre of mass at
// (14, 14), polarity, and odd sizes.

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

/// PNG scanlines of `pixels` (`bpp` bytes per pixel), every row filtered with `type` (0...4), written by the test
/// itself from the PNG specification.
func filteredScanlines(_ pixels: [UInt8], width: Int, height: Int, bpp: Int, type: UInt8) -> [UInt8] {
    filteredScanlines(pixels, width: width, height: height, bpp: bpp) { _ in type }
}

/// PNG scanlines of `pixels`, row `y` filtered with `typeOfRow(y)` (0...4).
func filteredScanlines(_ pixels: [UInt8], width: Int, height: Int, bpp: Int, typeOfRow: (Int) -> UInt8) -> [UInt8] {
    let stride = width * bpp
    var out: [UInt8] = []
    for y in 0..<height {
        let type = typeOfRow(y)
        out.append(type)
        for i in 0..<stride {
            let x = Int(pixels[y * stride + i])
            let a = i >= bpp ? Int(pixels[y * stride + i - bpp]) : 0
            let b = y > 0 ? Int(pixels[(y - 1) * stride + i]) : 0
            let c = i >= bpp && y > 0 ? Int(pixels[(y - 1) * stride + i - bpp]) : 0
            let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
            let paeth = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
            let predictor = [0, a, b, (a + b) / 2, paeth][Int(type)]
            out.append(UInt8(truncatingIfNeeded: x - predictor))
        }
    }
    return out
}

/// A PNG with extra chunks (PLTE, tRNS) between IHDR and IDAT.
func pngFile(width: Int, height: Int, colorType: UInt8, depth: UInt8 = 8, extra: [(String, [UInt8])] = [],
             scanlines: [UInt8]) -> Data {
    let ihdr = PNGBytes.be(UInt32(width)) + PNGBytes.be(UInt32(height)) + [depth, colorType, 0, 0, 0]
    var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + PNGBytes.chunk("IHDR", ihdr)
    for (type, body) in extra { bytes += PNGBytes.chunk(type, body) }
    bytes += PNGBytes.chunk("IDAT", PNGBytes.zlibStored(scanlines)) + PNGBytes.chunk("IEND", [])
    return Data(bytes)
}

func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
    let sum: Int = 299 * Int(r) + 587 * Int(g) + 114 * Int(b)
    return UInt8((sum + 500) / 1000)
}

/// Centre of mass (pixel indices) of a 28x28 image.
func centreOfMass(_ p: [UInt8]) -> (x: Double, y: Double) {
    var m = 0.0, mx = 0.0, my = 0.0
    for y in 0..<28 {
        for x in 0..<28 {
            let v = Double(p[y * 28 + x])
            m += v; mx += Double(x) * v; my += Double(y) * v
        }
    }
    return (mx / m, my / m)
}

/// (columns, rows) spanned by the nonzero pixels of a 28x28 image.
func extent(_ p: [UInt8]) -> (width: Int, height: Int) {
    var x0 = 28, x1 = -1, y0 = 28, y1 = -1
    for y in 0..<28 {
        for x in 0..<28 where p[y * 28 + x] > 0 {
            x0 = min(x0, x); x1 = max(x1, x); y0 = min(y0, y); y1 = max(y1, y)
        }
    }
    return (x1 - x0 + 1, y1 - y0 + 1)
}

/// A gray image with a filled ellipse of `ink` on `background`, anti-aliased by 4x4 supersampling.
func ellipseImage(width: Int, height: Int, cx: Double, cy: Double, rx: Double, ry: Double,
                  ink: UInt8 = 255, background: UInt8 = 0) throws -> PNGImage {
    var pixels = [UInt8](repeating: background, count: width * height)
    for y in 0..<height {
        for x in 0..<width {
            var hits = 0
            for sy in 0..<4 {
                for sx in 0..<4 {
                    let px = Double(x) + (Double(sx) + 0.5) / 4, py = Double(y) + (Double(sy) + 0.5) / 4
                    if ((px - cx) / rx) * ((px - cx) / rx) + ((py - cy) / ry) * ((py - cy) / ry) <= 1 { hits += 1 }
                }
            }
            let t = Double(hits) / 16
            pixels[y * width + x] = UInt8((Double(background) * (1 - t) + Double(ink) * t).rounded())
        }
    }
    return try PNGImage(width: width, height: height, pixels: pixels)
}

@Suite struct GrayscalePNGTests {
    @Test("gray and RGB files from the encoder: gray round-trips bit for bit, RGB becomes its BT.601 luma")
    func encoderRoundTrip() throws {
        for filter in [PNGImage.Filter.none, .adaptive] {
            let gray = try PNGImage(width: 13, height: 7, pixels: testPixels(91, seed: 3))
            #expect(try PNGImage(grayscalePNG: gray.pngData(filter: filter)) == gray)

            let rgbPixels = testPixels(13 * 7 * 3, seed: 4)
            let rgb = try PNGImage(width: 13, height: 7, colorType: .rgb, pixels: rgbPixels)
            let back = try PNGImage(grayscalePNG: rgb.pngData(filter: filter))
            #expect(back.colorType == .gray && back.width == 13 && back.height == 7)
            #expect(back.pixels == (0..<91).map { luma(rgbPixels[3 * $0], rgbPixels[3 * $0 + 1], rgbPixels[3 * $0 + 2]) })
            #expect(back == rgb.grayscale())
        }
        let primaries = try PNGImage(width: 4, height: 1, colorType: .rgb, pixels: [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255])
        #expect(primaries.grayscale().pixels == [76, 150, 29, 255])
    }

    @Test("gray + alpha, RGBA and palette files with each filter type decode to the expected gray", arguments: UInt8(0)...4)
    func filters(type: UInt8) throws {
        let w = 5, h = 4, n = w * h
        let gray = testPixels(n, seed: 11 + UInt32(type)), rgb = testPixels(3 * n, seed: 21 + UInt32(type))

        // Opaque alpha: the colors come out unchanged (no compositing).
        var ga: [UInt8] = [], rgba: [UInt8] = []
        for i in 0..<n {
            ga += [gray[i], 255]
            rgba += [rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 255]
        }
        let fromGA = try PNGImage(grayscalePNG: pngFile(
            width: w, height: h, colorType: 4, scanlines: filteredScanlines(ga, width: w, height: h, bpp: 2, type: type)))
        #expect(fromGA.pixels == gray)
        let fromRGBA = try PNGImage(grayscalePNG: pngFile(
            width: w, height: h, colorType: 6, scanlines: filteredScanlines(rgba, width: w, height: h, bpp: 4, type: type)))
        #expect(fromRGBA.pixels == (0..<n).map { luma(rgb[3 * $0], rgb[3 * $0 + 1], rgb[3 * $0 + 2]) })

        // Palette: 7 entries, indices cycling through them.
        let palette = testPixels(21, seed: 5)
        let indices = (0..<n).map { UInt8(($0 * 3 + Int(type)) % 7) }
        let fromPalette = try PNGImage(grayscalePNG: pngFile(
            width: w, height: h, colorType: 3, extra: [("PLTE", palette)],
            scanlines: filteredScanlines(indices, width: w, height: h, bpp: 1, type: type)))
        #expect(fromPalette.pixels == indices.map { luma(palette[3 * Int($0)], palette[3 * Int($0) + 1], palette[3 * Int($0) + 2]) })
    }

    @Test("transparency is composited over white under dark strokes and over black under light strokes")
    func alpha() throws {
        // Black strokes (alpha 255, 128) on a transparent canvas: over white.
        // gray+alpha pairs: transparent, black opaque, black half (alpha 128), gray 7 transparent.
        let dark: [UInt8] = [0, 0, 0, 255, 0, 128, 7, 0]
        let a = try PNGImage(grayscalePNG: pngFile(width: 4, height: 1, colorType: 4, scanlines: [0] + dark))
        #expect(a.pixels == [255, 0, 127, 255])  // (255·127 + 127) / 255 = 127
        // White strokes: over black.
        let light: [UInt8] = [255, 255, 255, 128, 7, 0, 9, 0]
        let b = try PNGImage(grayscalePNG: pngFile(width: 4, height: 1, colorType: 4, scanlines: [0] + light))
        #expect(b.pixels == [255, 128, 0, 0])
        // Palette with tRNS: entry 0 transparent, entry 1 black.
        let p = try PNGImage(grayscalePNG: pngFile(
            width: 3, height: 1, colorType: 3, extra: [("PLTE", [200, 200, 200, 0, 0, 0]), ("tRNS", [0])],
            scanlines: [0, 0, 1, 0]))
        #expect(p.pixels == [255, 0, 255])
        // Gray with a tRNS key (16-bit big-endian 0x0064 = 100).
        let g = try PNGImage(grayscalePNG: pngFile(
            width: 3, height: 1, colorType: 0, extra: [("tRNS", [0, 100])], scanlines: [0, 100, 10, 100]))
        #expect(g.pixels == [255, 10, 255])
        // RGB with a key.
        let c = try PNGImage(grayscalePNG: pngFile(
            width: 2, height: 1, colorType: 2, extra: [("tRNS", [0, 1, 0, 2, 0, 3])], scanlines: [0, 1, 2, 3, 0, 0, 0]))
        #expect(c.pixels == [255, 0])
    }

    @Test("unsupported or damaged files: one clear LoadError naming the file")
    func errors() throws {
        let sixteen = expectLoadError {
            _ = try PNGImage(grayscalePNG: pngFile(width: 1, height: 1, colorType: 0, depth: 16, scanlines: [0, 1, 2]), source: "d.png")
        }
        #expect(sixteen?.description.hasPrefix("d.png: bit depth 16 is not supported") == true, "\(String(describing: sixteen))")
        #expect(sixteen?.fix?.contains("8-bit") == true)
        let four = expectLoadError { _ = try PNGImage(grayscalePNG: pngFile(width: 2, height: 1, colorType: 3, depth: 4, scanlines: [0, 1])) }
        #expect(four?.problem.contains("bit depth 4") == true)
        let interlaced = expectLoadError {
            _ = try PNGImage(grayscalePNG: PNGBytes.file(width: 1, height: 1, colorType: 6, interlace: 1, scanlines: [0, 1, 2, 3, 4]))
        }
        #expect(interlaced?.problem.contains("interlaced") == true)
        let index = expectLoadError {
            _ = try PNGImage(grayscalePNG: pngFile(width: 2, height: 1, colorType: 3, extra: [("PLTE", [1, 2, 3])], scanlines: [0, 0, 5]))
        }
        #expect(index?.problem.contains("palette entry 5") == true, "\(String(describing: index))")
        let noPalette = expectLoadError { _ = try PNGImage(grayscalePNG: pngFile(width: 1, height: 1, colorType: 3, scanlines: [0, 0])) }
        #expect(noPalette?.problem.contains("PLTE") == true)
        let invalid = expectLoadError { _ = try PNGImage(grayscalePNG: pngFile(width: 1, height: 1, colorType: 5, scanlines: [0, 0])) }
        #expect(invalid?.problem.contains("color type 5") == true)
        let notPNG = expectLoadError { _ = try PNGImage(grayscalePNG: Data("hello".utf8), source: "h.png") }
        #expect(notPNG?.description.hasPrefix("h.png: not a PNG") == true, "\(String(describing: notPNG))")
        let missing = expectLoadError { _ = try DigitImage(contentsOf: URL(fileURLWithPath: "/nonexistent/x.png")) }
        #expect(missing?.description == "/nonexistent/x.png: no such file; check the path and its permissions")
        // The bit-exact reader still refuses what it cannot return unconverted.
        let rgba = expectLoadError { _ = try PNGImage(pngData: PNGBytes.file(width: 1, height: 1, colorType: 6, scanlines: [0, 1, 2, 3, 4])) }
        #expect(rgba?.problem.contains("RGBA") == true)
    }
}

@Suite struct DigitImageTests {
    @Test("an off-centre blob: larger side scaled to 20, centre of mass rounds to (14, 14)")
    func centred() throws {
        let image = try ellipseImage(width: 60, height: 40, cx: 45, cy: 12, rx: 9, ry: 6)
        let digit = try DigitImage(image: image)
        #expect(digit.pixels.count == 784 && !digit.inverted)
        let (x, y) = centreOfMass(digit.pixels)
        #expect(abs(x - 14) <= 0.5 && abs(y - 14) <= 0.5, "centre \(x), \(y)")
        let size = extent(digit.pixels)
        #expect(size.width == 20 && (13...14).contains(size.height), "\(size)")
        #expect(digit.pixels.max() == 255)
        #expect(digit.pixels.contains { $0 > 0 && $0 < 255 }, "area averaging gives gray edges")
    }

    @Test("a blob pushed to one corner lands centred like the same blob in the middle")
    func translationInvariant() throws {
        let corner = try DigitImage(image: ellipseImage(width: 90, height: 90, cx: 12, cy: 14, rx: 10, ry: 13))
        let middle = try DigitImage(image: ellipseImage(width: 90, height: 90, cx: 45, cy: 47, rx: 10, ry: 13))
        #expect(corner.pixels == middle.pixels)
    }

    @Test("area averaging: exact block means, down and up")
    func scaling() throws {
        // A 100x50 solid rectangle becomes a 20x10 solid block.
        var pixels = [UInt8](repeating: 0, count: 140 * 90)
        for y in 20..<70 { for x in 30..<130 { pixels[y * 140 + x] = 200 } }
        let solid = try DigitImage(image: PNGImage(width: 140, height: 90, pixels: pixels))
        #expect(solid.inkBox == DigitImage.InkBox(x: 30, y: 20, width: 100, height: 50))
        #expect(solid.pixels.filter { $0 == 200 }.count == 200 && solid.pixels.filter { $0 != 0 }.count == 200)
        #expect(extent(solid.pixels) == (20, 10))
        // A one-pixel checkerboard 40x40 halves to uniform 127.5, rounded half up.
        let checker = (0..<1600).map { ($0 % 40 + $0 / 40) % 2 == 0 ? UInt8(255) : 0 }
        let half = try DigitImage(image: PNGImage(width: 40, height: 40, pixels: checker))
        #expect(half.pixels.filter { $0 == 128 }.count == 400 && half.pixels.filter { $0 != 0 }.count == 400)
        // A 2x4 block upscales 5x to 10x20.
        var small = [UInt8](repeating: 0, count: 8 * 8)
        for y in 2..<6 { for x in 3..<5 { small[y * 8 + x] = 255 } }
        let up = try DigitImage(image: PNGImage(width: 8, height: 8, pixels: small))
        #expect(extent(up.pixels) == (10, 20) && up.pixels.filter { $0 == 255 }.count == 200)
        // 3 pixels to 20: edges of output pixels straddle input pixels and get their mean.
        var three = [UInt8](repeating: 0, count: 5 * 5)
        three[5 * 2 + 1] = 255; three[5 * 2 + 2] = 90; three[5 * 2 + 3] = 255
        let stretched = try DigitImage(image: PNGImage(width: 5, height: 5, pixels: three))
        let ink = stretched.pixels.filter { $0 != 0 }
        #expect(ink.count == 20 * 7, "a 3x1 box becomes 20x7 (20/3 rounded)")
        let row = Array(ink.prefix(20))
        // Output pixel 6 covers [18, 21) of 60 units: 2 units of 255 and 1 of 90 → 200.
        #expect(row[6] == 200 && row[0] == 255 && row[10] == 90, "\(row)")
    }

    @Test("polarity: dark-on-light gives the same input as light-on-dark, in gray and RGB")
    func polarity() throws {
        let light = try ellipseImage(width: 70, height: 50, cx: 30, cy: 25, rx: 8, ry: 18)
        let dark = try PNGImage(width: 70, height: 50, pixels: light.pixels.map { 255 - $0 })
        let a = try DigitImage(image: light), b = try DigitImage(image: dark)
        #expect(!a.inverted && b.inverted)
        #expect(a.pixels == b.pixels)
        let rgb = try PNGImage(width: 70, height: 50, colorType: .rgb, pixels: dark.pixels.flatMap { [$0, $0, $0] })
        #expect(try DigitImage(image: rgb).pixels == a.pixels)
        // Through the file format too.
        #expect(try DigitImage(pngData: rgb.pngData()).pixels == a.pixels)
    }

    @Test("no ink is an error: blank white, blank black, ink below the threshold")
    func empty() throws {
        for fill: UInt8 in [255, 0, 240] {
            let e = expectLoadError { _ = try DigitImage(image: PNGImage(width: 30, height: 20, fill: [fill]), source: "blank.png") }
            #expect(e?.description.hasPrefix("blank.png: no ink found") == true, "\(String(describing: e))")
            #expect(e?.fix?.contains("one digit drawn clearly darker or lighter than its background") == true)
        }
        var faint = [UInt8](repeating: 0, count: 100)
        faint[55] = DigitImage.defaultInkThreshold
        expectLoadError { _ = try DigitImage(image: PNGImage(width: 10, height: 10, pixels: faint)) }
        faint[55] += 1
        #expect(try DigitImage(image: PNGImage(width: 10, height: 10, pixels: faint)).inkBox == DigitImage.InkBox(x: 5, y: 5, width: 1, height: 1))
    }

    @Test("the ink box takes in the strokes' faint edge (up to 2 pixels, or a tenth of a big box), not far specks")
    func fringe() throws {
        // A 10x20 block of 255 with a 2-pixel edge of 10 on the left and a speck of 10 four columns right of it.
        var pixels = [UInt8](repeating: 0, count: 40 * 30)
        for y in 5..<25 {
            for x in 10..<20 { pixels[y * 40 + x] = 255 }
            pixels[y * 40 + 8] = 10; pixels[y * 40 + 9] = 10
        }
        pixels[15 * 40 + 24] = 10
        let digit = try DigitImage(image: PNGImage(width: 40, height: 30, pixels: pixels))
        #expect(digit.inkBox == DigitImage.InkBox(x: 8, y: 5, width: 12, height: 20))
        #expect(extent(digit.pixels) == (12, 20))
        // The same picture 5x bigger: its 10-pixel edge is taken in (a tenth of the 100-pixel box), the speck not.
        var big = [UInt8](repeating: 0, count: 200 * 150)
        for y in 0..<150 { for x in 0..<200 { big[y * 200 + x] = pixels[(y / 5) * 40 + x / 5] } }
        let scaled = try DigitImage(image: PNGImage(width: 200, height: 150, pixels: big))
        #expect(scaled.inkBox == DigitImage.InkBox(x: 40, y: 25, width: 60, height: 100))
        #expect(scaled.pixels == digit.pixels)
    }

    @Test("an MNIST image scaled up 3x, inverted and as RGB gives the same input as the image itself")
    func scaledMNIST() throws {
        let test = try MNIST.load(directory: SharedData.mnistDirectory, split: .test)
        for i in 0..<300 {
            let original = Array(test.pixels(of: i))
            let plain = try DigitImage(image: PNGImage(width: 28, height: 28, pixels: original))
            var rgb = [UInt8](repeating: 0, count: 84 * 84 * 3)
            for y in 0..<84 {
                for x in 0..<84 {
                    let v = 255 - original[(y / 3) * 28 + x / 3]
                    for c in 0..<3 { rgb[(y * 84 + x) * 3 + c] = v }
                }
            }
            let big = try DigitImage(pngData: PNGImage(width: 84, height: 84, colorType: .rgb, pixels: rgb).pngData())
            #expect(big.inverted && big.pixels == plain.pixels, "test image \(i)")
        }
    }

    @Test("odd sizes: 1x1, 7x33, 500x300")
    func oddSizes() throws {
        // 1x1: no border to judge polarity by, so light ink on dark; it fills the 20x20 box.
        let dot = try DigitImage(image: PNGImage(width: 1, height: 1, fill: [255]))
        #expect(dot.pixels.filter { $0 == 255 }.count == 400 && extent(dot.pixels) == (20, 20))
        let (dx, dy) = centreOfMass(dot.pixels)
        #expect(abs(dx - 14) <= 0.5 && abs(dy - 14) <= 0.5)
        expectLoadError { _ = try DigitImage(image: PNGImage(width: 1, height: 1, fill: [0])) }

        // 7x33, dark stroke on white: a thin tall digit.
        var tall = [UInt8](repeating: 255, count: 7 * 33)
        for y in 4..<29 { tall[y * 7 + 3] = 0; tall[y * 7 + 2] = 128 }
        let one = try DigitImage(image: PNGImage(width: 7, height: 33, pixels: tall))
        #expect(one.inverted && one.inkBox == DigitImage.InkBox(x: 2, y: 4, width: 2, height: 25))
        #expect(extent(one.pixels).height == 20 && (1...2).contains(extent(one.pixels).width))

        // 500x300 RGB photo-sized canvas.
        let big = try ellipseImage(width: 500, height: 300, cx: 400, cy: 80, rx: 40, ry: 70, ink: 0, background: 255)
        let rgb = try PNGImage(width: 500, height: 300, colorType: .rgb, pixels: big.pixels.flatMap { [$0, $0, $0] })
        let digit = try DigitImage(image: rgb)
        #expect(digit.inverted && extent(digit.pixels).height == 20)
        let (bx, by) = centreOfMass(digit.pixels)
        #expect(abs(bx - 14) <= 0.5 && abs(by - 14) <= 0.5)
    }
}

@Suite struct DigitImageOnMNISTTests {
    @Test("the 10,000 MNIST test images go through (nearly) unchanged and keep every prediction of the book's net")
    func mnistUnchanged() throws {
        let test = try MNIST.load(directory: SharedData.mnistDirectory, split: .test)
        var unchanged = 0, prepared: [UInt8] = []
        prepared.reserveCapacity(test.images.count)
        for i in 0..<test.count {
            let original = Array(test.pixels(of: i))
            let digit = try DigitImage(image: PNGImage(width: 28, height: 28, pixels: original), source: "test image \(i)")
            #expect(!digit.inverted, "test image \(i) taken as dark-on-light")
            if digit.pixels == original { unchanged += 1 }
            prepared += digit.pixels
        }
        // Measured: 9,988 byte-identical (7,864 before the box took in the faint fringe: the threshold alone cut
        // MNIST's anti-aliased edges); 3 of the 12 others have a 19-pixel ink box, which is scaled to 20.
        #expect(unchanged >= 9_980, "\(unchanged) of 10,000 unchanged")
        let network = try Network(weights: WeightsFile.load(SharedData.bookWeights), backend: CPUBackend())
        let reference = try network.classify(bytes: test.images, count: test.count, batchSize: 100)
        let predicted = try network.classify(bytes: prepared, count: test.count, batchSize: 100)
        let differing = zip(reference, predicted).enumerated().filter { $1.0 != $1.1 }.map(\.offset)
        #expect(differing.isEmpty, "predictions differ for test images \(differing.prefix(20))")
    }
}
