// SelfCheck: a device proves itself on the ops a job will run before the job uses it. Every check runs one op
// on small deterministic inputs on the candidate backend and on the reference (the CPU path) and compares
// every output bit. The shapes reach every code path of the kernels: row tiles and column panels that do
// not divide the sizes, the packed and the row-major products, a single row, NaN/inf/denormal inputs, and for
// the fused whole-network pass both modes (outputs and predictions), float and byte inputs, a first layer
// wider than the k chunk (784), a narrow last panel (50), the widest layer the kernel takes (256), four layers
// and more rows than one work-group. The reference side of the fused checks is composed op by op (affine per
// layer, then softmax), so a fused kernel is judged against the unfused path, never against itself.
//
// `DeviceSelector` runs it (and caches the verdict) before `infer`, `parity`, `bench` and `train` use a
// device; `scratchnet devices` shows it. SCRATCHNET_SELFCHECK_TRACE=1 prints each check's time on stderr.

import Foundation

/// The kind of job a device is checked for: which ops it will launch.
public enum SelfCheckJob: String, Sendable, CaseIterable, Codable {
    /// Element-wise and matrix ops plus the fused whole-network pass (infer, parity, bench).
    case inference
    /// Everything of ``inference`` plus the backward, loss and optimizer ops (train).
    case training

    /// The groups of checks the job needs.
    public var groups: [SelfCheckGroup] {
        switch self {
        case .inference: return [.ops, .fused]
        case .training: return [.ops, .fused, .training]
        }
    }
}

/// A group of checks: the unit a failing device can lose (the fused path can be replaced, the others not).
public enum SelfCheckGroup: String, Sendable, CaseIterable, Codable {
    /// matmul, affine, activations, softmax, argmax, byte conversion.
    case ops
    /// The whole network in one pass (``Backend/forward(_:layers:softmax:into:)`` and ``Backend/predict(_:layers:softmax:into:)``).
    case fused
    /// Backward passes, losses and optimizer updates.
    case training
}

/// One op that the self-check exercises, named so a backend can say which of its kernels runs it.
public enum CheckedOp: String, Sendable, CaseIterable, Codable {
    case matmul, affine, apply, softmax, argmax, bytes
    case fusedForward, fusedPredict
    case matmulTransposedA, matmulTransposedB, sumColumns, activationBackward
    case crossEntropy, sumOfSquares, softmaxCrossEntropyBackward, update

    /// The group the op belongs to.
    public var group: SelfCheckGroup {
        switch self {
        case .matmul, .affine, .apply, .softmax, .argmax, .bytes: return .ops
        case .fusedForward, .fusedPredict: return .fused
        default: return .training
        }
    }
}

/// The outcome of one check: one op on one case, candidate against reference.
public struct SelfCheckResult: Sendable, Equatable {
    /// The op exercised.
    public let op: CheckedOp
    /// The case, e.g. "affine+sigmoid (33,47)·(47,29)" or "predict 784-50-100-10 sigmoid, bytes, 13 rows".
    public let name: String
    /// Number of output values compared.
    public let count: Int
    /// Index of the first output whose bits differ, nil if all are equal.
    public let firstDifference: Int?
    /// The candidate's and the reference's value at ``firstDifference`` (NaN bits kept).
    public let got: Float
    public let want: Float

    /// Wraps a comparison of `got` against `want`.
    public init(op: CheckedOp, name: String, got: [Float], want: [Float]) {
        let c = Comparison(got, want)
        self.op = op
        self.name = name
        self.count = want.count
        self.firstDifference = c.isBitwiseEqual ? nil : c.firstMismatch
        let i = c.firstMismatch ?? 0
        self.got = c.isBitwiseEqual || i >= got.count ? 0 : got[i]
        self.want = c.isBitwiseEqual || i >= want.count ? 0 : want[i]
    }

    /// Rebuilds a stored result (the verdict cache).
    public init(op: CheckedOp, name: String, count: Int, firstDifference: Int?, got: Float, want: Float) {
        self.op = op
        self.name = name
        self.count = count
        self.firstDifference = firstDifference
        self.got = got
        self.want = want
    }

    /// Every output bit equal.
    public var passed: Bool { firstDifference == nil }

    /// "element 3 is 0.25 (0x3e800000) but the CPU path gives 0.5 (0x3f000000)", or "bitwise equal".
    public var differenceDescription: String {
        guard let i = firstDifference else { return "all \(count) outputs bitwise equal" }
        if got.bitPattern == want.bitPattern { return "output count differs (\(count) expected)" }
        func show(_ v: Float) -> String { "\(v) (0x\(String(v.bitPattern, radix: 16)))" }
        return "output \(i) of \(count) is \(show(got)) but the CPU path gives \(show(want))"
    }

