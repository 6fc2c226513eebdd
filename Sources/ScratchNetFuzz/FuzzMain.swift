// ScratchNetFuzz: libFuzzer entry points for every ScratchNetIO parser, and a regression runner.
//
// Built with `-sanitize=fuzzer,address -DSCRATCHNET_FUZZ` (see Tests/Fuzz/fuzz.sh) this file defines
// `LLVMFuzzerTestOneInput` and libFuzzer supplies `main`; the parser under test is chosen by the environment
// variable SCRATCHNET_FUZZ_TARGET (pickle, safetensors, npy, npz, idx, gzip, weights). In a normal build it is
// an ordinary executable: `scratchnet-fuzz TARGET FILE_OR_FOLDER...` runs every file through the same entry point
// and reports which ones crash (they would kill the process) or load; a LoadError is the expected outcome for a
// hostile file.

import Foundation
import ScratchNet
import ScratchNetIO

/// The parsers that can be fuzzed, by name.
enum FuzzTarget: String, CaseIterable {
    case pickle, safetensors, npy, npz, idx, gzip, weights

    /// Small limits so that fuzzing explores the limit checks instead of allocating gigabytes.
    static let gzipLimit = 1 << 20

    /// Runs one input through the parser. Returns a short outcome; a LoadError is a normal outcome.
    func run(_ data: Data) -> String {
        do {
            switch self {
            case .pickle:
                return "loaded \(try Pickle.loadArrays(data, source: "fuzz.pkl").count) arrays"
            case .safetensors:
                return "loaded \(try SafeTensors.load(data, source: "fuzz.safetensors").count) tensors"
            case .npy:
                return "loaded shape \(try NumPyFormat.loadNPY(data, source: "fuzz.npy").shape)"
            case .npz:
                return "loaded \(try NumPyFormat.loadNPZ(data, source: "fuzz.npz").count) arrays"
            case .idx:
                // IDX.read (raw or gzip), then the MNIST set built from it as MNIST.load does.
                let (dims, bytes) = try IDX.read(data, source: "fuzz.idx")
                if dims.count == 3 {
                    let set = try MNISTSet(images: bytes, labels: [UInt8](repeating: 0, count: dims[0]), count: dims[0],
                                           rows: dims[1], cols: dims[2], source: "fuzz.idx")
                    let t = set.images(0..<min(set.count, 4), normalize: true, flatten: false)
                    return "loaded \(set.count) images, first shape \(t.shape)"
                }
                if dims.count == 1 {
                    let set = try MNISTSet(images: [], labels: bytes, count: dims[0], rows: 1, cols: 1, source: "fuzz.idx")
                    return "loaded \(set.count) labels"
                }
                return "loaded dims \(dims)"
            case .gzip:
                return "decompressed \(try Gzip.decompressIfNeeded(data, source: "fuzz.gz", maxOutput: Self.gzipLimit).count) bytes"
            case .weights:
                // As WeightsFile.load(url) does: a gzip file inflated to its trailer's size, then the format by magic.
                let plain = try Gzip.decompressDeclared(data, source: "fuzz.weights", maxOutput: Self.gzipLimit)
                return "loaded \(try WeightsFile.load(plain, source: "fuzz.weights").count) arrays"
            }
        } catch {
            return "LoadError: \(error)"
        }
    }
}

/// The regression runner: `scratchnet-fuzz TARGET PATH...` (files or folders of inputs).
func runRegression(_ args: [String]) -> Int32 {
    guard let name = args.first, let target = FuzzTarget(rawValue: name), args.count >= 2 else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")
        print("usage: scratchnet-fuzz \(names) FILE_OR_FOLDER...")
        return 2
    }
    var files: [URL] = []
    let fm = FileManager.default
    for path in args.dropFirst() {
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
            print("\(path): not found")
            return 2
        }
        if isDirectory.boolValue {
            let names = (try? fm.contentsOfDirectory(atPath: path)) ?? []
            files += names.sorted().map { URL(fileURLWithPath: path).appendingPathComponent($0) }
        } else {
            files.append(URL(fileURLWithPath: path))
        }
    }
    for file in files {
        guard let data = try? Data(contentsOf: file) else { print("\(file.path): unreadable"); continue }
        print("\(file.lastPathComponent): \(target.run(data))")
    }
    print("\(files.count) inputs ran through \(target.rawValue) without crashing")
    return 0
}

#if SCRATCHNET_FUZZ

/// The target picked once from SCRATCHNET_FUZZ_TARGET.
let fuzzTarget: FuzzTarget? = {
    let name = ProcessInfo.processInfo.environment["SCRATCHNET_FUZZ_TARGET"] ?? ""
    return FuzzTarget(rawValue: name)
}()

/// libFuzzer's callback: one input through the selected parser.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    _ = fuzzTarget?.run(data)
    return 0
}

/// libFuzzer's driver (in libclang_rt.fuzzer, linked by -sanitize=fuzzer). SwiftPM makes the executable's
/// `main` our @main entry point, so the entry point hands the command line to libFuzzer itself.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@main
struct FuzzMain {
    static func main() {
        guard fuzzTarget != nil else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
            FileHandle.standardError.write(Data("set SCRATCHNET_FUZZ_TARGET to one of: \(names)\n".utf8))
            exit(2)
        }
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzTestOneInput))
    }
}

#else

/// A normal build: the regression runner.
@main
struct FuzzMain {
    static func main() {
        exit(runRegression(Array(CommandLine.arguments.dropFirst())))
    }
}

#endif
