// Optimizers of the book's chapter 6 (common/optimizer.py): SGD, Momentum, AdaGrad, Adam. The host turns the
// hyper-parameters into one `UpdateRule` per step (Adam's bias-corrected rate in Double, rounded once), and the
// backend applies it to every parameter on the device, so every device gets the same Floats and the same bits.

import Foundation

/// Which of the book's optimizers to use.
public enum OptimizerKind: String, Sendable, CaseIterable, Codable {
    case sgd, momentum, adagrad, adam

    /// The book's default learning rate for this optimizer (common/optimizer.py): 0.01, Adam 0.001.
    public var defaultLearningRate: Double { self == .adam ? 0.001 : 0.01 }
}

/// An optimizer with its per-parameter state on the device (velocity, h, m and v), created lazily at +0.
///
/// Not `Sendable`: it belongs to one training loop. `step` updates every parameter in place.
public final class Optimizer {
    public let kind: OptimizerKind
    public let backend: any Backend
    /// The learning rate η, kept in Double as the book's Python float.
    public let learningRate: Double
    /// Momentum's α (the book's 0.9).
    public let momentum: Double
    /// Adam's β₁ and β₂ (the book's 0.9 and 0.999).
    public let beta1: Double
    public let beta2: Double
    /// Steps taken so far (Adam's `iter`).
    public private(set) var iteration = 0

    private var state: [ObjectIdentifier: [DeviceMatrix]] = [:]

    public init(
        _ kind: OptimizerKind, learningRate: Double? = nil, momentum: Double = 0.9, beta1: Double = 0.9,
        beta2: Double = 0.999, backend: any Backend
    ) {
        self.kind = kind
        self.learningRate = learningRate ?? kind.defaultLearningRate
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.backend = backend
    }

    /// The element-wise rule of step number `t` (1-based), with the coefficients rounded to Float once, as
    /// NumPy does when a Python float multiplies a float32 array.
    public func rule(step t: Int) -> UpdateRule {
        switch kind {
        case .sgd: return .sgd(lr: Float(learningRate))
        case .momentum: return .momentum(lr: Float(learningRate), momentum: Float(momentum))
        case .adagrad: return .adaGrad(lr: Float(learningRate))
        case .adam:
            // lr_t = lr * sqrt(1 - β₂^t) / (1 - β₁^t)   (the book's Adam.update)
            let tt = Double(t)
            let lrT = learningRate * (1 - Foundation.pow(beta2, tt)).squareRoot() / (1 - Foundation.pow(beta1, tt))
            return .adam(lrT: Float(lrT), oneMinusBeta1: Float(1 - beta1), oneMinusBeta2: Float(1 - beta2))
        }
    }

    /// One update of every (parameter, gradient) pair with this step's rule.
    public func step(_ pairs: [(parameter: DeviceMatrix, gradient: DeviceMatrix)]) throws {
        iteration += 1
        let rule = rule(step: iteration)
        for (p, g) in pairs {
            let key = ObjectIdentifier(p)
            var s = state[key] ?? []
            if s.count != rule.stateCount {
                s = try (0..<rule.stateCount).map { _ in try backend.upload(Tensor(zeros: [p.rows, p.cols])) }
                state[key] = s
            }
            try backend.update(rule, parameter: p, gradient: g, state: s)
        }
    }
}
