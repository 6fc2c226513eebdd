// write(bytes:dividedBy:to:) on OpenCL: bytes uploaded and normalised on the device, bitwise equal to
// Float(byte) / 255 on the host, at odd sizes, reusing and growing the staging buffer.

import ScratchNet
import ScratchNetOpenCL
import Testing

@Suite("OpenCL write(bytes:)")
struct OpenCLByteWriteTests {
    @Test("Float(byte) / 255 on the device equals the host's, every byte value", arguments: [1, 7, 33, 256, 1000, 100_003, 5])
    func everyByte(count: Int) throws {
        guard let backend = TestDevice.backend() else { return }
        let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 256) }
        let m = try backend.makeMatrix(rows: 1, cols: count)
        try bytes.withUnsafeBufferPointer { try backend.write(bytes: $0, dividedBy: 255, to: m) }
        let want = bytes.map { Float($0) / 255 }
        #expect(Comparison(try backend.download(m).scalars, want).isBitwiseEqual)
    }

    @Test("empty matrices and a wrong byte count")
    func edges() throws {
        guard let backend = TestDevice.backend() else { return }
        let empty = try backend.makeMatrix(rows: 0, cols: 784)
        try [UInt8]().withUnsafeBufferPointer { try backend.write(bytes: $0, dividedBy: 255, to: empty) }
        let m = try backend.makeMatrix(rows: 2, cols: 3)
        #expect(throws: BackendError.self) {
            try [UInt8](repeating: 1, count: 5).withUnsafeBufferPointer { try backend.write(bytes: $0, dividedBy: 255, to: m) }
        }
    }
}
