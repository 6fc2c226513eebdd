// A value behind a lock, for the few pieces of shared mutable state (workspace pools, cached device
// buffers, fault-injection counters). It exists instead of `Synchronization.Mutex` because on Linux
// Mutex locks with raw futex calls that ThreadSanitizer does not see: four threads appending to a
// `Mutex<[Int]>` give 7-8 race reports under `-sanitize=thread`, the same loop with `NSLock` none
// (Tests/Sanitizers/mutex_tsan.swift). NSLock is a pthread mutex, which TSan models, so
// `swift test --sanitize=thread` reports only real races.

import Foundation

/// A value that is only read or written while holding a lock.
package final class Locked<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is touched only inside `withLock`, which holds `lock`.
    private let lock = NSLock()
    private var value: Value

    /// Wraps `value`.
    package init(_ value: Value) { self.value = value }

    /// Runs `body` with exclusive access to the value and returns what it returns.
    package func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
