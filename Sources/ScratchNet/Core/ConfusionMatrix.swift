// ConfusionMatrix: how a classifier's predictions spread over the true classes (rows: true label, columns:
// predicted class), with per-class accuracy. Pure counting on the host: the same predictions give the same matrix,
// and every device with parity gives the same predictions.

import Foundation

/// Counts of (true label, predicted class) pairs for `classes` classes, and the accuracies they give.
public struct ConfusionMatrix: Sendable, Equatable, Codable {
    /// Number of classes (10 for MNIST).
    public let classes: Int
    /// Row-major `classes × classes` counts: `counts[label * classes + predicted]`.
    public private(set) var counts: [Int]

    /// Counts `predictions` against `labels` (the same length). Labels and predictions must lie in `0..<classes`;
    /// a label outside means the model does not cover the data's classes, and the error says both counts.
    public init<L: Collection, P: Collection>(classes: Int, labels: L, predictions: P) throws(ModelError)
    where L.Element: BinaryInteger, P.Element: BinaryInteger {
        guard classes > 0 else { throw ModelError("a confusion matrix needs at least 1 class, got \(classes)") }
        guard labels.count == predictions.count else {
            throw ModelError("\(labels.count) labels but \(predictions.count) predictions")
        }
        var counts = [Int](repeating: 0, count: classes * classes)
        for (label, predicted) in zip(labels, predictions) {
            guard label >= 0, label < classes else {
                throw ModelError("the data has label \(label) but the model has \(classes) classes (0...\(classes - 1))")
            }
            guard predicted >= 0, predicted < classes else {
                throw ModelError("prediction \(predicted) is not one of the model's \(classes) classes")
            }
            counts[Int(label) * classes + Int(predicted)] += 1
        }
        self.classes = classes
        self.counts = counts
    }

    /// How many samples of class `label` were predicted as `predicted`.
    public subscript(label: Int, predicted: Int) -> Int { counts[label * classes + predicted] }

    /// Number of samples counted.
    public var total: Int { counts.reduce(0, +) }
    /// Number predicted correctly (the diagonal).
    public var correct: Int { (0..<classes).reduce(0) { $0 + self[$1, $1] } }
    /// correct / total (0 when empty), the book's `accuracy_cnt / len(x)`.
    public var accuracy: Double { total == 0 ? 0 : Double(correct) / Double(total) }
    /// Number of samples whose true label is `label` (a row sum).
    public func support(_ label: Int) -> Int { (0..<classes).reduce(0) { $0 + self[label, $1] } }
    /// Fraction of class `label`'s samples predicted correctly (its recall), nil if the data has none.
    public func accuracy(ofClass label: Int) -> Double? {
        let n = support(label)
        return n == 0 ? nil : Double(self[label, label]) / Double(n)
    }

    /// The matrix as aligned text: a header of predicted classes, one row per true label, and the row's accuracy.
    public func text(names: [String]? = nil) -> String {
        let labels = (0..<classes).map { c in names.flatMap { c < $0.count ? "\(c) \($0[c])" : nil } ?? String(c) }
        let labelWidth = max(4, labels.map(\.count).max() ?? 1)
        let cellWidth = max(String(counts.max() ?? 0).count, String(classes - 1).count) + 1
        func pad(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
        var lines = [pad("true", labelWidth) + " " + (0..<classes).map { pad(String($0), cellWidth) }.joined() + "  accuracy"]
        for r in 0..<classes {
            let row = (0..<classes).map { pad(String(self[r, $0]), cellWidth) }.joined()
            let acc = accuracy(ofClass: r).map { pad(String(format: "%.4f", $0), 8) } ?? pad("-", 8)
            lines.append(labels[r].padding(toLength: labelWidth, withPad: " ", startingAt: 0) + " " + row + "  " + acc)
        }
        return lines.joined(separator: "\n")
    }
}
