// Device enumeration: every OpenCL device of every platform, numbered globally (platforms in driver order,
// then their devices), with what `scratchnet devices` shows and whether each can promise bitwise parity.
// When there is no device at all, the enumeration says why in words a user can act on.

import COpenCL
import Foundation
import ScratchNet

/// One OpenCL device as ScratchNet numbers and describes it (`opencl:index`).
public struct OpenCLDeviceInfo: Sendable, Hashable, CustomStringConvertible {
    /// Global device number: platforms in order, then their devices (the N in `opencl:N`).
    public let index: Int
    /// Platform name, e.g. "Portable Computing Language".
    public let platformName: String
    /// Platform vendor, e.g. "The pocl project".
    public let platformVendor: String
    /// Platform version string, e.g. "OpenCL 3.0 PoCL 3.1+debian ...".
    public let platformVersion: String
    /// Device name as the driver reports it.
    public let name: String
    /// Device vendor.
    public let vendor: String
    /// "GPU", "CPU", "accelerator", "custom" or "unknown".
    public let type: String
    /// CL_DEVICE_MAX_COMPUTE_UNITS.
    public let computeUnits: Int
    /// CL_DEVICE_GLOBAL_MEM_SIZE in bytes.
    public let globalMemoryBytes: UInt64
    /// CL_DEVICE_MAX_MEM_ALLOC_SIZE in bytes (the largest single buffer).
    public let maxAllocationBytes: UInt64
    /// CL_DEVICE_MAX_WORK_GROUP_SIZE: the most work-items in one work-group, for any kernel.
    public let maxWorkGroupSize: Int
    /// CL_DEVICE_MAX_WORK_ITEM_SIZES: the largest local size in each dimension.
    public let maxWorkItemSizes: [Int]
    /// CL_DEVICE_LOCAL_MEM_SIZE in bytes (the local memory one work-group may use).
    public let localMemoryBytes: UInt64
    /// CL_DEVICE_VERSION, e.g. "OpenCL 3.0 PoCL ...".
    public let deviceVersion: String
    /// CL_DEVICE_OPENCL_C_VERSION, e.g. "OpenCL C 1.2 PoCL".
    public let openCLCVersion: String
    /// CL_DRIVER_VERSION.
    public let driverVersion: String
    /// The CL_DEVICE_SINGLE_FP_CONFIG flags in words ("denormals", "fma", ...).
    public let floatCapabilities: [String]
    /// Whether results on this device are bitwise identical to the CPU path (fma, correctly rounded
    /// divide/sqrt and denormals all present).
    public let parity: ParityCapability

    /// "opencl:N".
    public var id: String { "opencl:\(index)" }

    /// The launch limits, for fitting local sizes (DeviceLimits.swift).
    package var limits: OpenCLDeviceLimits {
        OpenCLDeviceLimits(
            maxWorkGroupSize: maxWorkGroupSize, maxWorkItemSizes: maxWorkItemSizes,
            localMemoryBytes: Int(clamping: localMemoryBytes))
    }

    /// "opencl:N (name, type, platform)".
    public var description: String { "\(id) (\(name), \(type), \(platformName))" }
}

/// The result of looking for OpenCL devices.
public struct OpenCLEnumeration: Sendable {
    /// Every device found, in ScratchNet's global order (`devices[i].index == i`).
    public let devices: [OpenCLDeviceInfo]
    /// Why nothing was found, when `devices` is empty (e.g. no platform installed); nil otherwise.
    public let reason: String?
    /// Platforms or devices that could not be queried while others could (one line each).
    public let warnings: [String]

    /// A short summary such as "1 CPU device (pthread-haswell-AMD EPYC)" or the reason nothing was found.
    public var summary: String {
        if devices.isEmpty { return reason ?? "no OpenCL device found" }
        let names = devices.map(\.name).joined(separator: ", ")
        var byType: [String: Int] = [:]
        for d in devices { byType[d.type, default: 0] += 1 }
        let kinds = byType.sorted { $0.key < $1.key }
            .map { "\($0.value) \($0.key) device\($0.value == 1 ? "" : "s")" }.joined(separator: ", ")
        return "\(kinds) (\(names))"
    }
}

