// ImageGrid: lays out grayscale images (MNIST-style "ink" bytes: 0 = background, 255 = full ink) in rows and
// columns, each scaled by an integer factor, framed, with a colored caption under it drawn in the built-in 5x7
// font, and renders the sheet as an RGB PNGImage. Used by `scratchnet show --png` and `infer --errors`.

/// A one-line caption made of colored runs of text, e.g. "7" in red, "→" in gray, "2" in green.
public struct Caption: Sendable, Equatable, ExpressibleByStringLiteral {
    /// A piece of text in one color.
    public struct Run: Sendable, Equatable {
        /// The text.
        public var text: String
        /// Its color.
        public var color: RGB

        /// Creates a run.
        public init(_ text: String, color: RGB) {
            self.text = text
            self.color = color
        }
    }

    /// The runs, left to right.
    public var runs: [Run]

    /// A caption from colored runs.
    public init(_ runs: [Run]) { self.runs = runs }

    /// A caption in one color.
    public init(_ text: String, color: RGB = .black) { runs = text.isEmpty ? [] : [Run(text, color: color)] }

    public init(stringLiteral value: String) { self.init(value) }

    /// The plain text of all runs.
    public var text: String { runs.map(\.text).joined() }

    /// The width in pixels at font scale `scale`.
    public func width(scale: Int) -> Int { BitmapFont.width(of: text, scale: scale) }

    /// "predicted→true" with the prediction in red and the truth in green.
    public static func error(predicted: String, true truth: String) -> Caption {
        Caption([Run(predicted, color: .red), Run("→", color: .gray), Run(truth, color: .green)])
    }
}

/// A contact sheet of equally sized grayscale images with captions.
public struct ImageGrid: Sendable {
    /// One image of the grid.
    public struct Cell: Sendable {
        /// `width * height` ink bytes, row-major: 0 = background, 255 = full ink (as in MNIST).
        public var pixels: [UInt8]
        /// Width in pixels.
        public var width: Int
        /// Height in pixels.
        public var height: Int
        /// The text under the image.
        public var caption: Caption

        /// Creates a cell (the pixel count is checked when the grid is rendered).
        public init<Pixels: Collection<UInt8>>(pixels: Pixels, width: Int, height: Int, caption: Caption) {
            self.pixels = Array(pixels)
            self.width = width
            self.height = height
            self.caption = caption
        }
    }

    /// How ink maps to color.
    public enum Ink: Sendable {
        /// Dark ink on white paper (ink 255 is black), like a printed digit.
        case darkOnLight
        /// Light ink on black (ink 255 is white), like the raw MNIST bytes viewed as gray levels.
        case lightOnDark

        /// The gray level of an ink byte.
        @inline(__always)
        public func level(_ ink: UInt8) -> UInt8 { self == .darkOnLight ? 255 - ink : ink }

        /// The sheet background.
        public var background: RGB { self == .darkOnLight ? .white : .black }
        /// The 1-pixel frame around each image.
        public var frame: RGB { self == .darkOnLight ? RGB(gray: 0xC8) : RGB(gray: 0x50) }
    }

    /// Where things go on the sheet, in pixels. Cells are laid out row by row from the top-left.
    public struct Layout: Sendable, Equatable {
        /// Images per row.
        public var columns: Int
        /// Rows of images.
        public var rows: Int
        /// Width of one cell: the framed image or the widest caption, whichever is wider.
        public var cellWidth: Int
        /// Height of one cell: framed image, gap, caption line.
        public var cellHeight: Int
        /// A scaled image's width (without the frame).
        public var imageWidth: Int
        /// A scaled image's height (without the frame).
        public var imageHeight: Int
        /// Blank pixels around the sheet and between cells.
        public var padding: Int
        /// Blank pixels between a framed image and its caption.
        public var captionGap: Int
        /// The font scale of captions.
        public var textScale: Int

        /// The sheet width (`2·padding`, at least 1, when there are no cells).
        public var width: Int { columns == 0 ? max(1, 2 * padding) : padding + columns * (cellWidth + padding) }
        /// The sheet height (`2·padding`, at least 1, when there are no cells).
        public var height: Int { rows == 0 ? max(1, 2 * padding) : padding + rows * (cellHeight + padding) }

        /// The top-left corner of cell `index`.
        public func cellOrigin(_ index: Int) -> (x: Int, y: Int) {
            (padding + (index % max(columns, 1)) * (cellWidth + padding), padding + (index / max(columns, 1)) * (cellHeight + padding))
        }

        /// The top-left pixel of cell `index`'s image (inside its 1-pixel frame).
        public func imageOrigin(_ index: Int) -> (x: Int, y: Int) {
            let c = cellOrigin(index)
            return (c.x + (cellWidth - imageWidth - 2) / 2 + 1, c.y + 1)
        }

        /// The top-left corner of cell `index`'s caption when it is `captionWidth` pixels wide (centered).
        public func captionOrigin(_ index: Int, captionWidth: Int) -> (x: Int, y: Int) {
            let c = cellOrigin(index)
            return (c.x + (cellWidth - captionWidth) / 2, c.y + imageHeight + 2 + captionGap)
        }
    }

