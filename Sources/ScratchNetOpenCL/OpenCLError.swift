// OpenCLError and `check`: every OpenCL status code goes through one function that turns a failure into an
// error naming the code and the call (e.g. "CL_OUT_OF_RESOURCES (-5) in clEnqueueNDRangeKernel"), plus,
// for kernel builds, the file name and the compiler's full build log.

import COpenCL
import Foundation
import ScratchNet

/// An OpenCL call failed.
///
/// The description names the status code symbolically and numerically, the API call that returned it and,
/// when a kernel file failed to build, the file name and the device compiler's build log.
public struct OpenCLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The raw status code (negative), e.g. -5.
    public let code: Int32
    /// The OpenCL function that returned it, e.g. "clEnqueueNDRangeKernel".
    public let call: String
    /// The kernel file being built, when the failure happened while building kernels.
    public let file: String?
    /// The compiler output for the failed build (may be long), when there is one.
    public let buildLog: String?
    /// Extra context or advice for the user, if any.
    public let hint: String?

    /// Creates an error for `code` returned by `call`.
    public init(code: Int32, call: String, file: String? = nil, buildLog: String? = nil, hint: String? = nil) {
        self.code = code
        self.call = call
        self.file = file
        self.buildLog = buildLog
        self.hint = hint
    }

    /// The symbolic name of the code, e.g. "CL_OUT_OF_RESOURCES", or "unknown OpenCL error" if not standard.
    public var codeName: String { OpenCLError.name(of: code) }

    /// "CODE_NAME (code) in call", then the file, hint and build log when present.
    public var description: String {
        var text = "\(codeName) (\(code)) in \(call)"
        if let file { text += " while building kernel file \(file)" }
        if let hint { text += ": \(hint)" }
        if let buildLog {
            let log = buildLog.trimmingCharacters(in: .whitespacesAndNewlines)
            text += log.isEmpty ? "\n(the compiler left an empty build log)" : "\nbuild log:\n\(log)"
        }
        return text
    }

    /// The description in one line: the first line, plus the first line of the build log that reports an
    /// error (or its first line), for logs and the command line.
    public var summary: String {
        var text = "\(codeName) (\(code)) in \(call)"
        if let file { text += " while building kernel file \(file)" }
        if let hint { text += ": \(hint)" }
        if let buildLog {
            let lines = buildLog.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
            if let first = lines.first(where: { $0.localizedCaseInsensitiveContains("error") }) ?? lines.first {
                text += "; build log: \(first)"
                if lines.count > 1 { text += " (+\(lines.count - 1) more lines)" }
            } else {
                text += "; empty build log"
            }
        }
        return text
    }

    /// Whether the device ran out of memory for a buffer (or the buffer was larger than it allows), so the
    /// same work in smaller pieces may succeed: CL_MEM_OBJECT_ALLOCATION_FAILURE from any call (drivers
    /// may report it at the first launch that uses the buffer), and CL_OUT_OF_RESOURCES,
    /// CL_OUT_OF_HOST_MEMORY or CL_INVALID_BUFFER_SIZE from clCreateBuffer. Not a failed launch or read.
    public var isOutOfDeviceMemory: Bool {
        if code == CL_MEM_OBJECT_ALLOCATION_FAILURE { return true }
        return call == "clCreateBuffer"
            && (code == CL_OUT_OF_RESOURCES || code == CL_OUT_OF_HOST_MEMORY || code == CL_INVALID_BUFFER_SIZE)
    }

    /// The symbolic name of an OpenCL status code (core 1.0-3.0 codes and the common extension codes).
    public static func name(of code: Int32) -> String {
        codeNames[code] ?? "unknown OpenCL error"
    }

    /// Every standard OpenCL status code by value.
    static let codeNames: [Int32: String] = [
        0: "CL_SUCCESS",
        -1: "CL_DEVICE_NOT_FOUND",
        -2: "CL_DEVICE_NOT_AVAILABLE",
        -3: "CL_COMPILER_NOT_AVAILABLE",
        -4: "CL_MEM_OBJECT_ALLOCATION_FAILURE",
        -5: "CL_OUT_OF_RESOURCES",
        -6: "CL_OUT_OF_HOST_MEMORY",
        -7: "CL_PROFILING_INFO_NOT_AVAILABLE",
        -8: "CL_MEM_COPY_OVERLAP",
        -9: "CL_IMAGE_FORMAT_MISMATCH",
        -10: "CL_IMAGE_FORMAT_NOT_SUPPORTED",
        -11: "CL_BUILD_PROGRAM_FAILURE",
        -12: "CL_MAP_FAILURE",
        -13: "CL_MISALIGNED_SUB_BUFFER_OFFSET",
        -14: "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST",
        -15: "CL_COMPILE_PROGRAM_FAILURE",
        -16: "CL_LINKER_NOT_AVAILABLE",
        -17: "CL_LINK_PROGRAM_FAILURE",
        -18: "CL_DEVICE_PARTITION_FAILED",
        -19: "CL_KERNEL_ARG_INFO_NOT_AVAILABLE",
        -30: "CL_INVALID_VALUE",
        -31: "CL_INVALID_DEVICE_TYPE",
        -32: "CL_INVALID_PLATFORM",
        -33: "CL_INVALID_DEVICE",
        -34: "CL_INVALID_CONTEXT",
        -35: "CL_INVALID_QUEUE_PROPERTIES",
        -36: "CL_INVALID_COMMAND_QUEUE",
        -37: "CL_INVALID_HOST_PTR",
        -38: "CL_INVALID_MEM_OBJECT",
        -39: "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR",
        -40: "CL_INVALID_IMAGE_SIZE",
        -41: "CL_INVALID_SAMPLER",
        -42: "CL_INVALID_BINARY",
        -43: "CL_INVALID_BUILD_OPTIONS",
        -44: "CL_INVALID_PROGRAM",
        -45: "CL_INVALID_PROGRAM_EXECUTABLE",
        -46: "CL_INVALID_KERNEL_NAME",
        -47: "CL_INVALID_KERNEL_DEFINITION",
        -48: "CL_INVALID_KERNEL",
        -49: "CL_INVALID_ARG_INDEX",
        -50: "CL_INVALID_ARG_VALUE",
        -51: "CL_INVALID_ARG_SIZE",
        -52: "CL_INVALID_KERNEL_ARGS",
        -53: "CL_INVALID_WORK_DIMENSION",
        -54: "CL_INVALID_WORK_GROUP_SIZE",
        -55: "CL_INVALID_WORK_ITEM_SIZE",
        -56: "CL_INVALID_GLOBAL_OFFSET",
        -57: "CL_INVALID_EVENT_WAIT_LIST",
        -58: "CL_INVALID_EVENT",
        -59: "CL_INVALID_OPERATION",
        -60: "CL_INVALID_GL_OBJECT",
        -61: "CL_INVALID_BUFFER_SIZE",
        -62: "CL_INVALID_MIP_LEVEL",
        -63: "CL_INVALID_GLOBAL_WORK_SIZE",
        -64: "CL_INVALID_PROPERTY",
        -65: "CL_INVALID_IMAGE_DESCRIPTOR",
        -66: "CL_INVALID_COMPILER_OPTIONS",
        -67: "CL_INVALID_LINKER_OPTIONS",
        -68: "CL_INVALID_DEVICE_PARTITION_COUNT",
        -69: "CL_INVALID_PIPE_SIZE",
        -70: "CL_INVALID_DEVICE_QUEUE",
        -71: "CL_INVALID_SPEC_ID",
        -72: "CL_MAX_SIZE_RESTRICTION_EXCEEDED",
        -1000: "CL_INVALID_GL_SHAREGROUP_REFERENCE_KHR",
        -1001: "CL_PLATFORM_NOT_FOUND_KHR",
        -1002: "CL_INVALID_D3D10_DEVICE_KHR",
        -1003: "CL_INVALID_D3D10_RESOURCE_KHR",
        -1004: "CL_D3D10_RESOURCE_ALREADY_ACQUIRED_KHR",
        -1005: "CL_D3D10_RESOURCE_NOT_ACQUIRED_KHR",
        -1006: "CL_INVALID_D3D11_DEVICE_KHR",
        -1007: "CL_INVALID_D3D11_RESOURCE_KHR",
        -1008: "CL_D3D11_RESOURCE_ALREADY_ACQUIRED_KHR",
        -1009: "CL_D3D11_RESOURCE_NOT_ACQUIRED_KHR",
        -1010: "CL_INVALID_DX9_MEDIA_ADAPTER_KHR",
        -1011: "CL_INVALID_DX9_MEDIA_SURFACE_KHR",
        -1012: "CL_DX9_MEDIA_SURFACE_ALREADY_ACQUIRED_KHR",
        -1013: "CL_DX9_MEDIA_SURFACE_NOT_ACQUIRED_KHR",
        -1057: "CL_DEVICE_PARTITION_FAILED_EXT",
        -1058: "CL_INVALID_PARTITION_COUNT_EXT",
        -1059: "CL_INVALID_PARTITION_NAME_EXT",
        -1092: "CL_EGL_RESOURCE_NOT_ACQUIRED_KHR",
        -1093: "CL_INVALID_EGL_OBJECT_KHR",
        -1094: "CL_INVALID_ACCELERATOR_INTEL",
        -1095: "CL_INVALID_ACCELERATOR_TYPE_INTEL",
        -1096: "CL_INVALID_ACCELERATOR_DESCRIPTOR_INTEL",
        -1097: "CL_ACCELERATOR_TYPE_NOT_SUPPORTED_INTEL",
        -1098: "CL_INVALID_VA_API_MEDIA_ADAPTER_INTEL",
        -1099: "CL_INVALID_VA_API_MEDIA_SURFACE_INTEL",
        -1100: "CL_VA_API_MEDIA_SURFACE_ALREADY_ACQUIRED_INTEL",
        -1101: "CL_VA_API_MEDIA_SURFACE_NOT_ACQUIRED_INTEL",
        -1108: "CL_COMMAND_TERMINATED_ITSELF_WITH_FAILURE_ARM",
        -1121: "CL_CONTEXT_TERMINATED_KHR",
        -1138: "CL_INVALID_COMMAND_BUFFER_KHR",
        -1139: "CL_INVALID_SYNC_POINT_WAIT_LIST_KHR",
        -1140: "CL_INCOMPATIBLE_COMMAND_QUEUE_KHR",
        -1141: "CL_INVALID_MUTABLE_COMMAND_KHR",
        -1142: "CL_INVALID_SEMAPHORE_KHR",
    ]
}

extension OpenCLError: DeviceMemoryError {}

/// Throws an ``OpenCLError`` naming `status` and `call` unless `status` is `CL_SUCCESS`.
@inline(__always)
package func check(_ status: cl_int, _ call: String) throws(OpenCLError) {
    guard status == CL_SUCCESS else { throw OpenCLError(code: status, call: call) }
}
