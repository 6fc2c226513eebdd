// The OpenCL runtime in four small parts, each a final class that owns one OpenCL handle and releases it in
// `deinit`: CLContext (context + its device), CLQueue (one in-order command queue), CLProgram (a program
// built from source or from a cached binary; a failed build throws with the file name and build log),
// CLKernel (one kernel entry point) and CLBuffer (device memory), plus CLStaging (host memory behind
// non-blocking uploads). Only the OpenCL 1.2 host API is used, so
// old GPU drivers work too.
//
// Fault injection (FaultInjection.swift): a context may carry a FaultInjector; the allocation, build,
// launch, read and binary-load calls below then consult it, and every handle registers with it, so the real
// error paths run and leaks show. Without one (SCRATCHNET_FAULT unset) the hooks are a nil check.
//
// Sendability: OpenCL 1.2 makes every API call thread-safe except clSetKernelArg on the same cl_kernel;
// OpenCLBackend serialises "set args + enqueue" under a lock, so the handles can be shared across threads.

import COpenCL
import Foundation
import ScratchNet

/// An OpenCL context for one device.
package final class CLContext: @unchecked Sendable {
    package let handle: cl_context
    package let device: cl_device_id
    /// Injected faults for everything made in this context (nil: none, the normal case).
    package let faults: FaultInjector?
    /// Buffers of this context are never released (see ``OclgrindBufferQuirk``): true only on oclgrind.
    package let keepsReleasedBuffers: Bool

    /// - Parameter keepsReleasedBuffers: never release a buffer's handle (for oclgrind's stale shadow memory,
    ///   ``OclgrindBufferQuirk``); false everywhere else.
    package init(device: cl_device_id, faults: FaultInjector? = nil, keepsReleasedBuffers: Bool = false) throws(OpenCLError) {
        var status: cl_int = CL_SUCCESS
        var dev: cl_device_id? = device
        let ctx = clCreateContext(nil, 1, &dev, nil, nil, &status)
        if status != CL_SUCCESS, let ctx { _ = clReleaseContext(ctx) }
        try check(status, "clCreateContext")
        guard let ctx else { throw OpenCLError(code: CL_INVALID_CONTEXT, call: "clCreateContext") }
        self.handle = ctx
        self.device = device
        self.faults = faults
        self.keepsReleasedBuffers = keepsReleasedBuffers
        faults?.created("context")
    }

    deinit {
        _ = clReleaseContext(handle)
        faults?.released("context")
    }
}

