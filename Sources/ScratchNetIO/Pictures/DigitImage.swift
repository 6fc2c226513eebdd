// DigitImage: turns a picture of one handwritten digit (any 8-bit PNG: gray, RGB or palette, with or without
// alpha, dark-on-light or light-on-dark, any size) into a 28x28 MNIST-style input the way MNIST itself was made:
// gray, light ink on a dark background, the ink's bounding box scaled (area average) so its larger side is 20
// pixels, then placed so its centre of mass is at the centre of the 28x28 frame. Used by `scratchnet predict`.
// All arithmetic is integer (the centre-of-mass shift too: an exact rounded division), so the result is the same
// on every machine.

import Foundation

extension PNGImage {
    /// Decodes any 8-bit, non-interlaced PNG and converts it to gray (``PNGImage/ColorType/gray``).
    ///
    /// - Gray is kept; RGB becomes its luma, (299 R + 587 G + 114 B) / 1000 rounded (ITU-R BT.601, as
    ///   PIL's `convert("L")`); a palette image is looked up first.
    /// - Transparency (an alpha channel, or a tRNS chunk) is composited over a background that contrasts with
    ///   the opaque pixels: over white when their alpha-weighted mean gray is dark (black strokes on a
    ///   transparent canvas, the usual drawing export), over black when it is light (white strokes). Fully
    ///   opaque pixels are unchanged.
    ///
    /// - Parameters:
    ///   - data: the bytes of the PNG file.
    ///   - source: the file name for error messages.
    /// - Throws: ``LoadError`` for anything ``init(pngData:source:)`` refuses except the color type, for 16-bit
    ///   or sub-byte bit depths, interlaced files, and palette indices past the end of the palette.
    public init(grayscalePNG data: Data, source: String = "PNG") throws(LoadError) {
        let raster = try PNG.decode(data, source: source, accepting: [0, 2, 3, 4, 6])
        try self.init(gray: raster, source: source)
    }

    /// Reads a PNG file and converts it to gray (see ``init(grayscalePNG:source:)``).
    public init(grayscaleContentsOf url: URL) throws(LoadError) {
        try self.init(grayscalePNG: PNG.read(url), source: url.path)
    }

    /// This image in gray: itself when it is gray, else the luma of each RGB pixel (see
    /// ``init(grayscalePNG:source:)``).
    public func grayscale() -> PNGImage {
        guard colorType == .rgb else { return self }
        var gray = [UInt8](repeating: 0, count: width * height)
        for i in gray.indices {
            gray[i] = PNG.luma(pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2])
        }
        // The size was valid for three channels, so it is for one.
        return (try? PNGImage(width: width, height: height, colorType: .gray, pixels: gray)) ?? self
    }

    /// Converts a decoded raster of any color type to gray, compositing transparency.
    init(gray raster: PNGRaster, source: String) throws(LoadError) {
        let n = raster.width * raster.height, s = raster.samples, trns = raster.transparency
        var gray = [UInt8](repeating: 0, count: n)
        var alpha = [UInt8](repeating: 255, count: n)
        switch raster.colorType {
        case 0:
            gray = s
            if trns.count == 2 {
                let key = Int(trns[0]) << 8 | Int(trns[1])
                for i in 0..<n where Int(s[i]) == key { alpha[i] = 0 }
            }
        case 2:
            let key = trns.count == 6 ? [trns[1], trns[3], trns[5]] : nil
            let keyValid = trns.count == 6 && trns[0] == 0 && trns[2] == 0 && trns[4] == 0
            for i in 0..<n {
                let r = s[3 * i], g = s[3 * i + 1], b = s[3 * i + 2]
                gray[i] = PNG.luma(r, g, b)
                if keyValid, let key, r == key[0], g == key[1], b == key[2] { alpha[i] = 0 }
            }
        case 3:
            let entries = raster.palette.count / 3
            var lookup = [UInt8](repeating: 0, count: entries)
            for e in 0..<entries {
                lookup[e] = PNG.luma(raster.palette[3 * e], raster.palette[3 * e + 1], raster.palette[3 * e + 2])
            }
            for i in 0..<n {
                let index = Int(s[i])
                guard index < entries else {
                    throw LoadError(source, "pixel \(i % raster.width),\(i / raster.width) uses palette entry \(index), "
                                    + "but the palette has \(entries)", fix: "the file is damaged; save it again")
                }
                gray[i] = lookup[index]
                if index < trns.count { alpha[i] = trns[index] }
            }
        case 4:
            for i in 0..<n {
                gray[i] = s[2 * i]
                alpha[i] = s[2 * i + 1]
            }
        default:  // 6, RGBA (decode accepted no other type)
            for i in 0..<n {
                gray[i] = PNG.luma(s[4 * i], s[4 * i + 1], s[4 * i + 2])
                alpha[i] = s[4 * i + 3]
            }
        }
        if alpha.contains(where: { $0 != 255 }) {
            // The background contrasts with what is drawn: the alpha-weighted mean gray of the pixels.
            var weighted = 0, total = 0
            for i in 0..<n {
                weighted += Int(gray[i]) * Int(alpha[i])
                total += Int(alpha[i])
            }
            let background = total == 0 || 2 * weighted < 255 * total ? 255 : 0
            for i in 0..<n {
                let a = Int(alpha[i])
                gray[i] = UInt8((Int(gray[i]) * a + background * (255 - a) + 127) / 255)
            }
        }
        try self.init(width: raster.width, height: raster.height, colorType: .gray, pixels: gray)
    }
}

