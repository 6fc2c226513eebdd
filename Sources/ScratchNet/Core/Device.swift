// Devices as values: what a backend runs on (DeviceDescription), whether it can promise bitwise parity,
// and how users name the device they want (DeviceSpec: auto | cpu | gpu | opencl | opencl:N).

import Foundation

/// Describes the hardware behind a ``Backend``.
public struct DeviceDescription: Sendable, Hashable, CustomStringConvertible {
    /// Which kind of backend this is.
    public enum Kind: Sendable, Hashable {
        /// The pure-Swift CPU path.
        case cpu
        /// OpenCL device number `index` in ScratchNet's enumeration (platforms in order, then their devices).
        case opencl(index: Int)
    }

    public var kind: Kind
    /// Device name as the driver reports it, or "Swift CPU" for the CPU path.
    public var name: String
    /// "GPU", "CPU", "accelerator", ... (the OpenCL device type), or "host" for the CPU path.
    public var type: String
    /// Platform or implementation, e.g. "Portable Computing Language" or "pure Swift, 2 threads".
    public var platform: String
    /// Whether this device can promise bitwise-identical results with the CPU path.
    public var parity: ParityCapability

    public init(kind: Kind, name: String, type: String, platform: String, parity: ParityCapability) {
        self.kind = kind
        self.name = name
        self.type = type
        self.platform = platform
        self.parity = parity
    }

    /// The short id users pass to `--device`: "cpu" or "opencl:N".
    public var id: String {
        switch kind {
        case .cpu: return "cpu"
        case .opencl(let index): return "opencl:\(index)"
        }
    }

    public var description: String { "\(id) (\(name), \(type), \(platform))" }
}

/// Whether a device's floating point can reproduce the CPU path bit for bit.
public enum ParityCapability: Sendable, Hashable, CustomStringConvertible {
    /// Correctly rounded fma, division and denormals: results are bitwise identical to the CPU path.
    case guaranteed
    /// The device lacks something parity needs; the reasons say what (e.g. "no hardware FMA").
    case notGuaranteed([String])

    public var isGuaranteed: Bool { if case .guaranteed = self { true } else { false } }

    public var description: String {
        switch self {
        case .guaranteed: return "bitwise parity"
        case .notGuaranteed(let why): return "no parity promise: " + why.joined(separator: ", ")
        }
    }
}

/// Which device the user asked for.
public enum DeviceSpec: Sendable, Hashable, CustomStringConvertible {
    /// The first OpenCL GPU, else the pure-Swift CPU path.
    case auto
    /// The pure-Swift CPU path.
    case cpu
    /// The first OpenCL GPU; an error if there is none.
    case gpu
    /// Any OpenCL device: `nil` = the first one, `n` = device number n (see `scratchnet devices`).
    case opencl(Int?)

    /// The environment variable that picks the device when no `--device` flag is given.
    public static let environmentVariable = "SCRATCHNET_DEVICE"

    /// Parses "auto", "cpu", "gpu", "opencl" or "opencl:N" (case-insensitive, surrounding spaces ignored).
    public init(parsing text: String) throws(DeviceSpecError) {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        switch t {
        case "auto", "": self = .auto
        case "cpu": self = .cpu
        case "gpu": self = .gpu
        case "opencl": self = .opencl(nil)
        default:
            if t.hasPrefix("opencl:"), let n = Int(t.dropFirst("opencl:".count)), n >= 0 {
                self = .opencl(n)
            } else {
                throw DeviceSpecError(text: text)
            }
        }
    }

    /// The device to use: the flag if given, else `SCRATCHNET_DEVICE`, else `auto`.
    public static func resolve(flag: String?, environment: [String: String]) throws(DeviceSpecError) -> DeviceSpec {
        if let flag { return try DeviceSpec(parsing: flag) }
        if let env = environment[environmentVariable] { return try DeviceSpec(parsing: env) }
        return .auto
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .cpu: return "cpu"
        case .gpu: return "gpu"
        case .opencl(nil): return "opencl"
        case .opencl(let n?): return "opencl:\(n)"
        }
    }
}

/// A device name that is not one of auto, cpu, gpu, opencl, opencl:N.
public struct DeviceSpecError: Error, Sendable, CustomStringConvertible {
    public let text: String
    public var description: String {
        "unknown device '\(text)': use auto, cpu, gpu, opencl or opencl:N (see `scratchnet devices`)"
    }
}