/// An in-order command queue: commands run one after another in the order they were enqueued.
package final class CLQueue: @unchecked Sendable {
    package let handle: cl_command_queue
    package let context: CLContext

    package init(context: CLContext) throws(OpenCLError) {
        var status: cl_int = CL_SUCCESS
        let queue = clCreateCommandQueue(context.handle, context.device, 0, &status)
        if status != CL_SUCCESS, let queue { _ = clReleaseCommandQueue(queue) }
        try check(status, "clCreateCommandQueue")
        guard let queue else { throw OpenCLError(code: CL_INVALID_COMMAND_QUEUE, call: "clCreateCommandQueue") }
        self.handle = queue
        self.context = context
        context.faults?.created("queue")
    }

    deinit {
        _ = clReleaseCommandQueue(handle)
        context.faults?.released("queue")
    }

    /// Copies `byteCount` bytes from host memory into `buffer`; returns when the host memory may be reused.
    package func write(_ source: UnsafeRawPointer, byteCount: Int, to buffer: CLBuffer) throws(OpenCLError) {
        try check(
            clEnqueueWriteBuffer(handle, buffer.handle, cl_bool(CL_TRUE), 0, byteCount, source, 0, nil, nil),
            "clEnqueueWriteBuffer")
    }

    /// Copies `byteCount` bytes from host memory into `buffer` through `staging` without waiting for the
    /// device: the bytes are copied to the staging memory (after its previous upload has finished) and the
    /// write is enqueued non-blocking, so it shares the wait of the next blocking command. `source` may be
    /// reused on return.
    package func write(
        _ source: UnsafeRawPointer, byteCount: Int, to buffer: CLBuffer, staging: CLStaging
    ) throws(OpenCLError) {
        guard byteCount <= staging.capacity else {
            throw OpenCLError(code: CL_INVALID_VALUE, call: "clEnqueueWriteBuffer (staging smaller than the upload)")
        }
        try staging.waitForUpload()
        staging.pointer.copyMemory(from: source, byteCount: byteCount)
        var event: cl_event?
        try check(
            clEnqueueWriteBuffer(handle, buffer.handle, cl_bool(CL_FALSE), 0, byteCount, staging.pointer, 0, nil, &event),
            "clEnqueueWriteBuffer")
        staging.event = event
    }

    /// Copies `byteCount` bytes of `buffer` to host memory after all earlier commands have finished.
    package func read(_ buffer: CLBuffer, byteCount: Int, into destination: UnsafeMutableRawPointer) throws(OpenCLError) {
        if let faults = context.faults, faults.shouldFail(.read) {
            try check(CL_OUT_OF_RESOURCES, "clEnqueueReadBuffer")
        }
        try check(
            clEnqueueReadBuffer(handle, buffer.handle, cl_bool(CL_TRUE), 0, byteCount, destination, 0, nil, nil),
            "clEnqueueReadBuffer")
    }

    /// Enqueues `kernel` over `global` work-items (1 to 3 dims) in work-groups of `local` (driver-chosen if nil;
    /// OpenCLBackend always passes its fitted local size).
    package func launch(_ kernel: CLKernel, global: [Int], local: [Int]?) throws(OpenCLError) {
        let g = global
        if let faults = context.faults, faults.shouldFail(.enqueue) {
            try check(CL_OUT_OF_RESOURCES, "clEnqueueNDRangeKernel(\(kernel.name))")
        }
        let status: cl_int = g.withUnsafeBufferPointer { gp in
            if let local {
                return local.withUnsafeBufferPointer { lp in
                    clEnqueueNDRangeKernel(handle, kernel.handle, cl_uint(g.count), nil, gp.baseAddress, lp.baseAddress, 0, nil, nil)
                }
            }
            return clEnqueueNDRangeKernel(handle, kernel.handle, cl_uint(g.count), nil, gp.baseAddress, nil, 0, nil, nil)
        }
        try check(status, "clEnqueueNDRangeKernel(\(kernel.name))")
    }

    /// Blocks until every enqueued command has finished.
    package func finish() throws(OpenCLError) {
        try check(clFinish(handle), "clFinish")
    }
}