extension PNG {
    /// ITU-R BT.601 luma, (299 R + 587 G + 114 B) / 1000 rounded.
    static func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        let red: Int = 299 * Int(r), green: Int = 587 * Int(g), blue: Int = 114 * Int(b)
        return UInt8((red + green + blue + 500) / 1000)
    }
}

/// A picture of one digit as a 28x28 MNIST-style input: light ink (255) on a dark background (0), the ink
/// scaled into a 20x20 box and centred by mass in the frame.
///
/// The steps, as MNIST was made from NIST's scans:
/// 1. gray (see ``PNGImage/init(grayscalePNG:source:)``);
/// 2. polarity: when the image's border (its outermost rows and columns) is light on average, the image is
///    inverted, so the ink is light. An image with no interior (at most two pixels wide or tall) has no
///    background to look at and is taken as light-on-dark, MNIST's convention;
/// 3. the bounding box of the ink: pixels brighter than ``inkThreshold`` (so the faint noise of a scan is not
///    ink), grown by up to ``fringe`` rows and columns (a tenth of the box on a big picture) on each side that
///    still hold any light pixel: the strokes' anti-aliased edge, which MNIST's boxes include. No pixel above the
///    threshold is an error;
/// 4. the box is scaled so its larger side is 20 pixels and the other keeps the aspect ratio (rounded, at
///    least 1), by area averaging: each output pixel is the exact mean of the input area it covers, so edges
///    get gray levels as in MNIST (up or down);
/// 5. the scaled ink is placed in a 28x28 black frame so that its intensity-weighted centre of mass, in pixel
///    indices, rounds to (14, 14); ink pushed past the frame's edge is dropped.
///
/// A 28x28 MNIST image goes through unchanged in almost every case (9,988 of the 10,000 test images, and all
/// 10,000 keep the book network's prediction): its ink's larger side is already 20 pixels and its centre of mass
/// already within half a pixel of (14, 14).
public struct DigitImage: Sendable, Equatable {
    /// Width and height of the result: 28.
    public static let side = 28
    /// The larger side of the scaled ink: 20.
    public static let boxSide = 20
    /// The default ``inkThreshold``: pixels at most this bright (after polarity) are background.
    public static let defaultInkThreshold: UInt8 = 32
    /// How many rows or columns of faint ink (at most ``inkThreshold`` but above 0) the ink box grows by on each
    /// side at least: the anti-aliased edge of the strokes. On a picture whose ink box is more than 20 pixels it
    /// may grow by a tenth of the box's larger side (the same edge, scaled up).
    public static let fringe = 2

    /// Where the ink was found in the source image, in its pixels.
    public struct InkBox: Sendable, Equatable {
        /// The leftmost column with ink.
        public let x: Int
        /// The top row with ink.
        public let y: Int
        /// Columns from the leftmost to the rightmost with ink.
        public let width: Int
        /// Rows from the top to the bottom row with ink.
        public let height: Int