    public static func == (a: SelfCheckResult, b: SelfCheckResult) -> Bool {
        a.op == b.op && a.name == b.name && a.count == b.count && a.firstDifference == b.firstDifference
            && a.got.bitPattern == b.got.bitPattern && a.want.bitPattern == b.want.bitPattern
    }
}

/// Every check of one job on one device.
public struct SelfCheckReport: Sendable, Equatable {
    /// The job the device was checked for.
    public let job: SelfCheckJob
    /// One result per check, in the order they ran.
    public let results: [SelfCheckResult]
    /// Groups that had nothing to check on this backend (no fused path, for example).
    public let notApplicable: [SelfCheckGroup]

    public init(job: SelfCheckJob, results: [SelfCheckResult], notApplicable: [SelfCheckGroup] = []) {
        self.job = job
        self.results = results
        self.notApplicable = notApplicable
    }

    /// Every check passed.
    public var passed: Bool { results.allSatisfy(\.passed) }
    /// The first failing check of `group`, nil if the group passed (or was not checked).
    public func firstFailure(in group: SelfCheckGroup) -> SelfCheckResult? {
        results.first { $0.op.group == group && !$0.passed }
    }
    /// The first failing check of any group.
    public var firstFailure: SelfCheckResult? { results.first { !$0.passed } }
    /// Results of `group`.
    public func results(in group: SelfCheckGroup) -> [SelfCheckResult] { results.filter { $0.op.group == group } }
}

/// One check: an op on a case, run the same way on any backend; returns the outputs as floats.
public struct SelfCheckCase: Sendable {
    public let op: CheckedOp
    public let name: String
    /// Runs the op on `backend`; nil when the backend has no such path (a fused pass it does not offer).
    let candidate: @Sendable (any Backend) throws -> [Float]?
    /// Runs the reference form (op by op for the fused checks) on `backend`.
    let reference: @Sendable (any Backend) throws -> [Float]
}

/// The device self-check (see the file header).
public enum SelfCheck {
    /// Part of every cached verdict's key: bump it when the cases change.
    public static let version = "scratchnet-self-check 1"

    /// The checks of `job`, in a fixed order with fixed inputs.
    public static func cases(for job: SelfCheckJob) -> [SelfCheckCase] {
        job.groups.flatMap { group -> [SelfCheckCase] in
            switch group {
            case .ops: return opCases()
            case .fused: return fusedCases()
            case .training: return trainingCases()
            }
        }
    }

    /// The reference outputs of `cases` (run once on the reference backend; part of the verdict cache's key).
    public static func referenceOutputs(_ cases: [SelfCheckCase], on reference: any Backend) throws -> [[Float]] {
        try cases.map { try $0.reference(reference) }
    }

    /// Runs `cases` on `candidate` and compares with `expected` (``referenceOutputs(_:on:)``).
    public static func check(
        _ candidate: any Backend, cases: [SelfCheckCase], expected: [[Float]], job: SelfCheckJob
    ) throws -> SelfCheckReport {
        var results: [SelfCheckResult] = []
        var skipped: Set<SelfCheckGroup> = []
        let trace = ProcessInfo.processInfo.environment["SCRATCHNET_SELFCHECK_TRACE"] == "1"
        for (c, want) in zip(cases, expected) {
            let start = Date()
            defer {
                if trace {
                    FileHandle.standardError.write(Data("self-check \(c.op.rawValue) \(c.name): \(Date().timeIntervalSince(start)) s\n".utf8))
                }
            }
            guard let got = try c.candidate(candidate) else {
                skipped.insert(c.op.group)
                continue
            }
            results.append(SelfCheckResult(op: c.op, name: c.name, got: got, want: want))
        }
        return SelfCheckReport(
            job: job, results: results, notApplicable: SelfCheckGroup.allCases.filter { skipped.contains($0) })
    }

    /// Runs every check of `job` on both backends (no cache).
    public static func run(
        _ candidate: any Backend, against reference: any Backend, job: SelfCheckJob = .training
    ) throws -> SelfCheckReport {
        let all = cases(for: job)
        return try check(candidate, cases: all, expected: referenceOutputs(all, on: reference), job: job)
    }

    // MARK: - Inputs

