// ProgramCache: the persistent cache of built OpenCL program binaries that makes a warm start skip the
// OpenCL C compiler. One file per program in `$XDG_CACHE_HOME/scratchnet` (default `~/.cache/scratchnet`),
// named by a hash of everything that changes the binary: the kernel source, the build options, the device
// name, the driver and platform versions and ScratchNet's cache version. Files are written atomically
// (temporary file + rename) and carry a checksum; a file that is corrupt, truncated or rejected by the
// driver is ignored, the program is rebuilt from source and the file replaced. `SCRATCHNET_NO_CACHE=1`
// turns the cache off.

import Foundation

/// Where and whether ``OpenCLBackend`` keeps built program binaries between runs.
public struct ProgramCacheOptions: Sendable, Equatable {
    /// The environment variable that turns the cache off when set to `1`.
    public static let disableVariable = "SCRATCHNET_NO_CACHE"

    /// The folder holding the cached binaries.
    public var directory: URL
    /// false: always build from source and never read or write the folder.
    public var enabled: Bool

    /// A cache in `directory`, on or off.
    public init(directory: URL, enabled: Bool = true) {
        self.directory = directory
        self.enabled = enabled
    }

    /// The default: `$XDG_CACHE_HOME/scratchnet`, else `~/.cache/scratchnet`; off when
    /// `SCRATCHNET_NO_CACHE=1`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Self {
        let base: URL
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            base = URL(fileURLWithPath: xdg, isDirectory: true)
        } else {
            let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
            base = URL(fileURLWithPath: home, isDirectory: true).appendingPathComponent(".cache", isDirectory: true)
        }
        return Self(
            directory: base.appendingPathComponent("scratchnet", isDirectory: true),
            enabled: environment[disableVariable] != "1")
    }
}

/// Reads and writes cached program binaries (see the file header).
package struct ProgramCache: Sendable {
    /// Part of every key: bump it when the cache format or anything else that changes binaries changes.
    package static let version = "scratchnet-program-cache 1"
    /// File header magic ("SNPB") and format version.
    static let magic: [UInt8] = Array("SNPB1\n".utf8)

    package let options: ProgramCacheOptions

    package init(options: ProgramCacheOptions) {
        self.options = options
    }

    /// The key (32 hex digits) of one program: hash of source, options, device, driver, platform, version.
    package static func key(source: String, options: String, device: String, driver: String, platform: String) -> String {
        var h = StableHash()
        for part in [version, device, driver, platform, options, source] {
            h.add(Array(part.utf8))
            h.add([0xFF])  // separator: ("ab","c") and ("a","bc") differ
        }
        return h.hex
    }

    /// The file of `key`.
    package func url(forKey key: String) -> URL {
        options.directory.appendingPathComponent("\(key).bin")
    }

    /// The cached binary for `key`, or nil if there is none or it is damaged (bad magic, length or checksum).
    package func load(key: String) -> [UInt8]? {
        guard options.enabled, let data = FileManager.default.contents(atPath: url(forKey: key).path) else { return nil }
        let bytes = [UInt8](data)
        let headerCount = Self.magic.count + 16
        guard bytes.count > headerCount, Array(bytes[0..<Self.magic.count]) == Self.magic else { return nil }
        let length = Self.readUInt64(bytes, at: Self.magic.count)
        let sum = Self.readUInt64(bytes, at: Self.magic.count + 8)
        guard length == UInt64(bytes.count - headerCount) else { return nil }
        let payload = Array(bytes[headerCount...])
        var h = StableHash()
        h.add(payload)
        return h.low == sum ? payload : nil
    }

    /// Stores `binary` under `key` atomically (temporary file in the same folder, then rename). Best effort:
    /// a cache that cannot be written only costs the next start a source build. Returns whether it was written.
    @discardableResult
    package func store(key: String, binary: [UInt8]) -> Bool {
        guard options.enabled, !binary.isEmpty else { return false }
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: options.directory, withIntermediateDirectories: true)
        } catch {
            return false
        }
        var h = StableHash()
        h.add(binary)
        var file = Self.magic
        Self.appendUInt64(&file, UInt64(binary.count))
        Self.appendUInt64(&file, h.low)
        file += binary
        let final = url(forKey: key)
        let temp = options.directory.appendingPathComponent(".\(key).\(UUID().uuidString).tmp")
        guard fm.createFile(atPath: temp.path, contents: Data(file)) else { return false }
        guard rename(temp.path, final.path) == 0 else {
            try? fm.removeItem(at: temp)
            return false
        }
        return true
    }

    static func readUInt64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        return v
    }

    static func appendUInt64(_ bytes: inout [UInt8], _ value: UInt64) {
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }
}

/// A stable 128-bit hash (two FNV-1a 64 lanes with different offsets) for cache keys and checksums. Not
/// cryptographic: it only has to tell different inputs apart, the same way in every process.
struct StableHash {
    private var a: UInt64 = 0xCBF2_9CE4_8422_2325
    private var b: UInt64 = 0x6C62_272E_07BB_0142

    mutating func add(_ bytes: [UInt8]) {
        for byte in bytes {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            b = (b ^ UInt64(byte ^ 0x5A)) &* 0x0000_0100_0000_01B3
        }
    }

    var low: UInt64 { a }

    var hex: String {
        func h(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return h(a) + h(b)
    }
}
