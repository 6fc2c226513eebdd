// Network's own contracts that are not about numerics: a result of `forward` stays the caller's (a second
// call, or another task, must not overwrite it), and `fusedPath: false` gives the fused path's bits.

import ScratchNet
import Testing

@Suite("Network")
struct NetworkTests {
    static func weights() throws -> [String: Tensor] {
        [
            "W1": randomTensor(12, 7, seed: 1), "b1": try randomTensor(1, 7, seed: 2).reshaped([7]),
            "W2": randomTensor(7, 3, seed: 3), "b2": try randomTensor(1, 3, seed: 4).reshaped([3]),
        ]
    }

    @Test("forward's result is not overwritten by the next forward of the same batch size")
    func forwardResultIsTheCallers() throws {
        let backend = CPUBackend()
        let net = try Network(weights: Self.weights(), backend: backend)
        let x1 = try backend.upload(randomTensor(5, 12, seed: 10))
        let x2 = try backend.upload(randomTensor(5, 12, seed: 11))
        let y1 = try net.forward(x1)
        let first = try backend.download(y1)
        let y2 = try net.forward(x2)
        #expect(y1 !== y2)
        #expect(try backend.download(y1) == first, "the first result changed when forward ran again")
        #expect(try backend.download(y2) != first)
    }

    @Test("forward results of concurrent tasks stay each task's own")
    func concurrentForward() async throws {
        let backend = CPUBackend()
        let net = try Network(weights: Self.weights(), backend: backend)
        let inputs = (0..<8).map { randomTensor(4, 12, seed: 100 + UInt64($0)) }
        let expected = try inputs.map { try net.predict($0) }
        try await withThrowingTaskGroup(of: (Int, Tensor).self) { group in
            for (i, x) in inputs.enumerated() {
                group.addTask {
                    let y = try net.forward(backend.upload(x))
                    for _ in 0..<20 { _ = try net.forward(backend.upload(x)) }  // more calls of the same size
                    return (i, try backend.download(y))
                }
            }
            for try await (i, y) in group { #expect(y == expected[i], "task \(i)") }
        }
    }

    @Test("fusedPath: false runs layer by layer with the same bits")
    func layerByLayerSameBits() throws {
        let backend = CPUBackend()
        let x = randomTensor(9, 12, seed: 5)
        let fused = try Network(weights: Self.weights(), backend: backend).predict(x)
        let layers = try Network(weights: Self.weights(), backend: backend, fusedPath: false)
        #expect(!layers.usesFusedPath)
        #expect(try layers.predict(x).scalars.map(\.bitPattern) == fused.scalars.map(\.bitPattern))
    }
}