    /// Each image pixel becomes a `scale`×`scale` square.
    public var scale: Int
    /// Images per row; nil = the smallest number that makes the sheet about square (⌈√n⌉).
    public var columns: Int?
    /// Blank pixels around the sheet and between cells.
    public var padding: Int
    /// Caption font scale (1 = 5×7 pixels per character); nil = automatic: the largest of 1...min(scale, 3) at
    /// which every caption fits under its image (1 if none does).
    public var textScale: Int?
    /// Ink colors.
    public var ink: Ink

    /// A grid style; every size is clamped to at least its minimum (scale, textScale ≥ 1; padding ≥ 0).
    public init(scale: Int = 2, columns: Int? = nil, padding: Int = 6, textScale: Int? = nil, ink: Ink = .darkOnLight) {
        self.scale = max(1, scale)
        self.columns = columns.map { max(1, $0) }
        self.padding = max(0, padding)
        self.textScale = textScale.map { max(1, $0) }
        self.ink = ink
    }

    /// The layout for `count` images of `width`×`height` pixels with these captions.
    public func layout(count: Int, width: Int, height: Int, captions: [Caption]) -> Layout {
        let columns = count == 0 ? 0 : min(count, self.columns ?? Self.squareColumns(count))
        let rows = columns == 0 ? 0 : (count + columns - 1) / columns
        let imageWidth = width * scale, imageHeight = height * scale
        let widest = captions.max { $0.text.count < $1.text.count } ?? Caption("")
        var text = textScale ?? 1
        if textScale == nil {
            while text < min(scale, 3), widest.width(scale: text + 1) <= imageWidth + 2 { text += 1 }
        }
        let gap = 2 * text
        return Layout(
            columns: columns, rows: rows, cellWidth: max(imageWidth + 2, widest.width(scale: text)),
            cellHeight: imageHeight + 2 + gap + BitmapFont.height(scale: text), imageWidth: imageWidth,
            imageHeight: imageHeight, padding: padding, captionGap: gap, textScale: text)
    }

    /// The layout `render(cells)` uses.
    public func layout(for cells: [Cell]) -> Layout {
        layout(count: cells.count, width: cells.first?.width ?? 0, height: cells.first?.height ?? 0, captions: cells.map(\.caption))
    }

    /// ⌈√n⌉, exactly (integer arithmetic).
    static func squareColumns(_ n: Int) -> Int {
        var c = 1
        while c * c < n { c += 1 }
        return c
    }

    /// Renders the sheet: background, then per cell a frame, the scaled image and its centered caption.
    /// No cells gives a blank `2·padding`-pixel square (at least 1×1).
    /// - Throws: ``LoadError`` when the cells differ in size, a cell's pixel count is not `width * height`, or
    ///   the sheet would exceed ``PNGImage/maxPixelBytes``.
    public func render(_ cells: [Cell]) throws(LoadError) -> PNGImage {
        if let first = cells.first {
            for (i, cell) in cells.enumerated() {
                guard cell.width == first.width, cell.height == first.height else {
                    throw LoadError("image grid", "image \(i) is \(cell.width)x\(cell.height) but image 0 is \(first.width)x\(first.height)",
                                    fix: "all images of one grid must have the same size")
                }
                guard cell.width > 0, cell.height > 0, cell.pixels.count == cell.width * cell.height else {
                    throw LoadError("image grid", "image \(i) has \(cell.pixels.count) pixel bytes, not \(cell.width)x\(cell.height)")
                }
            }
        }
        let layout = layout(for: cells)
        var sheet = try PNGImage(width: max(1, layout.width), height: max(1, layout.height), colorType: .rgb,
                                 fill: [ink.background.r, ink.background.g, ink.background.b])
        for (i, cell) in cells.enumerated() {
            let o = layout.imageOrigin(i)
            sheet.fill(x: o.x - 1, y: o.y - 1, width: layout.imageWidth + 2, height: layout.imageHeight + 2, ink.frame)
            // Scaled pixels, written row by row (the image lies inside the sheet by construction of the layout).
            let rowBytes = sheet.width * 3
            sheet.pixels.withUnsafeMutableBufferPointer { out in
                for y in 0..<(cell.height * scale) {
                    var at = (o.y + y) * rowBytes + o.x * 3
                    let src = (y / scale) * cell.width
                    for x in 0..<(cell.width * scale) {
                        let level = ink.level(cell.pixels[src + x / scale])
                        out[at] = level
                        out[at + 1] = level
                        out[at + 2] = level
                        at += 3
                    }
                }
            }
            let captionWidth = cell.caption.width(scale: layout.textScale)
            let c = layout.captionOrigin(i, captionWidth: captionWidth)
            var x = c.x
            for run in cell.caption.runs {
                x = sheet.draw(text: run.text, x: x, y: c.y, color: run.color, scale: layout.textScale)
            }
        }
        return sheet
    }
}

extension MNISTSet {
    /// The `rows * cols` pixel bytes of image `index`, indexed from 0 (empty when `index` is out of range).
    public func pixels(of index: Int) -> [UInt8] {
        guard index >= 0, index < count else { return [] }
        let n = rows * cols
        return Array(images[(index * n)..<((index + 1) * n)])
    }
}