/// A program built from OpenCL C source for the context's device.
package final class CLProgram: @unchecked Sendable {
    package let handle: cl_program
    /// The kernel file it was built from, for messages.
    package let fileName: String
    /// The device it was built for.
    package let device: cl_device_id
    /// The context's fault injector, if any (for the live-object count).
    let faults: FaultInjector?

    /// Compiles and links `source`. A failure throws an ``OpenCLError`` carrying `fileName` and the build log.
    package init(context: CLContext, source: String, options: String, fileName: String) throws(OpenCLError) {
        var status: cl_int = CL_SUCCESS
        let compiled = context.faults.map { $0.shouldFail(.build) ? FaultInjector.brokenSource(source) : source } ?? source
        let program: cl_program? = compiled.withCString { cstr in
            var ptr: UnsafePointer<CChar>? = cstr
            var length = strlen(cstr)
            return clCreateProgramWithSource(context.handle, 1, &ptr, &length, &status)
        }
        if status != CL_SUCCESS {
            if let program { _ = clReleaseProgram(program) }
            throw OpenCLError(code: status, call: "clCreateProgramWithSource", file: fileName)
        }
        guard let program else {
            throw OpenCLError(code: CL_INVALID_PROGRAM, call: "clCreateProgramWithSource", file: fileName)
        }
        // Built before `self` owns the handle, so a failed build releases it here (no deinit runs).
        var dev: cl_device_id? = context.device
        let buildStatus = clBuildProgram(program, 1, &dev, options, nil, nil)
        if buildStatus != CL_SUCCESS {
            let log = CLProgram.buildLog(program, context.device) ?? "(no build log available)"
            _ = clReleaseProgram(program)
            throw OpenCLError(
                code: buildStatus, call: "clBuildProgram", file: fileName, buildLog: log,
                hint: buildStatus == CL_INVALID_BUILD_OPTIONS ? "options were '\(options)'" : nil)
        }
        self.handle = program
        self.fileName = fileName
        self.device = context.device
        self.faults = context.faults
        faults?.created("program")
    }

    /// Loads a binary made by ``binary()`` (for the same device and driver) and builds it with `options`.
    /// A binary the driver rejects throws an ``OpenCLError``; callers fall back to the source.
    package init(context: CLContext, binary: [UInt8], options: String, fileName: String) throws(OpenCLError) {
        var status: cl_int = CL_SUCCESS
        var binaryStatus: cl_int = CL_SUCCESS
        var dev: cl_device_id? = context.device
        // Injected: garbage of the same length, so the driver itself rejects it.
        let loaded = context.faults.map { $0.shouldFail(.binary) ? [UInt8](repeating: 0x42, count: binary.count) : binary }
            ?? binary
        var length = loaded.count
        let program: cl_program? = loaded.withUnsafeBufferPointer { buf in
            var ptr: UnsafePointer<UInt8>? = buf.baseAddress
            return clCreateProgramWithBinary(context.handle, 1, &dev, &length, &ptr, &binaryStatus, &status)
        }
        if status != CL_SUCCESS || binaryStatus != CL_SUCCESS {
            if let program { _ = clReleaseProgram(program) }
            throw OpenCLError(
                code: status != CL_SUCCESS ? status : binaryStatus, call: "clCreateProgramWithBinary", file: fileName)
        }
        guard let program else {
            throw OpenCLError(code: CL_INVALID_PROGRAM, call: "clCreateProgramWithBinary", file: fileName)
        }
        let buildStatus = clBuildProgram(program, 1, &dev, options, nil, nil)
        if buildStatus != CL_SUCCESS {
            let log = CLProgram.buildLog(program, context.device) ?? "(no build log available)"
            _ = clReleaseProgram(program)
            throw OpenCLError(code: buildStatus, call: "clBuildProgram", file: fileName, buildLog: log)
        }
        self.handle = program
        self.fileName = fileName
        self.device = context.device
        self.faults = context.faults
        faults?.created("program")
    }

    deinit {
        _ = clReleaseProgram(handle)
        faults?.released("program")
    }

    /// The device binary of the built program (CL_PROGRAM_BINARIES), or nil if the driver provides none.
    package func binary() -> [UInt8]? {
        var size = 0
        guard clGetProgramInfo(handle, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil)
            == CL_SUCCESS, size > 0
        else { return nil }
        var bytes = [UInt8](repeating: 0, count: size)
        let ok: Bool = bytes.withUnsafeMutableBufferPointer { buf in
            var ptr: UnsafeMutablePointer<UInt8>? = buf.baseAddress
            return clGetProgramInfo(
                handle, cl_program_info(CL_PROGRAM_BINARIES), MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &ptr, nil)
                == CL_SUCCESS
        }
        return ok ? bytes : nil
    }

    /// The device compiler's output for the last build, if the driver provides it.
    static func buildLog(_ program: cl_program, _ device: cl_device_id) -> String? {
        var size = 0
        let param = cl_program_build_info(CL_PROGRAM_BUILD_LOG)
        guard clGetProgramBuildInfo(program, device, param, 0, nil, &size) == CL_SUCCESS, size > 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: size)
        guard clGetProgramBuildInfo(program, device, param, size, &bytes, nil) == CL_SUCCESS else { return nil }
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
}

