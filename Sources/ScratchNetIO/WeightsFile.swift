// WeightsFile: loads a weights file of any supported format, choosing the reader by the file's first bytes
// (not its name): pickle (0x80 PROTO), .npz (zip 'PK'), .npy ('\x93NUMPY'), safetensors (a length then '{'),
// each optionally gzip-compressed.

import Foundation
import ScratchNet

/// Loading named weight arrays from a file.
public enum WeightsFile {
    /// The largest (decompressed) weights file accepted. A gzip-compressed file is also held to the size its
    /// gzip trailer declares, so it inflates no further than that (and below 4 GiB, the trailer's range).
    public static let maxSize = 1 << 32

    /// Loads the arrays of the file at `url`, detecting the format by its magic bytes: pickle (0x80 PROTO),
    /// safetensors, `.npz` ('PK'), `.npy` ('\x93NUMPY'); a gzip-compressed file is decompressed first. A `.npy`
    /// file yields one entry named after the file (without extension).
    public static func load(_ url: URL) throws(LoadError) -> [String: Tensor] {
        let source = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
            throw LoadError(source, "weights file not found", fix: "pass --weights FILE, set SCRATCHNET_WEIGHTS, or download the book's sample_weight.pkl (scratchnet download)")
        }
        guard !isDirectory.boolValue else {
            throw LoadError(source, "is a folder, not a weights file", fix: "pass the file itself, e.g. --weights \(url.appendingPathComponent("sample_weight.pkl").path)")
        }
        var data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw LoadError(source, "cannot read the file (\(error.localizedDescription))", fix: "check its permissions")
        }
        data = try Gzip.decompressDeclared(data, source: source, maxOutput: maxSize)
        var name = url.deletingPathExtension().lastPathComponent
        if url.pathExtension == "gz" { name = URL(fileURLWithPath: name).deletingPathExtension().lastPathComponent }
        return try load(data, source: source, name: name)
    }

    /// The `__metadata__` strings of a safetensors file (e.g. "activation" written by `scratchnet train`);
    /// [:] for other formats or unreadable files.
    public static func metadata(_ url: URL) -> [String: String] {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return [:] }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 8), head.count == 8 else { return [:] }
        var size = 0
        for b in head.reversed() { size = (size << 8) | Int(b) }
        guard size > 0, size <= 100_000_000, let header = try? handle.read(upToCount: size), header.count == size else { return [:] }
        return SafeTensors.metadata(head + header)
    }

    /// Loads arrays from file contents already in memory (see ``load(_:)``); `name` keys a lone `.npy` array.
    public static func load(_ data: Data, source: String, name: String = "array") throws(LoadError) -> [String: Tensor] {
        let head = [UInt8](data.prefix(9))
        if head.count >= 2, head[0] == 0x80, (2...5).contains(head[1]) {
            return try Pickle.loadArrays(data, source: source)
        }
        if head.count >= 4, head[0] == 0x50, head[1] == 0x4B, (head[2] == 3 && head[3] == 4) || (head[2] == 5 && head[3] == 6) {
            return try NumPyFormat.loadNPZ(data, source: source)
        }
        if head.count >= 6, Array(head[0..<6]) == NumPyFormat.magic {
            return [name: try NumPyFormat.loadNPY(data, source: source)]
        }
        if head.count == 9, head[8] == UInt8(ascii: "{") {
            return try SafeTensors.load(data, source: source)
        }
        let shown = head.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
        throw LoadError(source, "unknown weights format (first bytes: \(shown.isEmpty ? "none, the file is empty" : shown))",
                        fix: "use a NumPy pickle (protocol 2-5), .npz, .npy or .safetensors file")
    }
}
