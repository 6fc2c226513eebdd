// ConfusionPicture: a confusion matrix as a PNG heat map, for `scratchnet infer --confusion FILE.png`. Rows are
// true labels and columns predicted classes. Each cell shows its count. The shade is the fraction of the row: the
// diagonal is green, mistakes are red. The row's accuracy is at the right.

import Foundation
import ScratchNet

/// Draws a `ConfusionMatrix` (module ScratchNet) as an RGB picture.
public enum ConfusionPicture {
    /// The picture of `matrix`, with `names` (one per class) beside the rows if given, else the class numbers.
    public static func render(_ matrix: ConfusionMatrix, names: [String]? = nil) throws(LoadError) -> PNGImage {
        let n = matrix.classes
        let digits = max(String(matrix.counts.max() ?? 0).count, 2)
        let cell = max(28, BitmapFont.width(of: String(repeating: "0", count: digits)) + 8)
        let labels = (0..<n).map { c in names.flatMap { c < $0.count ? "\(c) \($0[c])" : nil } ?? String(c) }
        let left = BitmapFont.width(of: labels.max { $0.count < $1.count } ?? "0") + 12
        let top = 2 * BitmapFont.height() + 16
        let right = BitmapFont.width(of: "100.0%") + 12
        let width = left + n * cell + right, height = top + n * cell + 8
        guard width <= 1 << 14, height <= 1 << 14 else {
            throw LoadError("confusion picture", "\(n) classes make a picture of \(width)x\(height) pixels", fix: "use the text matrix")
        }
        var image = try PNGImage(width: width, height: height, colorType: .rgb, fill: [255, 255, 255])
        image.draw(text: "predicted", x: left + (n * cell - BitmapFont.width(of: "predicted")) / 2, y: 4, color: .black)
        image.draw(text: "true", x: 4, y: 4, color: .black)
        for c in 0..<n {
            let label = String(c)
            image.draw(text: label, x: left + c * cell + (cell - BitmapFont.width(of: label)) / 2,
                       y: BitmapFont.height() + 10, color: .black)
            image.draw(text: labels[c], x: 4, y: top + c * cell + (cell - BitmapFont.height()) / 2, color: .black)
        }
        for r in 0..<n {
            let support = matrix.support(r)
            for c in 0..<n {
                let count = matrix[r, c]
                let fraction = support == 0 ? 0 : Double(count) / Double(support)
                // White at 0, full green (diagonal) or red (mistakes) at the whole row; small counts stay visible.
                let t = count == 0 ? 0 : 0.12 + 0.88 * fraction
                let full = r == c ? RGB(0x1B, 0x7F, 0x3B) : RGB(0xC0, 0x1F, 0x1F)
                func mix(_ a: UInt8) -> UInt8 { UInt8((255 - Double(255 - Int(a)) * t).rounded()) }
                let shade = RGB(mix(full.r), mix(full.g), mix(full.b))
                let x = left + c * cell, y = top + r * cell
                image.fill(x: x, y: y, width: cell - 1, height: cell - 1, shade)
                let text = String(count)
                image.draw(text: text, x: x + (cell - 1 - BitmapFont.width(of: text)) / 2,
                           y: y + (cell - 1 - BitmapFont.height()) / 2, color: t > 0.55 ? .white : .black)
            }
            let acc = matrix.accuracy(ofClass: r).map { String(format: "%.1f%%", $0 * 100) } ?? "-"
            image.draw(text: acc, x: left + n * cell + 8, y: top + r * cell + (cell - BitmapFont.height()) / 2, color: .black)
        }
        return image
    }
}