    /// n values uniform in `range`, from a generator seeded by `seed` (every case draws its own stream).
    static func values(_ n: Int, _ range: ClosedRange<Float>, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in rng.nextFloat(in: range) }
    }

    /// Values with NaN (canonical and not), ±inf, signed zeros and denormals at fixed places.
    static func special(_ n: Int, seed: UInt64) -> [Float] {
        var v = values(n, -100...100, seed: seed)
        let specials: [Float] = [
            .nan, .infinity, -.infinity, 0x1p-140, -0x1p-140, -0.0, 0, Float(bitPattern: 0xFFC0_0001),
            Float(bitPattern: 0x7F80_0001), 88.73, -103, .greatestFiniteMagnitude,
        ]
        for (i, s) in specials.enumerated() where 3 + 7 * i < n { v[3 + 7 * i] = s }
        return v
    }

    static func matrix(_ be: any Backend, _ values: [Float], _ rows: Int, _ cols: Int) throws -> DeviceMatrix {
        try be.upload(values, rows: rows, cols: cols)
    }

    // MARK: - Element-wise and matrix ops

    static func opCases() -> [SelfCheckCase] {
        var cases: [SelfCheckCase] = []
        func add(_ op: CheckedOp, _ name: String, _ body: @escaping @Sendable (any Backend) throws -> [Float]) {
            cases.append(SelfCheckCase(op: op, name: name, candidate: { try body($0) }, reference: body))
        }
        let (n, k, m) = (33, 47, 29)
        let a = values(n * k, -2...2, seed: 1), w = values(k * m, -1...1, seed: 2), b = values(m, -1...1, seed: 3)
        let e = special(n * m, seed: 4)
        add(.matmul, "matmul (\(n),\(k))·(\(k),\(m))") { be in
            let c = try be.makeMatrix(rows: n, cols: m)
            try be.matmul(matrix(be, a, n, k), matrix(be, w, k, m), into: c)
            return try be.download(c).scalars
        }
        add(.matmul, "matmul (1,\(k))·(\(k),\(m))") { be in
            let c = try be.makeMatrix(rows: 1, cols: m)
            try be.matmul(matrix(be, Array(a[0..<k]), 1, k), matrix(be, w, k, m), into: c)
            return try be.download(c).scalars
        }
        for act in Activation.allCases {
            add(.affine, "affine+\(act.rawValue) (\(n),\(k))·(\(k),\(m))") { be in
                let y = try be.makeMatrix(rows: n, cols: m)
                try be.affine(matrix(be, a, n, k), matrix(be, w, k, m), bias: matrix(be, b, 1, m), activation: act, into: y)
                return try be.download(y).scalars
            }
            add(.affine, "affine+\(act.rawValue) (1,\(k))·(\(k),\(m))") { be in
                let y = try be.makeMatrix(rows: 1, cols: m)
                try be.affine(
                    matrix(be, Array(a[k..<(2 * k)]), 1, k), matrix(be, w, k, m), bias: matrix(be, b, 1, m),
                    activation: act, into: y)
                return try be.download(y).scalars
            }
            add(.apply, "\(act.rawValue) (\(n),\(m)) with NaN/inf/denormals") { be in
                let x = try matrix(be, e, n, m)
                let y = try be.makeMatrix(rows: n, cols: m)
                try be.apply(act, x, into: y)
                return try be.download(y).scalars
            }
            add(.apply, "\(act.rawValue) in place (\(n),\(m)) with NaN/inf/denormals") { be in
                let x = try matrix(be, e, n, m)
                try be.apply(act, x, into: x)
                return try be.download(x).scalars
            }
        }
        let logits = values(n * m, -30...30, seed: 5)
        add(.softmax, "softmax (\(n),\(m))") { be in
            let y = try be.makeMatrix(rows: n, cols: m)
            try be.softmaxRows(matrix(be, logits, n, m), into: y)
            return try be.download(y).scalars
        }
        add(.softmax, "softmax (\(n),\(m)) with NaN/inf") { be in
            let y = try be.makeMatrix(rows: n, cols: m)
            try be.softmaxRows(matrix(be, e, n, m), into: y)
            return try be.download(y).scalars
        }
        let pixels = (0..<(n * 31)).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        add(.bytes, "bytes / 255 (\(n),31)") { be in
            let y = try be.makeMatrix(rows: n, cols: 31)
            try pixels.withUnsafeBufferPointer { try be.write(bytes: $0, dividedBy: 255, to: y) }
            return try be.download(y).scalars
        }
        add(.argmax, "argmax (\(n),\(m)) with NaN/inf") { be in
            try be.argmaxRows(matrix(be, e, n, m)).map { Float($0) }
        }
        return cases
    }

    // MARK: - The fused whole-network pass

    /// A network case: layer widths from the input on, hidden activation, output softmax or not, rows.
    struct NetCase: Sendable {
        let widths: [Int]
        let activation: Activation
        let softmax: Bool
        let rows: Int
        let seed: UInt64

        var label: String {
            widths.map(String.init).joined(separator: "-") + " \(activation.rawValue)\(softmax ? "+softmax" : ""), \(rows) rows"
        }
    }

    static let netCases = [
        // the book's network: k in chunks (784), a narrow last panel (50), 10 classes
        NetCase(widths: [784, 50, 100, 10], activation: .sigmoid, softmax: true, rows: 13, seed: 11),
        // four layers, more rows than one work-group, no softmax
        NetCase(widths: [29, 24, 17, 9, 5], activation: .relu, softmax: false, rows: 70, seed: 12),
        // the widest layer the kernel takes, one row
        NetCase(widths: [40, 256, 8], activation: .sigmoid, softmax: true, rows: 1, seed: 13),
    ]

    static func fusedCases() -> [SelfCheckCase] {
        var cases: [SelfCheckCase] = []
        for net in netCases {
            let k0 = net.widths[0]
            let params: [(w: [Float], b: [Float])] = (1..<net.widths.count).map { l in
                let scale = 2 / Float(net.widths[l - 1]).squareRoot()
                return (
                    values(net.widths[l - 1] * net.widths[l], -scale...scale, seed: net.seed &* 31 &+ UInt64(l)),
                    values(net.widths[l], -0.5...0.5, seed: net.seed &* 37 &+ UInt64(l)))
            }
            let floats = values(net.rows * k0, 0...1, seed: net.seed &* 41)
            let bytes = (0..<(net.rows * k0)).map { UInt8(truncatingIfNeeded: ($0 &* 131 &+ Int(net.seed)) % 256) }
            let outWidth = net.widths[net.widths.count - 1]

            @Sendable func input(_ be: any Backend, fromBytes: Bool) throws -> DeviceMatrix {
                let x = try be.makeMatrix(rows: net.rows, cols: k0)
                if fromBytes {
                    try bytes.withUnsafeBufferPointer { try be.write(bytes: $0, dividedBy: 255, to: x) }
                } else {
                    try floats.withUnsafeBufferPointer { try be.write($0, to: x) }
                }
                return x
            }
            @Sendable func layers(_ be: any Backend) throws -> [DenseLayer] {
                try params.enumerated().map { l, p in
                    DenseLayer(
                        weights: try matrix(be, p.w, net.widths[l], net.widths[l + 1]),
                        bias: try matrix(be, p.b, 1, net.widths[l + 1]),
                        activation: l + 1 < params.count ? net.activation : .identity)
                }
            }
            /// affine per layer, then softmax: the unfused path.
            @Sendable func unfused(_ be: any Backend, fromBytes: Bool) throws -> [Float] {
                var h = try input(be, fromBytes: fromBytes)
                for layer in try layers(be) {
                    let y = try be.makeMatrix(rows: net.rows, cols: layer.weights.cols)
                    try be.affine(h, layer.weights, bias: layer.bias, activation: layer.activation, into: y)
                    h = y
                }
                if net.softmax { try be.softmaxRows(h, into: h) }
                return try be.download(h).scalars
            }
            for fromBytes in [true, false] {
                let source = fromBytes ? "bytes" : "floats"
                cases.append(SelfCheckCase(
                    op: .fusedForward, name: "forward \(net.label), \(source)",
                    candidate: { be in
                        let y = try be.makeMatrix(rows: net.rows, cols: outWidth)
                        guard try be.forward(input(be, fromBytes: fromBytes), layers: layers(be), softmax: net.softmax, into: y)
                        else { return nil }
                        return try be.download(y).scalars
                    },
                    reference: { be in try unfused(be, fromBytes: fromBytes) }))
                cases.append(SelfCheckCase(
                    op: .fusedPredict, name: "predict \(net.label), \(source)",
                    candidate: { be in
                        var out = [Int32](repeating: -1, count: net.rows)
                        let x = try input(be, fromBytes: fromBytes)
                        let ls = try layers(be)
                        guard try out.withUnsafeMutableBufferPointer({ try be.predict(x, layers: ls, softmax: net.softmax, into: $0) })
                        else { return nil }
                        return out.map { Float($0) }
                    },
                    reference: { be in
                        let y = try unfused(be, fromBytes: fromBytes)
                        return (0..<net.rows).map { r in
                            Float(y.withUnsafeBufferPointer {
                                Numerics.argmax(UnsafeBufferPointer(rebasing: $0[(r * outWidth)..<((r + 1) * outWidth)]))
                            })
                        }
                    }))
            }
        }
        return cases
    }

    // MARK: - Training ops

    static func trainingCases() -> [SelfCheckCase] {
        var cases: [SelfCheckCase] = []
        func add(_ op: CheckedOp, _ name: String, _ body: @escaping @Sendable (any Backend) throws -> [Float]) {
            cases.append(SelfCheckCase(op: op, name: name, candidate: { try body($0) }, reference: body))
        }
        let (n, k, m) = (33, 19, 29)
        let x = values(n * k, -2...2, seed: 21), dout = values(n * m, -1...1, seed: 22)
        let w = values(k * m, -1...1, seed: 23)
        add(.matmulTransposedA, "xᵀ·dout (\(n),\(k))ᵀ·(\(n),\(m))") { be in
            let c = try be.makeMatrix(rows: k, cols: m)
            try be.matmulTransposedA(matrix(be, x, n, k), matrix(be, dout, n, m), into: c)
            return try be.download(c).scalars
        }
        add(.matmulTransposedB, "dout·Wᵀ (\(n),\(m))·(\(k),\(m))ᵀ") { be in
            let c = try be.makeMatrix(rows: n, cols: k)
            try be.matmulTransposedB(matrix(be, dout, n, m), matrix(be, w, k, m), into: c)
            return try be.download(c).scalars
        }
        add(.sumColumns, "column sums (\(n),\(m))") { be in
            let y = try be.makeMatrix(rows: 1, cols: m)
            try be.sumColumns(matrix(be, dout, n, m), into: y)
            return try be.download(y).scalars
        }
        let y = values(n * m, 0...1, seed: 24)
        for act in Activation.allCases {
            add(.activationBackward, "\(act.rawValue) backward (\(n),\(m))") { be in
                let dx = try be.makeMatrix(rows: n, cols: m)
                try be.activationBackward(act, output: matrix(be, y, n, m), gradient: matrix(be, dout, n, m), into: dx)
                return try be.download(dx).scalars
            }
        }
        // probabilities (rows sum to ~1), labels (one invalid) and one-hot targets
        let logits = values(n * m, -5...5, seed: 25)
        var labels = (0..<n).map { Float(($0 * 7) % m) }
        labels[5] = Float(m + 3)
        let oneHot = (0..<(n * m)).map { i in Float(i % m == (i / m * 7) % m ? 1 : 0) }
        @Sendable func probabilities(_ be: any Backend) throws -> DeviceMatrix {
            let p = try matrix(be, logits, n, m)
            try be.softmaxRows(p, into: p)
            return p
        }
        for (name, t, cols) in [("labels", labels, 1), ("one-hot", oneHot, m)] {
            add(.crossEntropy, "cross-entropy, \(name) (\(n),\(m))") { be in
                let loss = try matrix(be, [0, 0, 0], 1, 3)
                try be.crossEntropy(probabilities(be), targets: matrix(be, t, n, cols), into: loss, at: 1)
                return try be.download(loss).scalars
            }
            add(.softmaxCrossEntropyBackward, "softmax+cross-entropy backward, \(name) (\(n),\(m))") { be in
                let dx = try be.makeMatrix(rows: n, cols: m)
                try be.softmaxCrossEntropyBackward(probabilities(be), targets: matrix(be, t, n, cols), into: dx)
                return try be.download(dx).scalars
            }
        }
        add(.sumOfSquares, "sum of squares (\(n),\(m))") { be in
            let loss = try matrix(be, [0, 0], 1, 2)
            try be.sumOfSquares(matrix(be, y, n, m), targets: matrix(be, oneHot, n, m), into: loss, at: 0)
            return try be.download(loss).scalars
        }
        let rules: [UpdateRule] = [
            .sgd(lr: 0.1), .momentum(lr: 0.01, momentum: 0.9), .adaGrad(lr: 0.01),
            .adam(lrT: 0.0003, oneMinusBeta1: 0.1, oneMinusBeta2: 0.001),
        ]
        let (pr, pc) = (13, 21)  // 273 values: float8 groups and a tail
        let p0 = values(pr * pc, -1...1, seed: 26), g = values(pr * pc, -1...1, seed: 27)
        for rule in rules {
            add(.update, "update \(rule) (\(pr),\(pc)), two steps") { be in
                let p = try matrix(be, p0, pr, pc), grad = try matrix(be, g, pr, pc)
                let state = try (0..<rule.stateCount).map { _ in try matrix(be, [Float](repeating: 0, count: pr * pc), pr, pc) }
                try be.update(rule, parameter: p, gradient: grad, state: state)
                try be.update(rule, parameter: p, gradient: grad, state: state)
                return try ([p] + state).flatMap { try be.download($0).scalars }
            }
        }
        return cases
    }
}
