// KernelSources: where the OpenCL C text comes from — the Kernels/*.cl files embedded in the binary at build
// time, or a folder (the `kernelDirectory` argument, else the SCRATCHNET_KERNELS environment variable) for
// kernel development without rebuilding. sn_math.cl is prepended to every other file, and the build options
// (correctly rounded division, tunable -D defines, never fast-math) are assembled here.

import Foundation
import ScratchNet

/// The OpenCL C sources ScratchNet builds, and how it builds them.
package struct KernelSources: Sendable {
    /// The environment variable naming a folder of .cl files to use instead of the embedded ones.
    package static let environmentVariable = "SCRATCHNET_KERNELS"
    /// Shared math prepended to every other file.
    package static let mathFile = "sn_math.cl"
    /// The kernel files the backend builds, in build order.
    package static let kernelFiles = ["gemm.cl", "activation.cl", "softmax.cl", "argmax.cl", "net.cl", "train.cl"]

    /// nil = the embedded sources; otherwise the folder the files are read from.
    package let directory: URL?

    /// Picks the folder: `kernelDirectory` if given, else `SCRATCHNET_KERNELS` if set and non-empty, else
    /// the embedded files.
    package init(kernelDirectory: URL?, environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let kernelDirectory {
            directory = kernelDirectory
        } else if let dir = environment[Self.environmentVariable], !dir.isEmpty {
            directory = URL(fileURLWithPath: dir, isDirectory: true)
        } else {
            directory = nil
        }
    }

    /// "embedded" or the folder path, for messages.
    package var origin: String { directory.map { $0.path } ?? "embedded" }

    /// The text of one embedded kernel file, if it exists.
    package static func embeddedText(_ name: String) -> String? {
        EmbeddedKernels.files[name].map { String(decoding: $0, as: UTF8.self) }
    }

    /// The raw text of `name` from the chosen origin.
    package func text(of name: String) throws(BackendError) -> String {
        guard let directory else {
            guard let text = Self.embeddedText(name) else {
                throw .device("kernel file \(name) is not embedded in this build (rebuild the package)")
            }
            return text
        }
        let url = directory.appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw .device(
                "kernel file \(name) not found in \(directory.path) (the kernel folder given by kernelDirectory or "
                    + "\(Self.environmentVariable)); it must contain \(([Self.mathFile] + Self.kernelFiles).joined(separator: ", "))")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The name used in build errors: the file name, with its folder when it was read from one.
    package func displayName(of name: String) -> String {
        directory.map { $0.appendingPathComponent(name).path } ?? name
    }

    /// sn_math.cl followed by `name`, with a #line directive so compiler messages give the file's own lines.
    package func programSource(for name: String) throws(BackendError) -> String {
        let math = try text(of: Self.mathFile)
        let body = try text(of: name)
        return math + "\n#line 1 \"\(name)\"\n" + body
    }

    /// Build options: correctly rounded division where the device supports it (it must, for parity) and the
    /// tunables as -D defines. Never -cl-fast-relaxed-math, -cl-mad-enable or -cl-unsafe-math-optimizations.
    package static func buildOptions(correctlyRoundedDivide: Bool, defines: [(String, Int)]) -> String {
        var options: [String] = []
        if correctlyRoundedDivide { options.append("-cl-fp32-correctly-rounded-divide-sqrt") }
        for (name, value) in defines { options.append("-D \(name)=\(value)") }
        return options.joined(separator: " ")
    }
}
