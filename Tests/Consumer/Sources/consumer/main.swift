// The consumer's program: the book's chapter 3 on the CPU path, through the public API only.
// Usage: consumer MNIST_DIR WEIGHTS. Prints accuracy, images/s (best of 5 runs) and how FMA was compiled.

import Foundation
import ScratchNet
import ScratchNetIO

let args = CommandLine.arguments
guard args.count == 3 else {
    FileHandle.standardError.write(Data("usage: consumer MNIST_DIR WEIGHTS\n".utf8))
    exit(2)
}
do {
    let test = try MNIST.load(directory: URL(fileURLWithPath: args[1]), split: .test)
    let weights = try WeightsFile.load(URL(fileURLWithPath: args[2]))
    let network = try Network(weights: weights, backend: CPUBackend())
    var best = Double.infinity
    var accuracy = 0.0
    for _ in 0..<5 {
        let start = Date()
        let result = try network.infer(bytes: test.images, count: test.count, batchSize: 100)
        best = min(best, Date().timeIntervalSince(start))
        accuracy = result.accuracy(labels: test.labels)
    }
    print("accuracy: \(String(format: "%.4f", accuracy))")
    print("images/s: \(Int(Double(test.count) / best))")
    print("fma: \(FusedMultiplyAddCodegen.current.summary)")
} catch {
    FileHandle.standardError.write(Data("consumer: \(error)\n".utf8))
    exit(1)
}
