// CPUStorage: the memory behind a DeviceMatrix of the pure-Swift CPU backend — 64-byte-aligned floats
// freed in deinit, a version counter bumped by every write, and a cache of the matrix packed into GEMM
// column panels (used when the matrix is the right-hand operand B of a matmul/affine, e.g. a weight).

import Foundation

/// Host memory owned by ``CPUBackend``: `count` floats, 64-byte aligned, freed when the last
/// ``DeviceMatrix`` referring to it goes away.
///
/// Every backend op that writes into the storage bumps its version; the packed copy of the matrix
/// that the GEMM keeps for right-hand operands is rebuilt when the version it was made from is stale.
public final class CPUStorage: DeviceStorage, @unchecked Sendable {
    // @unchecked Sendable: `base` is only written by backend ops (callers must not run two ops that write
    // the same matrix concurrently, as with any device buffer); `version` and `packed` are guarded by `lock`.

    /// Number of floats.
    public let count: Int
    /// The first float; valid even for an empty matrix (one cache line is always allocated). Backend ops
    /// write through it and then call ``didWrite()``.
    let base: UnsafeMutablePointer<Float>

    private let lock = NSLock()
    private var version: UInt64 = 0
    private var packed: PackedPanels?

    /// Allocates `count` floats, 64-byte aligned, zero-filled (so a matrix read before it is written
    /// gives the same bits every run).
    init(count: Int) {
        precondition(count >= 0, "CPUStorage: negative size")  // makeMatrix checks shapes first
        self.count = count
        let floats = Swift.max(count, 16)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: floats * MemoryLayout<Float>.stride, alignment: 64)
        self.base = raw.initializeMemory(as: Float.self, repeating: 0, count: floats)
    }

    deinit {
        UnsafeMutableRawPointer(base).deallocate()
    }

    /// The floats, read-only (row-major).
    var buffer: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: base, count: count) }

    /// Marks the contents as changed, invalidating the packed copy.
    func didWrite() {
        lock.lock()
        version &+= 1
        lock.unlock()
    }

    /// This matrix (rows × cols, row-major) packed into GEMM column panels: the cached copy if it was made
    /// from the current contents with the same shape, else a fresh one (which replaces the cache). The
    /// caller holds its own reference, so a concurrent repack cannot free panels under a running GEMM.
    func packed(rows: Int, cols: Int) -> PackedPanels {
        lock.lock()
        defer { lock.unlock() }
        if let p = packed, p.version == version, p.rows == rows, p.cols == cols { return p }
        let p = PackedPanels(packing: UnsafePointer(base), rows: rows, cols: cols, version: version)
        packed = p
        return p
    }
}
