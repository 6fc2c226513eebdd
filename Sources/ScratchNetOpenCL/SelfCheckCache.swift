// The device self-check on OpenCL (SelfCheck.swift in ScratchNet) with its verdict cache: the verdict of a
// device for a job is kept beside the program binaries (ProgramCache.swift), in `selfcheck-KEY.txt`, keyed by
// everything that can change it: the program cache keys of every kernel file (source, build options,
// device, driver, platform), the running binary (size, date), the tunables, the job, the self-check version and a hash of the reference
// outputs (so a change of the CPU path's results also invalidates it). A warm start then runs only the
// reference side on the CPU path (about a millisecond) and reads one small file. Failing verdicts are cached
// too. Injected faults (SCRATCHNET_FAULT) bypass the cache.

import Foundation
import ScratchNet

extension OpenCLBackend {
    /// The OpenCL kernels behind each self-checked op (see `Backend.kernelName(for:)` in ScratchNet).
    public func kernelName(for op: CheckedOp) -> String? {
        switch op {
        case .matmul: return tuning.packedGEMM ? "sn_matmul_packed/sn_matmul" : "sn_matmul"
        case .affine: return tuning.packedGEMM ? "sn_affine_packed/sn_affine" : "sn_affine"
        case .apply: return "sn_apply"
        case .softmax: return "sn_softmax_rows"
        case .argmax: return "sn_argmax_rows"
        case .bytes: return "sn_bytes_to_float"
        case .fusedForward, .fusedPredict: return "sn_net"
        case .matmulTransposedA: return "sn_matmul_tn"
        case .matmulTransposedB: return "sn_matmul_nt"
        case .sumColumns: return "sn_sum_columns"
        case .activationBackward: return "sn_act_backward"
        case .crossEntropy, .sumOfSquares: return lossWorkGroup > 1 ? "sn_loss_group" : "sn_loss"
        case .softmaxCrossEntropyBackward: return "sn_softmax_ce_backward"
        case .update: return "sn_update"
        }
    }

    /// Runs the self-check of `job` against `reference` (the CPU path), or reads its cached verdict.
    /// Returns the report and whether it came from the cache.
    package func selfCheck(job: SelfCheckJob, against reference: any Backend) throws -> (SelfCheckReport, cached: Bool) {
        let cases = SelfCheck.cases(for: job)
        let expected = try SelfCheck.referenceOutputs(cases, on: reference)
        let store = SelfCheckVerdicts(options: cacheOptions)
        let useCache = faults == nil && cacheOptions.enabled
        let key = SelfCheckVerdicts.key(
            programKeys: programKeys, tuning: "\(tuning)", job: job, expected: expected)
        if useCache, let report = store.load(key: key, cases: cases, job: job) { return (report, true) }
        let report = try SelfCheck.check(self, cases: cases, expected: expected, job: job)
        if useCache { store.store(key: key, report: report) }
        return (report, false)
    }
}

/// Reads and writes cached self-check verdicts (see the file header).
package struct SelfCheckVerdicts: Sendable {
    static let header = "scratchnet self-check verdict 1"
    let options: ProgramCacheOptions

    /// The key (32 hex digits) of one verdict.
    package static func key(programKeys: [String], tuning: String, job: SelfCheckJob, expected: [[Float]]) -> String {
        var h = StableHash()
        for part in [SelfCheck.version, job.rawValue, tuning, executableIdentity] + programKeys {
            h.add(Array(part.utf8))
            h.add([0xFF])
        }
        for values in expected {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(values.count * 4 + 1)
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
            bytes.append(0xFE)
            h.add(bytes)
        }
        return h.hex
    }

    /// The running binary (size and modification time of /proc/self/exe): the host code that launches the
    /// kernels changes results too (a fixed launcher must not inherit its predecessor's verdict).
    static let executableIdentity: String = {
        var st = stat()
        guard stat("/proc/self/exe", &st) == 0 else { return CommandLine.arguments.first ?? "" }
        return "\(st.st_size)-\(st.st_mtim.tv_sec)-\(st.st_mtim.tv_nsec)"
    }()

    package func url(forKey key: String) -> URL {
        options.directory.appendingPathComponent("selfcheck-\(key).txt")
    }

    /// The stored report, if there is one that matches `cases` (same ops and names, in order).
    package func load(key: String, cases: [SelfCheckCase], job: SelfCheckJob) -> SelfCheckReport? {
        guard let data = FileManager.default.contents(atPath: url(forKey: key).path) else { return nil }
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.first == Self.header, lines.last == "end" else { return nil }
        lines.removeFirst()
        lines.removeLast()
        var results: [SelfCheckResult] = []
        var notApplicable: [SelfCheckGroup] = []
        for line in lines {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if f.count == 2, f[0] == "n/a", let group = SelfCheckGroup(rawValue: f[1]) {
                notApplicable.append(group)
                continue
            }
            guard f.count == 6, let op = CheckedOp(rawValue: f[0]), let count = Int(f[1]),
                let got = UInt32(f[3], radix: 16), let want = UInt32(f[4], radix: 16)
            else { return nil }
            let first = f[2] == "-" ? nil : Int(f[2])
            guard f[2] == "-" || first != nil else { return nil }
            results.append(SelfCheckResult(
                op: op, name: f[5], count: count, firstDifference: first, got: Float(bitPattern: got),
                want: Float(bitPattern: want)))
        }
        // Every case must be accounted for: run, or in a group that was not applicable.
        let expected = cases.filter { !notApplicable.contains($0.op.group) }
        guard expected.count == results.count,
            zip(expected, results).allSatisfy({ $0.op == $1.op && $0.name == $1.name })
        else { return nil }
        return SelfCheckReport(job: job, results: results, notApplicable: notApplicable)
    }

    /// Stores `report` atomically; best effort (a verdict that cannot be written is only recomputed).
    package func store(key: String, report: SelfCheckReport) {
        var text = Self.header + "\n"
        for g in report.notApplicable { text += "n/a\t\(g.rawValue)\n" }
        for r in report.results {
            text += "\(r.op.rawValue)\t\(r.count)\t\(r.firstDifference.map(String.init) ?? "-")\t"
                + "\(String(r.got.bitPattern, radix: 16))\t\(String(r.want.bitPattern, radix: 16))\t"
                + r.name.replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "\n", with: " ") + "\n"
        }
        text += "end"
        let fm = FileManager.default
        guard (try? fm.createDirectory(at: options.directory, withIntermediateDirectories: true)) != nil else { return }
        let final = url(forKey: key)
        let temp = options.directory.appendingPathComponent(".selfcheck-\(key).\(UUID().uuidString).tmp")
        guard fm.createFile(atPath: temp.path, contents: Data(text.utf8)) else { return }
        if rename(temp.path, final.path) != 0 { try? fm.removeItem(at: temp) }
    }
}