/// Finds the OpenCL devices of this machine.
public enum OpenCLDevices {
    /// Lists every OpenCL device; never throws (problems end up in `reason`/`warnings`). The drivers are
    /// asked once per process; later calls return the same list.
    public static func enumerate() -> OpenCLEnumeration {
        let found = discover()
        return OpenCLEnumeration(devices: found.devices.map(\.info), reason: found.reason, warnings: found.warnings)
    }

    /// A device with its raw handles (handles are only valid in this process).
    struct Found {
        let platform: cl_platform_id
        let device: cl_device_id
        let info: OpenCLDeviceInfo
    }

    /// The error text for `opencl:index` when only `count` (> 0) devices exist.
    static func outOfRangeMessage(index: Int, count: Int) -> String {
        "opencl:\(index) does not exist: \(count) OpenCL device\(count == 1 ? "" : "s") found "
            + "(opencl:0\(count > 1 ? "...opencl:\(count - 1)" : "")); see `scratchnet devices`"
    }

    /// CL_PLATFORM_NOT_FOUND_KHR (cl_ext.h, not in cl.h): what the ICD loader returns with no platform installed.
    static let clPlatformNotFoundKHR: cl_int = -1001

    /// The help line shown when no OpenCL platform is installed.
    static let installHint = "install one, e.g. `apt-get install pocl-opencl-icd` (CPU) or your GPU vendor's OpenCL driver"

    /// The discovery result, computed once per process. Platform and device ids stay valid for the life of
    /// the process, and the ICD loader (ocl-icd) is not safe against concurrent first calls of
    /// clGetPlatformIDs, so every caller goes through this one thread-safe lazy initialisation.
    private static let cached = Discovery(discoverNow())

    /// An immutable discovery result; @unchecked because the raw ids are opaque pointers (ids, not memory
    /// we own; OpenCL allows using them from any thread).
    private final class Discovery: @unchecked Sendable {
        let value: (devices: [Found], reason: String?, warnings: [String])
        init(_ value: (devices: [Found], reason: String?, warnings: [String])) { self.value = value }
    }

    /// Enumerates platforms and devices (once per process), keeping the handles for backends.
    static func discover() -> (devices: [Found], reason: String?, warnings: [String]) {
        cached.value
    }

