// LinePlot: an SVG line chart of named series over a shared x (epochs), in one or more stacked panels (loss and
// accuracy have different scales), with "nice" ticks (1, 2, 5 × 10^k), grid lines, axis labels, a title and a
// legend placed in the emptiest corner. Text is XML-escaped and every number is printed with a fixed format, so
// the same data always gives the same bytes. CSVTable writes the same numbers as CSV (RFC 4180 quoting), and
// LearningCurves puts both together for `scratchnet train`.

import Foundation

/// A chart of series sharing one x axis, drawn as stacked panels, rendered as SVG.
public struct LinePlot: Sendable {
    /// One line: a name for the legend and a y value per x (NaN or infinite values leave a gap).
    public struct Series: Sendable {
        /// The legend text.
        public var name: String
        /// One value per x; extra values are ignored, missing ones are gaps.
        public var values: [Double]
        /// A CSS color ("#1f77b4"); nil = the next color of the palette.
        public var color: String?

        /// Creates a series.
        public init(_ name: String, _ values: [Double], color: String? = nil) {
            self.name = name
            self.values = values
            self.color = color
        }
    }

    /// One plot area with its own y axis.
    public struct Panel: Sendable {
        /// The y-axis label.
        public var yLabel: String
        /// The lines.
        public var series: [Series]
        /// A fixed y range; nil = from the data, widened to nice tick values.
        public var yRange: ClosedRange<Double>?

        /// Creates a panel.
        public init(yLabel: String, series: [Series], yRange: ClosedRange<Double>? = nil) {
            self.yLabel = yLabel
            self.series = series
            self.yRange = yRange
        }
    }

    /// The title above the chart.
    public var title: String
    /// The x-axis label (under the bottom panel).
    public var xLabel: String
    /// The x values shared by every series.
    public var x: [Double]
    /// The panels, top to bottom.
    public var panels: [Panel]
    /// SVG width in pixels.
    public var width: Int
    /// Height of each panel's plot area in pixels.
    public var panelHeight: Int