        /// A box from its top-left pixel and its size in pixels.
        public init(x: Int, y: Int, width: Int, height: Int) {
            self.x = x
            self.y = y
            self.width = width
            self.height = height
        }
    }

    /// `side * side` bytes, row-major, 0 = background, 255 = full ink: the network's input as MNIST stores it.
    public let pixels: [UInt8]
    /// True when the source was dark-on-light and was inverted.
    public let inverted: Bool
    /// The ink's bounding box in the source image.
    public let inkBox: InkBox
    /// The brightness (after polarity) above which a pixel counted as ink.
    public let inkThreshold: UInt8

    /// Prepares a decoded image (RGB is converted to gray first).
    ///
    /// - Parameters:
    ///   - image: the picture; any size.
    ///   - source: the file name for error messages.
    ///   - inkThreshold: pixels at most this bright, after polarity, are background when finding the ink.
    /// - Throws: ``LoadError`` when the image has no ink (nothing brighter than `inkThreshold` after
    ///   polarity, or ink too faint to survive scaling).
    public init(image: PNGImage, source: String = "image", inkThreshold: UInt8 = DigitImage.defaultInkThreshold)
        throws(LoadError)
    {
        let gray = image.grayscale()
        let w = gray.width, h = gray.height
        let inverted = Self.isDarkOnLight(gray.pixels, width: w, height: h)
        let ink = inverted ? gray.pixels.map { 255 - $0 } : gray.pixels

        // 3. The ink's bounding box.
        var x0 = w, y0 = h, x1 = -1, y1 = -1
        for y in 0..<h {
            for x in 0..<w where ink[y * w + x] > inkThreshold {
                x0 = min(x0, x); x1 = max(x1, x)
                y0 = min(y0, y); y1 = max(y1, y)
            }
        }
        // The faint anti-aliased fringe of the strokes (any brightness above 0) belongs to the ink too, as in
        // MNIST's boxes: up to `fringe` rows and columns on each side, or a tenth of the box on a big picture.
        if x1 >= 0 {
            func hasInk(_ xs: ClosedRange<Int>, _ ys: ClosedRange<Int>) -> Bool {
                ys.contains { y in xs.contains { x in ink[y * w + x] > 0 } }
            }
            let limit = max(Self.fringe, (max(x1 - x0, y1 - y0) + 10) / 10)
            for _ in 0..<limit {
                if x0 > 0, hasInk((x0 - 1)...(x0 - 1), y0...y1) { x0 -= 1 }
                if x1 < w - 1, hasInk((x1 + 1)...(x1 + 1), y0...y1) { x1 += 1 }
                if y0 > 0, hasInk(x0...x1, (y0 - 1)...(y0 - 1)) { y0 -= 1 }
                if y1 < h - 1, hasInk(x0...x1, (y1 + 1)...(y1 + 1)) { y1 += 1 }
            }
        }
        guard x1 >= 0 else {
            throw LoadError(
                source, "no ink found: no pixel stands out from the \(inverted ? "light" : "dark") background by more than \(inkThreshold) of 255",
                fix: "give a picture of one digit drawn clearly darker or lighter than its background")
        }
        let box = InkBox(x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1)

        // 4. Scale the box so its larger side is boxSide.
        let cw = box.width, ch = box.height, b = Self.boxSide
        let ow = cw >= ch ? b : max(1, (cw * b + ch / 2) / ch)
        let oh = ch >= cw ? b : max(1, (ch * b + cw / 2) / cw)
        let scaled = Self.areaAverage(ink, stride: w, box: box, width: ow, height: oh)

        // 5. Centre by mass.
        var mass = 0, mx = 0, my = 0
        for y in 0..<oh {
            for x in 0..<ow {
                let v = Int(scaled[y * ow + x])
                mass += v; mx += x * v; my += y * v
            }
        }
        guard mass > 0 else {
            throw LoadError(source, "no ink left after scaling the \(cw)x\(ch) ink box to \(ow)x\(oh): the ink is too sparse or faint",
                            fix: "give a picture of one digit drawn with a thicker or stronger stroke")
        }
        // The shift that brings the centre of mass (mx / mass, my / mass) nearest to (14, 14), rounded half up,
        // as an exact integer division.
        let centre = Self.side / 2
        let dx = Self.roundedQuotient(centre * mass - mx, mass)
        let dy = Self.roundedQuotient(centre * mass - my, mass)
        var frame = [UInt8](repeating: 0, count: Self.side * Self.side)
        for y in 0..<oh where (0..<Self.side).contains(y + dy) {
            for x in 0..<ow where (0..<Self.side).contains(x + dx) {
                frame[(y + dy) * Self.side + x + dx] = scaled[y * ow + x]
            }
        }
        self.pixels = frame
        self.inverted = inverted
        self.inkBox = box
        self.inkThreshold = inkThreshold
    }

