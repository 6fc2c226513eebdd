// TerminalImage: draws a small grayscale image (MNIST-style ink bytes) as text. With color, each text cell is an
// upper half block "▀" whose foreground is one pixel row and background the row below (24-bit ANSI colors, two
// pixel rows per line); without color, an ASCII density ramp, two characters per pixel so the aspect stays
// about square. The caller decides which (NO_COLOR, not a terminal, --ascii); `wantsColor` is the usual rule.

/// Renders grayscale images for a terminal.
public enum TerminalImage {
    /// The ASCII ramp from no ink to full ink.
    public static let ramp: [Character] = Array(" .:-=+*#%@")

    /// True when output should be colored: `isTerminal`, `NO_COLOR` unset or empty (no-color.org), and `TERM` not
    /// "dumb".
    public static func wantsColor(isTerminal: Bool, environment: [String: String]) -> Bool {
        isTerminal && (environment["NO_COLOR"] ?? "").isEmpty && environment["TERM"] != "dumb"
    }

    /// The image as lines of text, each ending in "\n".
    ///
    /// - Parameters:
    ///   - pixels: `width * height` ink bytes, row-major (0 = background, 255 = full ink); missing bytes count as 0.
    ///   - width: pixels per row.
    ///   - height: rows of pixels.
    ///   - color: true for half blocks with 24-bit colors (`⌈height/2⌉` lines; an odd last row is paired with the
    ///     background), false for the ASCII ramp (`height` lines of `width * charsPerPixel` characters).
    ///   - ink: the colors of color mode (the same choice as ``ImageGrid``); ASCII always shows ink density.
    ///   - charsPerPixel: ASCII characters per pixel (text cells are about twice as tall as wide).
    public static func render<Pixels: Collection<UInt8>>(
        _ pixels: Pixels, width: Int, height: Int, color: Bool, ink: ImageGrid.Ink = .darkOnLight, charsPerPixel: Int = 2
    ) -> String {
        let px = Array(pixels)
        func at(_ x: Int, _ y: Int) -> UInt8 {
            let i = y * width + x
            return i < px.count ? px[i] : 0
        }
        guard width > 0, height > 0 else { return "" }
        var out = ""
        if color {
            let esc = "\u{1B}["
            for y in stride(from: 0, to: height, by: 2) {
                var fg: UInt8?, bg: UInt8?
                for x in 0..<width {
                    let top = ink.level(at(x, y))
                    let bottom = y + 1 < height ? ink.level(at(x, y + 1)) : ink.background.r
                    if fg != top { out += "\(esc)38;2;\(top);\(top);\(top)m"; fg = top }
                    if bg != bottom { out += "\(esc)48;2;\(bottom);\(bottom);\(bottom)m"; bg = bottom }
                    out += "▀"
                }
                out += "\(esc)0m\n"
            }
        } else {
            let n = max(1, charsPerPixel), last = ramp.count - 1
            for y in 0..<height {
                for x in 0..<width {
                    let c = ramp[(Int(at(x, y)) * last + 127) / 255]
                    for _ in 0..<n { out.append(c) }
                }
                out += "\n"
            }
        }
        return out
    }
}