    private static func discoverNow() -> (devices: [Found], reason: String?, warnings: [String]) {
        var platformCount: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &platformCount)
        if status == clPlatformNotFoundKHR || (status == CL_SUCCESS && platformCount == 0) {
            return ([], "no OpenCL platform found (CL_PLATFORM_NOT_FOUND_KHR): \(installHint)", [])
        }
        if status != CL_SUCCESS {
            return ([], "cannot list OpenCL platforms: \(OpenCLError(code: status, call: "clGetPlatformIDs"))", [])
        }
        var platforms = [cl_platform_id?](repeating: nil, count: Int(platformCount))
        let status2 = clGetPlatformIDs(platformCount, &platforms, nil)
        if status2 != CL_SUCCESS {
            return ([], "cannot list OpenCL platforms: \(OpenCLError(code: status2, call: "clGetPlatformIDs"))", [])
        }
        var found: [Found] = []
        var warnings: [String] = []
        var platformNames: [String] = []
        for case let platform? in platforms {
            let pName = (try? platformString(platform, CL_PLATFORM_NAME)) ?? "unnamed platform"
            platformNames.append(pName)
            let pVendor = (try? platformString(platform, CL_PLATFORM_VENDOR)) ?? ""
            let pVersion = (try? platformString(platform, CL_PLATFORM_VERSION)) ?? ""
            var deviceCount: cl_uint = 0
            let ds = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &deviceCount)
            if ds == CL_DEVICE_NOT_FOUND || (ds == CL_SUCCESS && deviceCount == 0) {
                if let why = emptyPlatformHint(name: pName) { warnings.append(why) }
                continue
            }
            if ds != CL_SUCCESS {
                warnings.append("platform \(pName): \(OpenCLError(code: ds, call: "clGetDeviceIDs"))")
                continue
            }
            var devices = [cl_device_id?](repeating: nil, count: Int(deviceCount))
            let ds2 = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), deviceCount, &devices, nil)
            if ds2 != CL_SUCCESS {
                warnings.append("platform \(pName): \(OpenCLError(code: ds2, call: "clGetDeviceIDs"))")
                continue
            }
            for case let device? in devices {
                do {
                    let info = try describe(
                        device, index: found.count, platformName: pName, platformVendor: pVendor,
                        platformVersion: pVersion)
                    found.append(Found(platform: platform, device: device, info: info))
                } catch {
                    warnings.append("a device of platform \(pName) could not be queried: \(error)")
                }
            }
        }
        if found.isEmpty {
            let names = platformNames.joined(separator: ", ")
            let extra = warnings.isEmpty ? "" : ": " + warnings.joined(separator: "; ")
            return ([], "OpenCL platform(s) found (\(names)) but no usable device\(extra)", warnings)
        }
        return (found, nil, warnings)
    }

    /// Why a platform that lists no device has none, when that is knowable: pocl hides its CPU device when
    /// its kernel cache folder cannot be written (a read-only home, as in many containers).
    static func emptyPlatformHint(
        name: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> String? {
        guard name == "Portable Computing Language" else { return nil }
        let folder = poclCacheFolder(environment: environment)
        if let problem = unwritable(folder) {
            return "platform \(name) (pocl) shows no device because its kernel cache folder \(folder) cannot be "
                + "written (\(problem)); set POCL_CACHE_DIR to a writable folder, e.g. `export POCL_CACHE_DIR=/tmp/pocl-cache`"
        }
        return "platform \(name) (pocl) shows no device; run `clinfo` to see what pocl reports, "
            + "and check that POCL_DEVICES is unset or names a device of this machine"
    }

    /// The folder pocl keeps compiled kernels in: $POCL_CACHE_DIR, else $XDG_CACHE_HOME/pocl/kcache, else
    /// $HOME/.cache/pocl/kcache.
    static func poclCacheFolder(environment: [String: String]) -> String {
        if let dir = environment["POCL_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/pocl/kcache" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.cache/pocl/kcache"
    }

    /// nil if `folder` exists (or can be created) and a file can be written in it; else what went wrong,
    /// with the system's words ("Not a directory", "Read-only file system").
    static func unwritable(_ folder: String) -> String? {
        var path = folder.hasPrefix("/") ? "" : "."
        for part in folder.split(separator: "/") {
            path += "/" + part
            if mkdir(path, 0o755) != 0 && errno != EEXIST {
                return "cannot create \(path): \(String(cString: strerror(errno)))"
            }
        }
        let probe = folder + "/.scratchnet-write-test-\(getpid())"
        let fd = open(probe, O_CREAT | O_WRONLY, 0o644)
        guard fd >= 0 else { return "cannot write in it: \(String(cString: strerror(errno)))" }
        close(fd)
        unlink(probe)
        return nil
    }

    /// Queries one device's properties.
    static func describe(
        _ device: cl_device_id, index: Int, platformName: String, platformVendor: String, platformVersion: String
    ) throws(OpenCLError) -> OpenCLDeviceInfo {
        let typeBits: cl_device_type = try deviceValue(device, CL_DEVICE_TYPE)
        let fp: cl_device_fp_config = try deviceValue(device, CL_DEVICE_SINGLE_FP_CONFIG)
        let units: cl_uint = try deviceValue(device, CL_DEVICE_MAX_COMPUTE_UNITS)
        let global: cl_ulong = try deviceValue(device, CL_DEVICE_GLOBAL_MEM_SIZE)
        let maxAlloc: cl_ulong = try deviceValue(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE)
        let maxGroup: Int = try deviceValue(device, CL_DEVICE_MAX_WORK_GROUP_SIZE)
        let dimensions: cl_uint = try deviceValue(device, CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS)
        let itemSizes = try deviceSizes(device, CL_DEVICE_MAX_WORK_ITEM_SIZES, count: Int(dimensions))
        let localMemory: cl_ulong = try deviceValue(device, CL_DEVICE_LOCAL_MEM_SIZE)
        return OpenCLDeviceInfo(
            index: index, platformName: platformName, platformVendor: platformVendor,
            platformVersion: platformVersion,
            name: try deviceString(device, CL_DEVICE_NAME).trimmingCharacters(in: .whitespaces),
            vendor: try deviceString(device, CL_DEVICE_VENDOR),
            type: typeName(typeBits), computeUnits: Int(units), globalMemoryBytes: global,
            maxAllocationBytes: maxAlloc, maxWorkGroupSize: maxGroup, maxWorkItemSizes: itemSizes,
            localMemoryBytes: localMemory,
            deviceVersion: try deviceString(device, CL_DEVICE_VERSION),
            openCLCVersion: try deviceString(device, CL_DEVICE_OPENCL_C_VERSION),
            driverVersion: try deviceString(device, CL_DRIVER_VERSION),
            floatCapabilities: floatCapabilities(fp), parity: parity(singleFPConfig: fp))
    }

    /// "GPU", "CPU", "accelerator", "custom" or "unknown" for CL_DEVICE_TYPE bits.
    static func typeName(_ bits: cl_device_type) -> String {
        if bits & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 { return "GPU" }
        if bits & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 { return "CPU" }
        if bits & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 { return "accelerator" }
        if bits & cl_device_type(CL_DEVICE_TYPE_CUSTOM) != 0 { return "custom" }
        return "unknown"
    }

    /// Bitwise parity needs correctly rounded fma and division and no flushing of denormals.
    package static func parity(singleFPConfig fp: UInt64) -> ParityCapability {
        var reasons: [String] = []
        if fp & UInt64(CL_FP_FMA) == 0 { reasons.append("no IEEE fused multiply-add (CL_FP_FMA)") }
        if fp & UInt64(CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) == 0 {
            reasons.append("division not correctly rounded (no CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT)")
        }
        if fp & UInt64(CL_FP_DENORM) == 0 { reasons.append("denormals flushed to zero (no CL_FP_DENORM)") }
        return reasons.isEmpty ? .guaranteed : .notGuaranteed(reasons)
    }

    /// The CL_DEVICE_SINGLE_FP_CONFIG flags in words, as clinfo lists them.
    package static func floatCapabilities(_ fp: UInt64) -> [String] {
        let flags: [(Int32, String)] = [
            (CL_FP_DENORM, "denormals"), (CL_FP_INF_NAN, "inf/nan"), (CL_FP_ROUND_TO_NEAREST, "round to nearest"),
            (CL_FP_ROUND_TO_ZERO, "round to zero"), (CL_FP_ROUND_TO_INF, "round to inf"),
            (CL_FP_FMA, "fma"), (CL_FP_SOFT_FLOAT, "soft float"),
            (CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT, "correctly rounded divide/sqrt"),
        ]
        return flags.filter { fp & UInt64($0.0) != 0 }.map(\.1)
    }

    static func deviceValue<T: FixedWidthInteger>(_ device: cl_device_id, _ param: Int32) throws(OpenCLError) -> T {
        var value: T = 0
        let status = withUnsafeMutableBytes(of: &value) { raw in
            clGetDeviceInfo(device, cl_device_info(param), raw.count, raw.baseAddress, nil)
        }
        try check(status, "clGetDeviceInfo(0x\(String(param, radix: 16)))")
        return value
    }

    /// A size_t[count] device property (CL_DEVICE_MAX_WORK_ITEM_SIZES).
    static func deviceSizes(_ device: cl_device_id, _ param: Int32, count: Int) throws(OpenCLError) -> [Int] {
        var values = [Int](repeating: 0, count: max(count, 1))
        let status = values.withUnsafeMutableBytes { raw in
            clGetDeviceInfo(device, cl_device_info(param), raw.count, raw.baseAddress, nil)
        }
        try check(status, "clGetDeviceInfo(0x\(String(param, radix: 16)))")
        return Array(values.prefix(count))
    }

    static func deviceString(_ device: cl_device_id, _ param: Int32) throws(OpenCLError) -> String {
        var size = 0
        try check(clGetDeviceInfo(device, cl_device_info(param), 0, nil, &size), "clGetDeviceInfo")
        var bytes = [UInt8](repeating: 0, count: max(size, 1))
        try check(clGetDeviceInfo(device, cl_device_info(param), size, &bytes, nil), "clGetDeviceInfo")
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    static func platformString(_ platform: cl_platform_id, _ param: Int32) throws(OpenCLError) -> String {
        var size = 0
        try check(clGetPlatformInfo(platform, cl_platform_info(param), 0, nil, &size), "clGetPlatformInfo")
        var bytes = [UInt8](repeating: 0, count: max(size, 1))
        try check(clGetPlatformInfo(platform, cl_platform_info(param), size, &bytes, nil), "clGetPlatformInfo")
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
}
