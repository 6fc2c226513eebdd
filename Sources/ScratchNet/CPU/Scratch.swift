// Scratch memory of the CPU backend's threads: the packed-A block of the GEMM and the activations of the
// fused forward pass. Buffers are lent from a pool and kept for reuse, so in steady state no op allocates.

import Foundation

/// One thread's working memory for one op: grown on demand, never shrunk, reused across calls.
final class Scratch: @unchecked Sendable {
    // @unchecked Sendable: a Scratch is used by one thread at a time (taken from and given back to a
    // ScratchPool, whose lock orders the hand-overs).

    private var pack: UnsafeMutablePointer<Float>?
    private var floats: UnsafeMutablePointer<Float>?
    private var capacity = 0
    /// The fused forward's per-layer plan, rebuilt by the calling thread on each call (capacity kept).
    var plan: [FusedLayer] = []

    /// The GEMM's packed-A block: GEMM.packFloats floats, allocated on first use.
    func packBuffer() -> UnsafeMutablePointer<Float> {
        if let pack { return pack }
        let p = Scratch.allocate(GEMM.packFloats)
        pack = p
        return p
    }

    /// At least `count` floats (64-byte aligned, contents undefined), reallocated only when too small.
    func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
        if let floats, capacity >= count { return floats }
        if let floats { UnsafeMutableRawPointer(floats).deallocate() }
        let p = Scratch.allocate(count)
        floats = p
        capacity = Swift.max(count, 16)
        return p
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let n = Swift.max(count, 16)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * MemoryLayout<Float>.stride, alignment: 64)
        return raw.initializeMemory(as: Float.self, repeating: 0, count: n)
    }

    deinit {
        if let pack { UnsafeMutableRawPointer(pack).deallocate() }
        if let floats { UnsafeMutableRawPointer(floats).deallocate() }
    }
}

/// A free list of ``Scratch``: each op (and each of its threads) takes one and gives it back. As many
/// exist as were ever in use at once (threads × concurrent callers).
final class ScratchPool: @unchecked Sendable {
    // @unchecked Sendable: `free` is guarded by `lock`.
    private let lock = NSLock()
    private var free: [Scratch] = []

    init() { free.reserveCapacity(8) }

    func take() -> Scratch {
        lock.lock()
        let s = free.popLast()
        lock.unlock()
        return s ?? Scratch()
    }

    func give(_ s: Scratch) {
        lock.lock()
        free.append(s)
        lock.unlock()
    }
}
