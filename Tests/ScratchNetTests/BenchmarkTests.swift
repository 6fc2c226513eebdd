// Throughput of the book's chapter-3 network (784-50-100-10, sigmoid, sigmoid, softmax) on CPUBackend.
// Prints timings, asserts nothing about speed; runs only with SCRATCHNET_BENCH=1 so normal test runs stay
// short:  SCRATCHNET_BENCH=1 swift test -c release --filter ScratchNetTests.BenchmarkTests

import Foundation
import Testing
import ScratchNet

@Suite("Benchmark", .serialized, .enabled(if: ProcessInfo.processInfo.environment["SCRATCHNET_BENCH"] != nil))
struct BenchmarkTests {
    @Test("book network forward, 10,000 images, batch 100 and 10,000", arguments: [1, 2])
    func bookNetwork(threads: Int) throws {
        let cpu = CPUBackend(threads: threads)
        let images = 10_000
        let x = randomTensor(images, 784, in: 0...1, seed: 1)
        let w1 = try cpu.upload(randomTensor(784, 50, in: -0.1...0.1, seed: 2))
        let b1 = try cpu.upload(randomTensor(1, 50, in: -0.1...0.1, seed: 3))
        let w2 = try cpu.upload(randomTensor(50, 100, in: -0.3...0.3, seed: 4))
        let b2 = try cpu.upload(randomTensor(1, 100, in: -0.1...0.1, seed: 5))
        let w3 = try cpu.upload(randomTensor(100, 10, in: -0.3...0.3, seed: 6))
        let b3 = try cpu.upload(randomTensor(1, 10, in: -0.1...0.1, seed: 7))
        for batch in [100, 10_000] {
            let xb = try cpu.makeMatrix(rows: batch, cols: 784)
            let h1 = try cpu.makeMatrix(rows: batch, cols: 50)
            let h2 = try cpu.makeMatrix(rows: batch, cols: 100)
            let out = try cpu.makeMatrix(rows: batch, cols: 10)
            var predictions: [Int] = []
            func pass() throws {
                predictions.removeAll(keepingCapacity: true)
                try x.scalars.withUnsafeBufferPointer { all in
                    for start in stride(from: 0, to: images, by: batch) {
                        try cpu.write(UnsafeBufferPointer(rebasing: all[(start * 784)..<((start + batch) * 784)]), to: xb)
                        try cpu.affine(xb, w1, bias: b1, activation: .sigmoid, into: h1)  // (B,784)·(784,50)
                        try cpu.affine(h1, w2, bias: b2, activation: .sigmoid, into: h2)  // (B,50)·(50,100)
                        try cpu.affine(h2, w3, bias: b3, activation: .identity, into: out)  // (B,100)·(100,10)
                        try cpu.softmaxRows(out, into: out)
                        predictions += try cpu.argmaxRows(out)
                    }
                }
            }
            try pass()  // warm-up: packs the weights, faults in the buffers
            // Wall time, and the process's CPU time: on a shared machine the wall time includes waiting for
            // a core; with one thread, CPU time is what the code itself costs.
            var best = Double.infinity, bestCPU = Double.infinity
            for _ in 0..<7 {
                let t0 = DispatchTime.now().uptimeNanoseconds, c0 = cpuSeconds()
                try pass()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                bestCPU = min(bestCPU, cpuSeconds() - c0)
            }
            #expect(predictions.count == images)
            let rate = Double(images) / best
            print(String(format: "CPUBackend threads %d batch %5d: wall %.2f ms per 10,000 images = %.0fk images/s (%.1f GFLOP/s); CPU time %.2f ms = %.0fk images per CPU-second",
                         threads, batch, best * 1e3, rate / 1e3, rate * 2 * 45_200 / 1e9, bestCPU * 1e3, Double(images) / bestCPU / 1e3))
        }
    }
}

/// CPU time used by this process so far, in seconds (all threads).
private func cpuSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}