    /// Decodes a PNG (see ``PNGImage/init(grayscalePNG:source:)``) and prepares it.
    public init(pngData data: Data, source: String = "PNG", inkThreshold: UInt8 = DigitImage.defaultInkThreshold)
        throws(LoadError)
    {
        try self.init(image: PNGImage(grayscalePNG: data, source: source), source: source, inkThreshold: inkThreshold)
    }

    /// Reads a PNG file and prepares it; errors name the file.
    public init(contentsOf url: URL, inkThreshold: UInt8 = DigitImage.defaultInkThreshold) throws(LoadError) {
        try self.init(pngData: PNG.read(url), source: url.path, inkThreshold: inkThreshold)
    }

    /// `n / d` rounded to the nearest integer, halves up (towards +infinity), for `d > 0` and `n` of either sign.
    static func roundedQuotient(_ n: Int, _ d: Int) -> Int {
        let twice = 2 * n + d  // floor((2n + d) / 2d) = floor(n/d + 1/2)
        let q = twice / (2 * d)
        return twice % (2 * d) < 0 ? q - 1 : q
    }

    /// True when the mean of the border pixels is light (above 127.5); false for an image without interior.
    static func isDarkOnLight(_ gray: [UInt8], width w: Int, height h: Int) -> Bool {
        guard w > 2, h > 2 else { return false }
        var sum = 0, count = 0
        for x in 0..<w {
            sum += Int(gray[x]) + Int(gray[(h - 1) * w + x])
            count += 2
        }
        for y in 1..<(h - 1) {
            sum += Int(gray[y * w]) + Int(gray[y * w + w - 1])
            count += 2
        }
        return 2 * sum > 255 * count
    }

    /// For each of `outputs` pixels along an axis of `inputs` pixels: the input pixels it covers and by how much.
    /// In units of 1/(inputs·outputs) of the axis, input pixel i spans [i·outputs, (i+1)·outputs) and output pixel
    /// o spans [o·inputs, (o+1)·inputs), so every overlap is a whole number and each output's weights sum to
    /// `inputs`.
    static func coverage(inputs: Int, outputs: Int) -> [[(index: Int, weight: Int)]] {
        (0..<outputs).map { o in
            let start = o * inputs, end = (o + 1) * inputs
            return (start / outputs...((end - 1) / outputs)).map { i in
                (i, min(end, (i + 1) * outputs) - max(start, i * outputs))
            }
        }
    }

    /// The `box` of `ink` (rows of `stride` bytes) resampled to `width`x`height` by exact area averaging (separable,
    /// integer, rounded half up once at the end).
    static func areaAverage(_ ink: [UInt8], stride: Int, box: InkBox, width ow: Int, height oh: Int) -> [UInt8] {
        let cx = coverage(inputs: box.width, outputs: ow), cy = coverage(inputs: box.height, outputs: oh)
        // Horizontal pass over every row of the box: sums of weight × value.
        var rows = [Int](repeating: 0, count: box.height * ow)
        for y in 0..<box.height {
            let base = (box.y + y) * stride + box.x
            for (o, parts) in cx.enumerated() {
                var sum = 0
                for (i, weight) in parts { sum += weight * Int(ink[base + i]) }
                rows[y * ow + o] = sum
            }
        }
        let area = box.width * box.height
        var out = [UInt8](repeating: 0, count: ow * oh)
        for (oy, parts) in cy.enumerated() {
            for ox in 0..<ow {
                var sum = 0
                for (y, weight) in parts { sum += weight * rows[y * ow + ox] }
                out[oy * ow + ox] = UInt8(min(255, (sum + area / 2) / area))
            }
        }
        return out
    }
}
