// Tests of ConfusionMatrix: counts by (true, predicted), accuracies, empty classes, refusals naming the counts,
// and the text layout.

import Testing
import ScratchNet

@Suite struct ConfusionMatrixTests {
    @Test func countsAndAccuracies() throws {
        let labels: [UInt8] = [0, 0, 1, 1, 1, 2, 2]
        let predictions = [0, 1, 1, 1, 2, 2, 0]
        let m = try ConfusionMatrix(classes: 4, labels: labels, predictions: predictions)
        #expect(m[0, 0] == 1 && m[0, 1] == 1 && m[1, 1] == 2 && m[1, 2] == 1 && m[2, 2] == 1 && m[2, 0] == 1)
        #expect(m.total == 7 && m.correct == 4 && m.accuracy == 4.0 / 7.0)
        #expect(m.support(1) == 3 && m.accuracy(ofClass: 1) == 2.0 / 3.0)
        #expect(m.accuracy(ofClass: 3) == nil)  // no images of class 3
        #expect(m.counts.reduce(0, +) == labels.count)
    }

    @Test func emptyAndOneSample() throws {
        let empty = try ConfusionMatrix(classes: 10, labels: [Int](), predictions: [Int]())
        #expect(empty.total == 0 && empty.accuracy == 0 && empty.accuracy(ofClass: 0) == nil)
        let one = try ConfusionMatrix(classes: 1, labels: [0], predictions: [0])
        #expect(one.accuracy == 1)
    }

    @Test func refusesLabelsTheModelDoesNotCover() {
        #expect {
            try ConfusionMatrix(classes: 5, labels: [0, 9], predictions: [0, 1])
        } throws: { error in
            "\(error)".contains("label 9") && "\(error)".contains("5 classes")
        }
        #expect(throws: ModelError.self) { try ConfusionMatrix(classes: 5, labels: [0], predictions: [7]) }
        #expect(throws: ModelError.self) { try ConfusionMatrix(classes: 5, labels: [0, 1], predictions: [0]) }
        #expect(throws: ModelError.self) { try ConfusionMatrix(classes: 0, labels: [Int](), predictions: [Int]()) }
    }

    @Test func textHasAHeaderARowPerClassAndTheAccuracies() throws {
        let m = try ConfusionMatrix(classes: 3, labels: [0, 1, 1, 2], predictions: [0, 1, 2, 2])
        let lines = m.text().split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("true") && lines[0].hasSuffix("accuracy"))
        #expect(lines[2].split(separator: " ") == ["1", "0", "1", "1", "0.5000"])
        let named = m.text(names: ["cat", "dog", "owl"])
        #expect(named.contains("1 dog"))
    }
}