    /// The colors given to series without one, in order (per panel).
    public static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]

    /// Creates a chart.
    public init(title: String, xLabel: String, x: [Double], panels: [Panel], width: Int = 720, panelHeight: Int = 240) {
        self.title = title
        self.xLabel = xLabel
        self.x = x
        self.panels = panels
        self.width = max(width, 240)
        self.panelHeight = max(panelHeight, 80)
    }

    // Margins (pixels).
    static let left = 72.0, right = 16.0, top = 44.0, gap = 40.0, bottom = 52.0

    /// The total SVG height.
    public var height: Int {
        Int(Self.top + Self.bottom) + panels.count * panelHeight + max(panels.count - 1, 0) * Int(Self.gap)
    }

    /// The SVG document (UTF-8 text, ends with a newline).
    public func svg() -> String {
        let w = Double(width), plotLeft = Self.left, plotRight = w - Self.right
        var out = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
            font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
            <rect x="0" y="0" width="\(width)" height="\(height)" fill="#ffffff"/>
            <text x="\(Self.f(w / 2))" y="26" text-anchor="middle" font-size="16" font-weight="bold">\(Self.escape(title))</text>

            """
        let xAxis = Self.xAxis(x)
        for (p, panel) in panels.enumerated() {
            let top = Self.top + Double(p) * (Double(panelHeight) + Self.gap), bottom = top + Double(panelHeight)
            let yAxis = Self.axis(panel.series.flatMap { Array($0.values.prefix(x.count)) }, fixed: panel.yRange)
            func px(_ v: Double) -> Double { plotLeft + (v - xAxis.lo) / (xAxis.hi - xAxis.lo) * (plotRight - plotLeft) }
            func py(_ v: Double) -> Double { bottom - (v - yAxis.lo) / (yAxis.hi - yAxis.lo) * (bottom - top) }

            out += "<g class=\"panel\" id=\"panel-\(p)\">\n"
            // Grid and ticks.
            for t in yAxis.ticks {
                let y = Self.f(py(t))
                out += "<line x1=\"\(Self.f(plotLeft))\" y1=\"\(y)\" x2=\"\(Self.f(plotRight))\" y2=\"\(y)\" stroke=\"#e0e0e0\"/>\n"
                out += "<text x=\"\(Self.f(plotLeft - 6))\" y=\"\(Self.f(py(t) + 4))\" text-anchor=\"end\">\(yAxis.label(t))</text>\n"
            }
            for t in xAxis.ticks {
                let x = Self.f(px(t))
                out += "<line x1=\"\(x)\" y1=\"\(Self.f(top))\" x2=\"\(x)\" y2=\"\(Self.f(bottom))\" stroke=\"#e0e0e0\"/>\n"
                out += "<text x=\"\(x)\" y=\"\(Self.f(bottom + 16))\" text-anchor=\"middle\">\(xAxis.label(t))</text>\n"
            }
            out += "<rect x=\"\(Self.f(plotLeft))\" y=\"\(Self.f(top))\" width=\"\(Self.f(plotRight - plotLeft))\" height=\"\(panelHeight)\" fill=\"none\" stroke=\"#404040\"/>\n"
            let midY = Self.f((top + bottom) / 2)
            out += "<text x=\"22\" y=\"\(midY)\" text-anchor=\"middle\" transform=\"rotate(-90 22 \(midY))\">\(Self.escape(panel.yLabel))</text>\n"

            // Lines (split at non-finite values) and point markers.
            var points: [(Double, Double)] = []
            var colors: [String] = []
            for (s, series) in panel.series.enumerated() {
                let color = Self.escape(series.color ?? Self.palette[s % Self.palette.count])
                colors.append(color)
                out += "<g class=\"series\" data-name=\"\(Self.escape(series.name))\" stroke=\"\(color)\" fill=\"\(color)\">\n"
                out += "<title>\(Self.escape(series.name))</title>\n"
                var segment: [String] = []
                func flush() {
                    if segment.count > 1 {
                        out += "<polyline fill=\"none\" stroke-width=\"2\" points=\"\(segment.joined(separator: " "))\"/>\n"
                    }
                    segment = []
                }
                var previous: (Double, Double)?
                for (i, v) in series.values.prefix(x.count).enumerated() {
                    guard v.isFinite, x[i].isFinite else { flush(); previous = nil; continue }
                    let cx = px(x[i]), cy = py(v)
                    segment.append("\(Self.f(cx)),\(Self.f(cy))")
                    // The legend avoids the lines, so sample them every few pixels.
                    if let (x0, y0) = previous {
                        let steps = min(1000, Int(((cx - x0) * (cx - x0) + (cy - y0) * (cy - y0)).squareRoot() / 3) + 1)
                        for k in 1..<steps {
                            let t = Double(k) / Double(steps)
                            points.append((x0 + (cx - x0) * t, y0 + (cy - y0) * t))
                        }
                    }
                    points.append((cx, cy))
                    previous = (cx, cy)
                }
                flush()
                for (i, v) in series.values.prefix(x.count).enumerated() where v.isFinite && x[i].isFinite {
                    out += "<circle cx=\"\(Self.f(px(x[i])))\" cy=\"\(Self.f(py(v)))\" r=\"2.5\" stroke=\"none\"/>\n"
                }
                out += "</g>\n"
            }
            out += legend(panel.series.map(\.name), colors: colors, points: points,
                          box: (plotLeft, top, plotRight, bottom))
            out += "</g>\n"
        }
        let lastBottom = Self.top + Double(panels.count) * Double(panelHeight) + Double(max(panels.count - 1, 0)) * Self.gap
        out += "<text x=\"\(Self.f((plotLeft + plotRight) / 2))\" y=\"\(Self.f(lastBottom + 40))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
        out += "</svg>\n"
        return out
    }

    /// The legend in whichever corner of the plot area covers the fewest data points (ties: top right, bottom
    /// right, top left, bottom left).
    func legend(_ names: [String], colors: [String], points: [(Double, Double)],
                box: (left: Double, top: Double, right: Double, bottom: Double)) -> String {
        guard !names.isEmpty else { return "" }
        let lineHeight = 16.0
        // Approximate text width: 7 px per character at 12 px.
        let w = 34 + 7 * Double(names.map(\.count).max() ?? 0), h = 8 + lineHeight * Double(names.count)
        let inset = 8.0
        let corners = [
            (box.right - inset - w, box.top + inset), (box.right - inset - w, box.bottom - inset - h),
            (box.left + inset, box.top + inset), (box.left + inset, box.bottom - inset - h),
        ]
        var best = corners[0], fewest = Int.max
        for c in corners {
            let n = points.filter { $0.0 >= c.0 - 8 && $0.0 <= c.0 + w + 8 && $0.1 >= c.1 - 8 && $0.1 <= c.1 + h + 8 }.count
            if n < fewest { fewest = n; best = c }
        }
        var out = "<g class=\"legend\">\n"
        out += "<rect x=\"\(Self.f(best.0))\" y=\"\(Self.f(best.1))\" width=\"\(Self.f(w))\" height=\"\(Self.f(h))\" fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#b0b0b0\"/>\n"
        for (i, name) in names.enumerated() {
            let y = best.1 + 4 + lineHeight * (Double(i) + 0.5)
            out += "<line x1=\"\(Self.f(best.0 + 6))\" y1=\"\(Self.f(y))\" x2=\"\(Self.f(best.0 + 26))\" y2=\"\(Self.f(y))\" stroke=\"\(colors[i])\" stroke-width=\"2\"/>\n"
            out += "<text x=\"\(Self.f(best.0 + 30))\" y=\"\(Self.f(y + 4))\">\(Self.escape(name))</text>\n"
        }
        return out + "</g>\n"
    }

    /// Writes the SVG to `url` atomically.
    public func write(to url: URL) throws(LoadError) {
        try FileOps.writeAtomically(Data(svg().utf8), to: url)
    }

    // MARK: Axes

    /// An axis: its data range and the tick values inside it.
    public struct Axis: Sendable, Equatable {
        /// The value at the low end of the axis.
        public var lo: Double
        /// The value at the high end.
        public var hi: Double
        /// The distance between ticks (1, 2 or 5 × 10^k).
        public var step: Double
        /// Tick values, low to high.
        public var ticks: [Double]

        /// Digits after the decimal point that show every tick exactly.
        public var decimals: Int {
            var d = 0, scaled = step
            while d < 12, abs(scaled - scaled.rounded()) > 1e-9 * max(1, abs(scaled)) {
                scaled *= 10
                d += 1
            }
            return d
        }

        /// A tick label with ``decimals`` digits ("0.25", "10").
        public func label(_ value: Double) -> String {
            let s = String(format: "%.\(decimals)f", value)
            return s.hasPrefix("-") && s.dropFirst().allSatisfy({ $0 == "0" || $0 == "." }) ? String(s.dropFirst()) : s
        }
    }

    /// A "nice" step near `range / count`: 1, 2 or 5 times a power of ten (found by multiplying and dividing by
    /// ten, so it does not depend on a platform's log10).
    public static func niceStep(range: Double, count: Int) -> Double {
        guard range.isFinite, range > 0 else { return 1 }
        let rough = range / Double(max(count, 1))
        var p = 1.0
        while p > rough { p /= 10 }
        while p * 10 <= rough { p *= 10 }
        let f = rough / p
        return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p
    }

    /// The y axis for `values` (non-finite ones ignored): widened outwards to multiples of a nice step, about
    /// `count` ticks; a fixed range keeps its ends and gets ticks inside it.
    public static func axis(_ values: [Double], fixed: ClosedRange<Double>? = nil, count: Int = 5) -> Axis {
        let finite = values.filter(\.isFinite)
        if let fixed, fixed.lowerBound.isFinite, fixed.upperBound.isFinite, fixed.upperBound > fixed.lowerBound {
            let step = niceStep(range: fixed.upperBound - fixed.lowerBound, count: count)
            return Axis(lo: fixed.lowerBound, hi: fixed.upperBound, step: step,
                        ticks: ticks(from: fixed.lowerBound, to: fixed.upperBound, step: step))
        }
        var lo = finite.min() ?? 0, hi = finite.max() ?? 1
        if lo == hi {
            let delta = lo == 0 ? 0.5 : abs(lo) * 0.05
            lo -= delta
            hi += delta
        }
        let step = niceStep(range: hi - lo, count: count)
        let kLo = (lo / step).rounded(.down), kHi = (hi / step).rounded(.up)
        guard abs(kLo) < 1e15, abs(kHi) < 1e15, kHi - kLo <= 1000 else {
            // Extreme values (huge magnitudes, or a range near the limit of Double precision): plain ends.
            return Axis(lo: lo, hi: hi, step: hi - lo, ticks: [lo, hi])
        }
        return Axis(lo: kLo * step, hi: kHi * step, step: step, ticks: (Int(kLo)...Int(kHi)).map { Double($0) * step })
    }

    /// The x axis: exactly the data range (one point gets ±1), ticks inside it; whole-number x (epochs) never get
    /// fractional ticks.
    public static func xAxis(_ x: [Double]) -> Axis {
        let finite = x.filter(\.isFinite)
        var lo = finite.min() ?? 0, hi = finite.max() ?? 1
        if lo == hi { lo -= 1; hi += 1 }
        var step = niceStep(range: hi - lo, count: 8)
        if finite.allSatisfy({ $0 == $0.rounded() }) { step = max(step, 1) }
        return Axis(lo: lo, hi: hi, step: step, ticks: ticks(from: lo, to: hi, step: step))
    }

    /// Multiples of `step` in `lo...hi` (with a little tolerance at the ends).
    static func ticks(from lo: Double, to hi: Double, step: Double) -> [Double] {
        let eps = step * 1e-9
        let kLo = ((lo - eps) / step).rounded(.up), kHi = ((hi + eps) / step).rounded(.down)
        guard kLo <= kHi, kHi - kLo < 1000, abs(kLo) < 1e15, abs(kHi) < 1e15 else { return [] }
        return (Int(kLo)...Int(kHi)).map { Double($0) * step }
    }

    // MARK: Text

    /// A coordinate with two decimals.
    static func f(_ v: Double) -> String { String(format: "%.2f", v.isFinite ? v : 0) }

    /// `text` safe inside XML character data and attribute values: & < > " ' escaped, control characters
    /// (not allowed in XML 1.0) replaced by spaces.
    public static func escape(_ text: String) -> String {
        var out = ""
        for u in text.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(u)
            default:
                if u.value < 0x20 || (0xFFFE...0xFFFF).contains(u.value) { out += " " } else { out.unicodeScalars.append(u) }
            }
        }
        return out
    }
}

/// A table written as CSV: a header line, then one line per row, fields separated by commas, lines ending in
/// "\n". Fields are quoted as RFC 4180 says: when they contain a comma, a double quote, CR or LF, enclosed in
/// double quotes with each double quote doubled.
public struct CSVTable: Sendable, Equatable {
    /// Column names.
    public var header: [String]
    /// Rows of fields (rows may be shorter than the header; missing fields are empty).
    public var rows: [[String]]

    /// Creates a table from text fields.
    public init(header: [String], rows: [[String]]) {
        self.header = header
        self.rows = rows
    }

    /// Creates a table from numeric columns (as many rows as the longest column; see ``number(_:)``).
    public init(columns: [(name: String, values: [Double])]) {
        header = columns.map(\.name)
        let n = columns.map(\.values.count).max() ?? 0
        rows = (0..<n).map { i in columns.map { i < $0.values.count ? Self.number($0.values[i]) : "" } }
    }

    /// A number as CSV text: whole numbers without a fraction ("3"), others in Swift's shortest round-trip form
    /// ("0.9352", "1e-05"), and "nan", "inf", "-inf" (as NumPy and pandas read them).
    public static func number(_ v: Double) -> String {
        if v.isNaN { return "nan" }
        if v.isInfinite { return v > 0 ? "inf" : "-inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }

    /// One field, quoted if it needs to be.
    public static func quote(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The CSV text.
    public var text: String {
        var out = header.map(Self.quote).joined(separator: ",") + "\n"
        for row in rows {
            let padded = row + Array(repeating: "", count: max(0, header.count - row.count))
            out += padded.map(Self.quote).joined(separator: ",") + "\n"
        }
        return out
    }

    /// Writes the CSV to `url` atomically.
    public func write(to url: URL) throws(LoadError) {
        try FileOps.writeAtomically(Data(text.utf8), to: url)
    }
}

/// Per-epoch training results as a two-panel chart (loss; train and test accuracy) and a CSV table
/// (`epoch,train_loss,train_accuracy,test_accuracy`). Epochs are numbered from 1.
public struct LearningCurves: Sendable {
    /// The chart title.
    public var title: String
    /// Mean training loss per epoch.
    public var trainLoss: [Double]
    /// Training accuracy per epoch (0...1).
    public var trainAccuracy: [Double]
    /// Test accuracy per epoch (0...1).
    public var testAccuracy: [Double]

    /// Creates the curves (the columns may have different lengths; missing values are blanks/gaps).
    public init(title: String = "Learning curves", trainLoss: [Double], trainAccuracy: [Double], testAccuracy: [Double]) {
        self.title = title
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.testAccuracy = testAccuracy
    }

    /// The number of epochs (the longest column).
    public var epochs: Int { max(trainLoss.count, trainAccuracy.count, testAccuracy.count) }

    /// Loss in the top panel, accuracies in the bottom panel.
    public var plot: LinePlot {
        LinePlot(
            title: title, xLabel: "epoch", x: (0..<epochs).map { Double($0 + 1) },
            panels: [
                .init(yLabel: "loss", series: [.init("train loss", trainLoss, color: LinePlot.palette[0])]),
                .init(yLabel: "accuracy", series: [
                    .init("train accuracy", trainAccuracy, color: LinePlot.palette[0]),
                    .init("test accuracy", testAccuracy, color: LinePlot.palette[1]),
                ]),
            ])
    }

    /// The CSV table.
    public var table: CSVTable {
        CSVTable(columns: [
            ("epoch", (0..<epochs).map { Double($0 + 1) }), ("train_loss", trainLoss),
            ("train_accuracy", trainAccuracy), ("test_accuracy", testAccuracy),
        ])
    }

    /// Writes the SVG chart and/or the CSV table (each atomically).
    public func write(svg: URL?, csv: URL?) throws(LoadError) {
        if let svg { try plot.write(to: svg) }
        if let csv { try table.write(to: csv) }
    }
}