/// One `__kernel` function of a built program. Setting arguments is not thread-safe: callers serialise
/// "set arguments + enqueue" per kernel (OpenCLBackend does so under its launch lock).
package final class CLKernel: @unchecked Sendable {
    package let handle: cl_kernel
    package let name: String
    /// Keeps the program alive as long as the kernel.
    package let program: CLProgram
    /// CL_KERNEL_WORK_GROUP_SIZE: the largest work-group this kernel can be launched with on the device
    /// (at least 1; see ``limits`` for the value as reported).
    package let maxWorkGroupSize: Int
    /// CL_KERNEL_WORK_GROUP_SIZE as reported (0 if the query failed: the kernel cannot run as built),
    /// CL_KERNEL_LOCAL_MEM_SIZE (Int.max if unknown) and CL_KERNEL_PRIVATE_MEM_SIZE (0 if unknown).
    package let limits: OpenCLKernelLimits

    package init(program: CLProgram, name: String) throws(OpenCLError) {
        var status: cl_int = CL_SUCCESS
        let kernel = clCreateKernel(program.handle, name, &status)
        if status != CL_SUCCESS {
            if let kernel { _ = clReleaseKernel(kernel) }
            throw OpenCLError(
                code: status, call: "clCreateKernel(\(name))", file: program.fileName,
                hint: "the kernel file must define `__kernel void \(name)(...)`")
        }
        guard let kernel else { throw OpenCLError(code: CL_INVALID_KERNEL, call: "clCreateKernel(\(name))") }
        self.handle = kernel
        self.name = name
        self.program = program
        program.faults?.created("kernel")
        let groupSize: Int? = Self.workGroupInfo(kernel, program.device, CL_KERNEL_WORK_GROUP_SIZE)
        let local: cl_ulong? = Self.workGroupInfo(kernel, program.device, CL_KERNEL_LOCAL_MEM_SIZE)
        let privateBytes: cl_ulong? = Self.workGroupInfo(kernel, program.device, CL_KERNEL_PRIVATE_MEM_SIZE)
        self.limits = OpenCLKernelLimits(
            workGroupSize: groupSize ?? 0,
            localMemoryBytes: local.map { Int(clamping: $0) } ?? Int.max,
            privateMemoryBytes: privateBytes.map { Int(clamping: $0) } ?? 0)
        // If the driver cannot say, assume the smallest possible limit.
        self.maxWorkGroupSize = max(1, groupSize ?? 1)
    }

    /// One clGetKernelWorkGroupInfo value, nil if the query fails.
    private static func workGroupInfo<T: FixedWidthInteger>(
        _ kernel: cl_kernel, _ device: cl_device_id, _ param: Int32
    ) -> T? {
        var value: T = 0
        let status = withUnsafeMutableBytes(of: &value) { raw in
            clGetKernelWorkGroupInfo(kernel, device, cl_kernel_work_group_info(param), raw.count, raw.baseAddress, nil)
        }
        return status == CL_SUCCESS ? value : nil
    }

    deinit {
        _ = clReleaseKernel(handle)
        program.faults?.released("kernel")
    }

    /// Sets argument `index` to a 32-bit integer.
    package func setArg(_ index: Int, _ value: Int32) throws(OpenCLError) {
        var v = value
        try check(clSetKernelArg(handle, cl_uint(index), MemoryLayout<Int32>.size, &v), "clSetKernelArg(\(name), \(index))")
    }

    /// Sets argument `index` to a 32-bit float.
    package func setArg(_ index: Int, _ value: Float) throws(OpenCLError) {
        var v = value
        try check(clSetKernelArg(handle, cl_uint(index), MemoryLayout<Float>.size, &v), "clSetKernelArg(\(name), \(index))")
    }

    /// Sets argument `index` to a buffer.
    package func setArg(_ index: Int, _ buffer: CLBuffer) throws(OpenCLError) {
        var mem: cl_mem? = buffer.handle
        try check(clSetKernelArg(handle, cl_uint(index), MemoryLayout<cl_mem?>.size, &mem), "clSetKernelArg(\(name), \(index))")
    }
}

