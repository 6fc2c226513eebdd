// Kernel folders with one deliberately wrong kernel, for the tests of the self-check and of what a failing
// device does (the OpenCL tests and the CLI tests share them; package access, not public API). Each folder
// holds every embedded kernel file, one of them edited; point SCRATCHNET_KERNELS or `kernelDirectory` at it.

import Foundation
import ScratchNet

package enum FaultyKernels {
    /// The fused network's epilogue adds 1e-3 to every output of every layer: only sn_net is wrong.
    package static func fusedNet() throws -> URL {
        try make(file: "net.cl", replacing: "sn_activate8(acc[r][v] + bb, act)", with: "sn_activate8(acc[r][v] + bb + 1e-3f, act)")
    }

    /// sn_apply returns x + 1 for the identity: an element-wise op outside the fused kernel is wrong.
    package static func apply() throws -> URL {
        try make(file: "activation.cl", replacing: "y[i] = sn_activate(x[i], act);", with: "y[i] = act == 0 ? x[i] + 1.0f : sn_activate(x[i], act);")
    }

    /// A fresh temporary folder with every kernel file, `original` replaced by `replacement` in `file`.
    package static func make(file: String, replacing original: String, with replacement: String) throws -> URL {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("scratchnet-faulty-kernels-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        for name in [KernelSources.mathFile] + KernelSources.kernelFiles {
            guard var text = KernelSources.embeddedText(name) else {
                throw BackendError.device("FaultyKernels: no embedded \(name)")
            }
            if name == file {
                guard text.contains(original) else {
                    throw BackendError.device("FaultyKernels: \(file) no longer contains `\(original)`")
                }
                text = text.replacingOccurrences(of: original, with: replacement)
            }
            try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return dir
    }
}
