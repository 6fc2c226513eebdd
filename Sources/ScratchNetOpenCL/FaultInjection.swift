// Fault injection for the OpenCL runtime: `SCRATCHNET_FAULT` makes chosen OpenCL calls fail so that tests
// (and anyone checking a deployment) can run the real error paths on a healthy device. It is read once per
// process; when it is unset nothing here runs (every hook is an `if let faults` on a nil optional).
//
//     SCRATCHNET_FAULT=RULE[,RULE...]     RULE = SITE | SITE:N | alloc>=BYTES | fake-gpu
//
//   alloc     clCreateBuffer is not called; the buffer fails with CL_MEM_OBJECT_ALLOCATION_FAILURE
//   build     the program source gets an `#error` line, so the real compiler fails with
//             CL_BUILD_PROGRAM_FAILURE and a real build log (the binary cache is not read while set)
//   enqueue   clEnqueueNDRangeKernel is not called; the launch fails with CL_OUT_OF_RESOURCES
//   read      clEnqueueReadBuffer is not called; the download fails with CL_OUT_OF_RESOURCES
//   binary    a cached program binary is replaced by garbage before clCreateProgramWithBinary, so the
//             driver rejects it (the program is then rebuilt from source)
//   SITE:N    only the N-th such call (1-based, counted per backend from its creation) fails
//   alloc>=B  only allocations of at least B bytes fail (a device with little memory)
//   fake-gpu  `--device auto` and `gpu` treat the first OpenCL device as a GPU (to run those paths on a
//             machine without one)
//
// Owned handles (CLContext, CLQueue, CLProgram, CLKernel, CLBuffer) register with their context's
// injector while one is set, so tests can check that an injected failure leaks no OpenCL object.

import COpenCL
import Foundation
import ScratchNet

/// The parsed `SCRATCHNET_FAULT` rules (see the file header).
package struct FaultRules: Sendable, Equatable {
    /// The environment variable that holds the rules.
    package static let variable = "SCRATCHNET_FAULT"

    /// Where a fault can be injected.
    package enum Site: String, Sendable, CaseIterable {
        case alloc, build, enqueue, read, binary
    }

    /// One rule: every call of `site`, only the `nth` one, or (alloc) only those of at least `minBytes`.
    package struct Rule: Sendable, Equatable {
        package var site: Site
        package var nth: Int?
        package var minBytes: Int?

        package init(site: Site, nth: Int? = nil, minBytes: Int? = nil) {
            self.site = site
            self.nth = nth
            self.minBytes = minBytes
        }
    }

    package var rules: [Rule]
    /// `fake-gpu`: device selection treats the first OpenCL device as a GPU.
    package var fakeGPU: Bool

    package init(rules: [Rule] = [], fakeGPU: Bool = false) {
        self.rules = rules
        self.fakeGPU = fakeGPU
    }

    /// Whether any rule injects faults at `site`.
    package func contains(_ site: Site) -> Bool { rules.contains { $0.site == site } }

    /// Parses `text` (comma-separated rules). A mistake throws a one-line error naming the rule and the syntax.
    package init(parsing text: String) throws(BackendError) {
        var rules: [Rule] = []
        var fakeGPU = false
        for raw in text.split(separator: ",") {
            let item = raw.trimmingCharacters(in: .whitespaces)
            if item.isEmpty { continue }
            if item == "fake-gpu" {
                fakeGPU = true
                continue
            }
            if item.hasPrefix("alloc>=") {
                guard let bytes = Int(item.dropFirst("alloc>=".count)), bytes > 0 else { throw Self.bad(item, text) }
                rules.append(Rule(site: .alloc, minBytes: bytes))
                continue
            }
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2, let site = Site(rawValue: String(parts[0])) else { throw Self.bad(item, text) }
            if parts.count == 2 {
                guard let n = Int(parts[1]), n >= 1 else { throw Self.bad(item, text) }
                rules.append(Rule(site: site, nth: n))
            } else {
                rules.append(Rule(site: site))
            }
        }
        self.init(rules: rules, fakeGPU: fakeGPU)
    }

    static func bad(_ item: String, _ text: String) -> BackendError {
        .device(
            "\(variable)='\(text)': cannot read '\(item)'; use comma-separated alloc, build, enqueue, read or binary, "
                + "each optionally with :N (only the N-th call fails), alloc>=BYTES, or fake-gpu; unset it for normal runs")
    }

    /// The rules of this process's `SCRATCHNET_FAULT`, read and parsed once; nil when it is unset or empty.
    package static func fromEnvironment() throws(BackendError) -> FaultRules? {
        try environmentRules.get()
    }

    private static let environmentRules: Result<FaultRules?, BackendError> = {
        guard let text = ProcessInfo.processInfo.environment[variable], !text.isEmpty else { return .success(nil) }
        do throws(BackendError) {
            let rules = try FaultRules(parsing: text)
            return .success(rules.rules.isEmpty && !rules.fakeGPU ? nil : rules)
        } catch {
            return .failure(error)
        }
    }()
}

/// The fault state of one OpenCL context: the rules, how many calls of each site have happened, and how
/// many owned OpenCL objects are alive.
package final class FaultInjector: Sendable {
    package let rules: FaultRules
    private let calls = Locked<[FaultRules.Site: Int]>([:])
    private let failed = Locked<[FaultRules.Site: Int]>([:])
    private let live = Locked<[String: Int]>([:])

    package init(_ rules: FaultRules) {
        self.rules = rules
    }

    /// Counts one call at `site` (of `bytes` for allocations) and says whether it must fail.
    package func shouldFail(_ site: FaultRules.Site, bytes: Int = 0) -> Bool {
        let n = calls.withLock { (c: inout [FaultRules.Site: Int]) -> Int in
            c[site, default: 0] += 1
            return c[site, default: 0]
        }
        let fail = rules.rules.contains { rule in
            guard rule.site == site else { return false }
            if let nth = rule.nth, nth != n { return false }
            if let minBytes = rule.minBytes, bytes < minBytes { return false }
            return true
        }
        if fail { failed.withLock { $0[site, default: 0] += 1 } }
        return fail
    }

    /// How many calls of `site` were made to fail so far.
    package func failureCount(_ site: FaultRules.Site) -> Int { failed.withLock { $0[site, default: 0] } }

    /// How many calls of `site` were counted so far.
    package func callCount(_ site: FaultRules.Site) -> Int { calls.withLock { $0[site, default: 0] } }

    func created(_ kind: String) { live.withLock { $0[kind, default: 0] += 1 } }
    func released(_ kind: String) { live.withLock { $0[kind, default: 0] -= 1 } }

    /// Owned OpenCL objects of this context still alive, by kind ("context", "queue", "program", "kernel",
    /// "buffer"); kinds with none are left out.
    package var liveObjects: [String: Int] { live.withLock { $0.filter { $0.value != 0 } } }

    /// The source actually compiled for a build that must fail: the real source plus an `#error` line.
    static func brokenSource(_ source: String) -> String {
        source + "\n#error \"SCRATCHNET_FAULT=build: injected build failure\"\n"
    }
}
