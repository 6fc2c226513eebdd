// Gradient check on OpenCL (pocl here): the MLP backprop gradients of the OpenCL backend against the Double
// numerical gradient (same cases and bound as Tests/ScratchNetTests/GradientCheckTests.swift), and BITWISE
// equal to CPUBackend's gradients, loss and probabilities for the same network and batch.

import ScratchNet
import ScratchNetOpenCL
import Testing

/// The bounds of the CPU gradient check (see ScratchNetTests/GradientCheckTests.swift for the measurements and
/// the justification): Float backprop against the Double loss without the 1e-7 guard, and with it (the book's
/// check, which adds the guard's bias of about 1e-7 / y[target]). OpenCL's gradients are bitwise CPU's, so the
/// same measured errors apply (printed here too).
private let floatBound = 3e-6
private let guardedBound = 1e-4

/// One small MLP case: layer widths, batch, hidden activation, labels (N,1) or one-hot (N,C) targets.
struct OpenCLNetworkCase: Sendable, CustomTestStringConvertible {
    let sizes: [Int]
    let batch: Int
    let activation: Activation
    let oneHot: Bool
    let seed: UInt64
    var testDescription: String {
        "\(sizes.map(String.init).joined(separator: "-")) \(activation) \(oneHot ? "oneHot" : "labels") batch \(batch)"
    }

    /// x (N, in) in [-2, 2], W uniform in ±1/√in, b in [-0.5, 0.5], random classes: the same generator and
    /// draws as the CPU test's `NetworkCase.data()`, so the cases are the same networks.
    func data() -> (x: Tensor, parameters: [Tensor], targets: Tensor) {
        var g = SplitMix64(seed: seed)
        func tensor(_ r: Int, _ c: Int, _ range: ClosedRange<Float>) -> Tensor {
            let v = (0..<(r * c)).map { _ in g.nextFloat(in: range) }
            return (try? Tensor(shape: [r, c], scalars: v)) ?? Tensor(zeros: [r, c])
        }
        let x = tensor(batch, sizes[0], -2...2)
        var parameters: [Tensor] = []
        for l in 1..<sizes.count {
            let s = 1 / Float(sizes[l - 1]).squareRoot()
            parameters.append(tensor(sizes[l - 1], sizes[l], -s...s))
            parameters.append(tensor(1, sizes[l], -0.5...0.5))
        }
        let classes = sizes[sizes.count - 1]
        var tg = SplitMix64(seed: seed &+ 1)
        let labels = (0..<batch).map { _ in Int(tg.next() % UInt64(classes)) }
        var t = Tensor(zeros: oneHot ? [batch, classes] : [batch, 1])
        for (i, l) in labels.enumerated() {
            if oneHot { t.scalars[i * classes + l] = 1 } else { t.scalars[i] = Float(l) }
        }
        return (x, parameters, t)
    }
}

/// The issue's 7-5-4-3 with batch 3, batch 1, and an odd deeper one; sigmoid and relu; labels and one-hot.
private let openCLNetworkCases: [OpenCLNetworkCase] = {
    var cases: [OpenCLNetworkCase] = []
    for activation in [Activation.sigmoid, .relu] {
        for oneHot in [false, true] {
            cases.append(OpenCLNetworkCase(sizes: [7, 5, 4, 3], batch: 3, activation: activation, oneHot: oneHot, seed: 0x6AD0))
            cases.append(OpenCLNetworkCase(sizes: [33, 17, 10], batch: 1, activation: activation, oneHot: oneHot, seed: 0x6AD1))
            cases.append(OpenCLNetworkCase(sizes: [20, 9, 16, 8, 5], batch: 7, activation: activation, oneHot: oneHot, seed: 0x6ADA))
        }
    }
    return cases
}()

@Suite("GradientCheckOpenCL")
struct GradientCheckOpenCLTests {
    @Test("MLP backprop on OpenCL against the numerical gradient", arguments: openCLNetworkCases)
    func network(_ c: OpenCLNetworkCase) throws {
        guard let be = TestDevice.backend() else { return }
        let (x, parameters, t) = c.data()
        let bp = try GradientCheck.mlpBackprop(x: x, parameters: parameters, activation: c.activation, targets: t, backend: be)
        let numerical = try GradientCheck.mlpNumericalGradients(
            x: GradientCheck.Matrix(x), parameters: parameters.map { try GradientCheck.Matrix($0) },
            activation: c.activation, targets: GradientCheck.Matrix(t))
        let noGuard = try GradientCheck.mlpNumericalGradients(
            x: GradientCheck.Matrix(x), parameters: parameters.map { try GradientCheck.Matrix($0) },
            activation: c.activation, targets: GradientCheck.Matrix(t), guard: 0)
        try #require(bp.gradients.count == parameters.count && numerical.count == parameters.count)
        for p in parameters.indices {
            let name = (p % 2 == 0 ? "W" : "b") + "\(p / 2 + 1)"
            for (numeric, bound, label) in [(numerical[p], guardedBound, ""), (noGuard[p], floatBound, ", no guard")] {
                let e = GradientCheck.relativeError(bp.gradients[p].scalars, numeric)
                print("gradient check OpenCL network \(c.testDescription) \(name)\(label): relative error \(e)")
                #expect(e <= bound, "\(c.testDescription) \(name)\(label): relative error \(e) > \(bound)")
            }
        }
        // Negative control: the gradients without the /N of SoftmaxWithLoss fail the bound (batch > 1).
        if c.batch > 1 {
            let wrong = bp.gradients[0].scalars.map { $0 * Float(c.batch) }
            #expect(GradientCheck.relativeError(wrong, numerical[0]) > guardedBound)
        }
    }

    @Test("MLP gradients, loss and probabilities on OpenCL are bitwise CPUBackend's", arguments: openCLNetworkCases)
    func bitwiseEqualToCPU(_ c: OpenCLNetworkCase) throws {
        guard let be = TestDevice.backend() else { return }
        let (x, parameters, t) = c.data()
        let gpu = try GradientCheck.mlpBackprop(x: x, parameters: parameters, activation: c.activation, targets: t, backend: be)
        let cpu = try GradientCheck.mlpBackprop(
            x: x, parameters: parameters, activation: c.activation, targets: t, backend: CPUBackend())
        try #require(gpu.gradients.count == cpu.gradients.count)
        for (p, (g, w)) in zip(gpu.gradients, cpu.gradients).enumerated() {
            expectBitwise(g, w, "\(c.testDescription) gradient \(p % 2 == 0 ? "W" : "b")\(p / 2 + 1)")
        }
        expectBitwise(gpu.probabilities, cpu.probabilities, "\(c.testDescription) probabilities")
        #expect(gpu.loss.bitPattern == cpu.loss.bitPattern, "\(c.testDescription) loss \(gpu.loss) vs \(cpu.loss)")
    }
}