/// A device buffer of `byteCount` bytes (always > 0: OpenCL has no empty buffers).
package final class CLBuffer: @unchecked Sendable {
    package let handle: cl_mem
    package let byteCount: Int
    /// Keeps the context alive as long as the buffer.
    package let context: CLContext

    /// Allocates `byteCount` (> 0) bytes, optionally copying them from `initialData`.
    package init(context: CLContext, byteCount: Int, initialData: UnsafeRawPointer? = nil) throws(OpenCLError) {
        guard byteCount > 0 else {
            throw OpenCLError(code: CL_INVALID_BUFFER_SIZE, call: "clCreateBuffer", hint: "buffers must not be empty")
        }
        var flags = cl_mem_flags(CL_MEM_READ_WRITE)
        if initialData != nil { flags |= cl_mem_flags(CL_MEM_COPY_HOST_PTR) }
        var status: cl_int = CL_SUCCESS
        let mem: cl_mem?
        if let faults = context.faults, faults.shouldFail(.alloc, bytes: byteCount) {
            (mem, status) = (nil, CL_MEM_OBJECT_ALLOCATION_FAILURE)
        } else {
            mem = clCreateBuffer(context.handle, flags, byteCount, UnsafeMutableRawPointer(mutating: initialData), &status)
        }
        if status != CL_SUCCESS {
            if let mem { _ = clReleaseMemObject(mem) }
            throw OpenCLError(
                code: status, call: "clCreateBuffer",
                hint: "could not allocate \(byteCount) bytes on the device")
        }
        guard let mem else { throw OpenCLError(code: CL_MEM_OBJECT_ALLOCATION_FAILURE, call: "clCreateBuffer") }
        self.handle = mem
        self.byteCount = byteCount
        self.context = context
        context.faults?.created("buffer")
    }

    deinit {
        if context.keepsReleasedBuffers {
            OclgrindBufferQuirk.keep(handle)
        } else {
            _ = clReleaseMemObject(handle)
        }
        context.faults?.released("buffer")
    }
}

/// oclgrind 21.10's `--uninitialized` check keeps the shadow memory of a released buffer and hands it to the
/// next buffer that reuses its index: a buffer that only a kernel writes (the packed weight panels) then reads
/// as uninitialised past the old buffer's size, and oclgrind reports "Controlflow depends on uninitialized
/// value" although every result is correct (reproducer: `Tests/Oclgrind/stale-shadow.c`). Writing zeros from
/// the host would hide the reports, and with them real reads of memory no kernel wrote; instead, on oclgrind
/// only, no buffer is released, so every buffer gets a fresh index whose shadow starts uninitialised. The
/// memory stays held until the process ends, which the small shapes run under the simulator can afford.
package enum OclgrindBufferQuirk {
    /// True for oclgrind's platform, the only one that needs ``keep(_:)``.
    package static func applies(toPlatform name: String) -> Bool {
        name.range(of: "oclgrind", options: .caseInsensitive) != nil
    }

    private static let kept = Locked<[cl_mem]>([])

    /// Holds `handle` for the rest of the process instead of releasing it.
    static func keep(_ handle: cl_mem) {
        kept.withLock { $0.append(handle) }
    }
}

/// Host memory for non-blocking uploads (``CLQueue/write(_:byteCount:to:staging:)``): it is overwritten only
/// after the upload that reads it has finished, and freed only then.
package final class CLStaging: @unchecked Sendable {
    /// `capacity` bytes, 64-byte aligned.
    let pointer: UnsafeMutableRawPointer
    /// Size of `pointer` in bytes.
    package let capacity: Int
    /// The event of the upload in flight from `pointer`, if any. Callers serialise access (a lock).
    var event: cl_event?

    package init(capacity: Int) {
        self.capacity = capacity
        self.pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, capacity), alignment: 64)
    }

    /// Waits until the last upload from `pointer` has finished (at once if it already has).
    func waitForUpload() throws(OpenCLError) {
        guard let pending = event else { return }
        event = nil
        var list: cl_event? = pending
        let status = clWaitForEvents(1, &list)
        _ = clReleaseEvent(pending)
        try check(status, "clWaitForEvents")
    }

    deinit {
        if let pending = event {
            var list: cl_event? = pending
            _ = clWaitForEvents(1, &list)
            _ = clReleaseEvent(pending)
        }
        pointer.deallocate()
    }
}
