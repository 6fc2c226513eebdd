// WorkerPool: the CPU backend's own threads for splitting a GEMM across cores.
//
// Plain Foundation threads, started on first use, polling briefly and then parked on a condition
// variable between jobs; the calling thread runs chunk 0 itself and every thread then claims the next
// unclaimed chunk until none is left (so a late thread costs nothing but its share). Compared with DispatchQueue.concurrentPerform this gives each
// backend its own fixed set of threads (no dependence on the process-wide Dispatch pool, which Swift
// concurrency and other libraries share) and an exact chunk -> thread mapping.

import Dispatch
import Foundation

/// A fixed set of parked worker threads that run the chunks of one job at a time.
final class WorkerPool: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is in `State`, guarded by its condition's lock; `runLock`
    // serialises jobs (a second concurrent caller runs its chunks itself rather than waiting).

    /// Shared between the pool and its threads (the threads do not keep the pool alive).
    private final class State: @unchecked Sendable {
        let condition = NSCondition()
        var job: (@Sendable (Int) -> Void)?
        /// Chunks of the current job, how many were claimed, how many finished.
        var chunks = 0
        var claimed = 0
        var finished = 0
        var generation = 0
        var shutdown = false

        /// The next unclaimed chunk of the current job (with the job), or nil. Call with the lock held.
        func claim() -> (Int, @Sendable (Int) -> Void)? {
            guard let job, claimed < chunks else { return nil }
            claimed += 1
            return (claimed - 1, job)
        }
    }

    private let state = State()
    private let runLock = NSLock()
    /// Number of extra threads (the caller is the last worker).
    let workers: Int
    private var started = false

    /// A pool that can run up to `workers + 1` chunks at once (the caller plus `workers` threads).
    init(workers: Int) {
        self.workers = Swift.max(0, workers)
    }

    deinit {
        state.condition.lock()
        state.shutdown = true
        state.condition.broadcast()
        state.condition.unlock()
    }

    /// Runs `body(0) ..< body(chunks)` in parallel and returns when all have finished. Chunks are claimed
    /// one at a time by the caller and the pool threads, so a thread that wakes late (or is descheduled
    /// on a busy machine) simply gets fewer chunks: the caller never waits for a thread that has not
    /// started one. If another job is running, this one runs serially on the caller.
    func run(chunks: Int, _ body: @escaping @Sendable (Int) -> Void) {
        guard chunks > 1, workers > 0, runLock.try() else {
            for i in 0..<chunks { body(i) }
            return
        }
        defer { runLock.unlock() }
        if !started { startThreads() }
        let s = state
        s.condition.lock()
        s.job = body
        s.chunks = chunks
        s.claimed = 1  // chunk 0 is the caller's
        s.finished = 0
        s.generation += 1
        s.condition.broadcast()
        s.condition.unlock()

        var next: Int? = 0
        while let i = next {
            body(i)
            s.condition.lock()
            s.finished += 1
            next = s.claim()?.0
            s.condition.unlock()
        }

        // Usually the others finish at about the same time as the caller: poll briefly before sleeping.
        _ = WorkerPool.spin(s) { $0.finished == $0.chunks }
        s.condition.lock()
        while s.finished < s.chunks { s.condition.wait() }
        s.job = nil
        s.condition.unlock()
    }

    /// How long a thread polls for the next event before parking on the condition: a wake-up through the
    /// kernel costs tens of µs on this kind of VM, and the next job of a batched forward pass usually
    /// comes within that. Bounded, so an idle backend does not burn a core.
    static let spinNanoseconds: UInt64 = 200_000

    /// Polls `done` (under the state's lock) for up to ``spinNanoseconds``.
    private static func spin(_ state: State, until done: (State) -> Bool) -> Bool {
        let start = DispatchTime.now().uptimeNanoseconds
        while true {
            state.condition.lock()
            let ok = done(state)
            state.condition.unlock()
            if ok { return true }
            if DispatchTime.now().uptimeNanoseconds &- start > spinNanoseconds { return false }
        }
    }

    private func startThreads() {
        started = true
        for index in 1...workers {
            let s = state
            let thread = Thread {
                var seen = 0
                while true {
                    _ = WorkerPool.spin(s) { $0.generation != seen || $0.shutdown }
                    s.condition.lock()
                    while s.generation == seen && !s.shutdown { s.condition.wait() }
                    if s.shutdown { s.condition.unlock(); return }
                    seen = s.generation
                    var work = s.claim()
                    s.condition.unlock()
                    while let (i, job) = work {
                        job(i)
                        s.condition.lock()
                        s.finished += 1
                        if s.finished == s.chunks { s.condition.broadcast() }
                        work = s.claim()
                        s.condition.unlock()
                    }
                }
            }
            thread.name = "ScratchNet CPU worker \(index)"
            thread.start()
        }
    }
}
