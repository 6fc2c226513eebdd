// write(bytes:dividedBy:to:) on the CPU path: every byte value, odd sizes, the threaded split, errors.

import ScratchNet
import Testing

@Suite("CPUBackend write(bytes:)")
struct ByteWriteTests {
    @Test("Float(byte) / 255, correctly rounded, for every byte value at odd sizes", arguments: [0, 1, 7, 33, 256, 1000, 100_003])
    func everyByte(count: Int) throws {
        let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 256) }
        for threads in [1, 2, 3] {
            let cpu = CPUBackend(threads: threads)
            let m = try cpu.makeMatrix(rows: 1, cols: count)
            try bytes.withUnsafeBufferPointer { try cpu.write(bytes: $0, dividedBy: 255, to: m) }
            let want = bytes.map { Float($0) / 255 }
            #expect(Comparison(try cpu.download(m).scalars, want).isBitwiseEqual, "threads \(threads)")
        }
    }

    @Test("the wrong number of bytes is a shape error naming both counts")
    func wrongCount() throws {
        let cpu = CPUBackend()
        let m = try cpu.makeMatrix(rows: 2, cols: 3)
        let bytes: [UInt8] = [1, 2, 3]
        #expect { try bytes.withUnsafeBufferPointer { try cpu.write(bytes: $0, dividedBy: 255, to: m) } } throws: {
            "\($0)".contains("3 bytes") && "\($0)".contains("(2,3)")
        }
    }
}
