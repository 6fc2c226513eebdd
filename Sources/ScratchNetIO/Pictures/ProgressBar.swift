// ProgressBar: one line of progress for a loop, e.g.
//   epoch 3/10 [===========>            ] 312/600 12.3 s ETA 11.4 s loss 0.31
// redrawn in place (carriage return, at most ~10 times a second) on a terminal; silent per step otherwise, so
// logs and pipes get only the final lines. The output sink and the clock are injected, so tests can check
// exactly what is written. The `scratchnet` tool uses it as `ProgressReporter` in `train`.

import Foundation

/// A progress bar for a loop of `total` steps.
public final class ProgressBar {
    /// Steps in the loop.
    public let total: Int
    /// The text before the bar ("epoch 3/10").
    public let label: String
    /// True: draw the bar in place; false: write only the lines given to ``finish(line:)``.
    public let isTerminal: Bool
    /// Characters between the brackets.
    public var barWidth = 24
    /// The least time between two redraws, in seconds.
    public var minInterval = 0.1

    private let output: (String) -> Void
    private let clock: () -> Double
    private let start: Double
    private var lastDraw = -Double.infinity
    private var drawn = false

    /// Creates a bar and starts its clock.
    /// - Parameters:
    ///   - total: the number of steps that make 100%.
    ///   - label: the text before the bar.
    ///   - isTerminal: whether `output` is a terminal (default: whether stderr is one).
    ///   - output: where the text goes (default: stderr, unbuffered).
    ///   - clock: monotonic seconds (default: the system's uptime clock).
    public init(total: Int, label: String, isTerminal: Bool = ProgressBar.standardErrorIsTerminal(),
                output: @escaping (String) -> Void = ProgressBar.writeToStandardError,
                clock: @escaping () -> Double = ProgressBar.monotonicSeconds) {
        self.total = max(total, 0)
        self.label = label
        self.isTerminal = isTerminal
        self.output = output
        self.clock = clock
        start = clock()
    }

    /// Reports that `done` of `total` steps are finished; `extra` (e.g. "loss 0.31") goes at the end of the
    /// line. On a terminal, redraws the line unless the last redraw was less than ``minInterval`` ago (the last
    /// step is always drawn); otherwise does nothing.
    public func update(done: Int, extra: String = "") {
        guard isTerminal else { return }
        let t = clock()
        guard t - lastDraw >= minInterval || done >= total else { return }
        lastDraw = t
        drawn = true
        output("\r" + line(done: done, elapsed: t - start, extra: extra) + "\u{1B}[K")
    }

    /// Ends the bar: on a terminal the bar is erased; then `line` is written with a newline (nothing when empty).
    public func finish(line: String) {
        var text = isTerminal && drawn ? "\r\u{1B}[K" : ""
        if !line.isEmpty { text += line + "\n" }
        drawn = false
        if !text.isEmpty { output(text) }
    }

    /// The bar line for `done` steps after `elapsed` seconds:
    /// "`label` [=====>    ] done/total 12.3 s ETA 4.1 s `extra`" (done is padded to the width of total).
    public func line(done: Int, elapsed: Double, extra: String = "") -> String {
        let done = min(max(done, 0), total)
        let count = String(done), totalText = String(total)
        var s = label.isEmpty ? "" : label + " "
        s += "[" + Self.bar(done: done, total: total, width: barWidth) + "] "
        s += String(repeating: " ", count: max(0, totalText.count - count.count)) + count + "/" + totalText
        s += " " + Self.duration(elapsed)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : .nan
        s += " ETA " + Self.duration(eta)
        if !extra.isEmpty { s += " " + extra }
        return s
    }

    /// `width` characters: "=" for the finished part, ">" at its head while unfinished, spaces for the rest.
    public static func bar(done: Int, total: Int, width: Int) -> String {
        let width = max(width, 1)
        guard total > 0 else { return String(repeating: "=", count: width) }
        let filled = min(width, max(0, done) * width / total)
        if filled >= width || done >= total { return String(repeating: "=", count: width) }
        return String(repeating: "=", count: filled) + ">" + String(repeating: " ", count: width - filled - 1)
    }

    /// "4.1 s" below a minute, "2m05s" below an hour, else "1h02m"; "?" when unknown.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        if seconds < 59.95 { return String(format: "%.1f s", seconds) }
        let s = Int(seconds.rounded())
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
    }

    /// Writes `text` to stderr.
    public static func writeToStandardError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Whether stderr is a terminal.
    public static func standardErrorIsTerminal() -> Bool { isatty(STDERR_FILENO) == 1 }

    /// Monotonic seconds since an arbitrary start.
    public static func monotonicSeconds() -> Double {
        Double(DispatchTime.now().uptimeNanoseconds) / 1e9
    }
}
