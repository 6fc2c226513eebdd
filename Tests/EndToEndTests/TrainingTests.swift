// Training end to end on Fashion-MNIST (Debian's dataset-fashion-mnist; $FASHION_MNIST_DIR overrides): the
// CPU path and OpenCL give bitwise-identical losses and weights over 200 steps, the issue's 784-100-10 ReLU
// Adam network reaches the 0.88 test accuracy target, and `scratchnet train` writes weights, curves and CSV
// that `infer` loads, stopping cleanly on Ctrl-C.

import Foundation
import ScratchNet
import ScratchNetIO
import Testing

enum Fashion {
    static var directory: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.environment["FASHION_MNIST_DIR"] ?? "/usr/share/datasets/fashion-mnist")
    }

    /// Loads a split once per process; fails (never skips) with what to install when the files are missing.
    static func load(_ split: MNIST.Split) throws -> LabeledBytes {
        let set: MNISTSet
        do {
            set = try MNIST.load(directory: directory, split: split)
        } catch {
            Issue.record("Fashion-MNIST not found: apt-get install dataset-fashion-mnist, or set FASHION_MNIST_DIR (\(error))")
            throw error
        }
        return try LabeledBytes(images: set.images, labels: set.labels, count: set.count, features: set.rows * set.cols)
    }

    static let train = Result { try load(.train) }
    static let test = Result { try load(.test) }
}

@Suite("Training", .serialized)
struct TrainingTests {
    /// Trains `steps` steps on the backend and returns every loss and the final weights.
    func run(_ sizes: [Int], _ activation: Activation, _ kind: OptimizerKind, lr: Double?, steps: Int,
             on backend: any Backend) throws -> (losses: [Float], weights: [String: Tensor]) {
        let data = try Fashion.train.get()
        let trainer = try Trainer(layerSizes: sizes, activation: activation, optimizer: kind, learningRate: lr,
                                  batchSize: 100, seed: 2026, backend: backend)
        var losses: [Float] = []
        while losses.count < steps {
            losses += try trainer.trainEpoch(data, maxSteps: steps - losses.count).losses
        }
        return (losses, try trainer.weights())
    }

    @Test("200 steps on the CPU path and on OpenCL: bitwise-identical losses and weights",
          arguments: [([784, 50, 10], Activation.sigmoid, OptimizerKind.sgd, 0.1 as Double?, 200),
                      ([784, 100, 10], .relu, .adam, nil, 200),
                      ([784, 30, 20, 10], .relu, .momentum, nil, 60),
                      ([784, 33, 10], .sigmoid, .adagrad, nil, 60)])
    func parity(sizes: [Int], activation: Activation, kind: OptimizerKind, lr: Double?, steps: Int) throws {
        guard let opencl = try Book.openCLBackend() else { return }
        let cpu = try run(sizes, activation, kind, lr: lr, steps: steps, on: CPUBackend())
        let gpu = try run(sizes, activation, kind, lr: lr, steps: steps, on: opencl)
        let losses = Comparison(gpu.losses, cpu.losses)
        #expect(losses.isBitwiseEqual, "losses: \(losses)")
        #expect(cpu.losses.count == steps)
        #expect(cpu.losses.last! < cpu.losses.first!, "the loss should fall: \(cpu.losses.first!) -> \(cpu.losses.last!)")
        for (name, w) in cpu.weights.sorted(by: { $0.key < $1.key }) {
            let c = Comparison(gpu.weights[name]?.scalars ?? [], w.scalars)
            #expect(c.isBitwiseEqual, "\(name): \(c)")
        }
    }

    @Test("784-100-10 ReLU with Adam reaches at least 0.88 on the Fashion-MNIST test set")
    func fashionAccuracy() throws {
        let train = try Fashion.train.get()
        let test = try Fashion.test.get()
        let trainer = try Trainer(layerSizes: [784, 100, 10], activation: .relu, optimizer: .adam, batchSize: 100,
                                  seed: 1, backend: CPUBackend())
        var accuracy = 0.0
        for _ in 1...FashionTarget.epochs {
            _ = try trainer.trainEpoch(train)
        }
        accuracy = try trainer.accuracy(test)
        #expect(accuracy >= 0.88, "test accuracy \(accuracy) after \(FashionTarget.epochs) epochs")
    }
}

enum FashionTarget {
    static let epochs = 25
}
