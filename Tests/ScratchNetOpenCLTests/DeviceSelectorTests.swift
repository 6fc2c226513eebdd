// DeviceSelector and out-of-range device numbers: which backend each --device value gives on this machine
// (pocl = one CPU device, no GPU) and what the errors say.

import Foundation
import ScratchNet
import ScratchNetOpenCL
import Testing

@Test func cpuSpecGivesThePureSwiftPath() throws {
    let s = try DeviceSelector.select(.cpu)
    #expect(s.backend is CPUBackend)
    #expect(s.fallbackReason == nil)
}

@Test func autoPrefersAGPUElseFallsBackWithAReason() throws {
    let found = OpenCLDevices.enumerate()
    let s = try DeviceSelector.select(.auto)
    if let gpu = found.devices.first(where: { $0.type == "GPU" }) {
        #expect(s.backend.device.id == gpu.id)
        #expect(s.fallbackReason == nil)
    } else {
        #expect(s.backend is CPUBackend)
        let reason = s.fallbackReason ?? ""
        #expect(reason.hasSuffix("using the pure-Swift CPU path"))
        if let first = found.devices.first {
            #expect(reason.hasPrefix("no OpenCL GPU: found "))
            #expect(reason.contains(first.name))
        } else {
            #expect(reason.contains("no OpenCL"))
        }
        #expect(!reason.contains("\n"))
    }
}

@Test func gpuSpecFailsHelpfullyWithoutAGPU() throws {
    let found = OpenCLDevices.enumerate()
    guard !found.devices.contains(where: { $0.type == "GPU" }) else {
        #expect(try DeviceSelector.select(.gpu).backend.device.type == "GPU")
        return
    }
    do {
        _ = try DeviceSelector.select(.gpu)
        Issue.record("--device gpu succeeded without a GPU")
    } catch {
        let text = "\(error)"
        #expect(text.contains("no OpenCL GPU found"))
        #expect(text.contains("--device opencl"))
        #expect(text.contains("scratchnet devices"))
        if let first = found.devices.first { #expect(text.contains(first.name)) }
    }
}

@Test func openclSpecOpensTheNumberedDevice() throws {
    guard TestDevice.backend() != nil else { return }
    let first = try DeviceSelector.select(.opencl(nil))
    #expect(first.backend.device.id == "opencl:0")
    #expect(first.backend is OpenCLBackend)
    let zero = try DeviceSelector.select(.opencl(0))
    #expect(zero.backend.device.id == "opencl:0")
    #expect(zero.fallbackReason == nil)
}

@Test func outOfRangeDeviceNamesTheCount() throws {
    let count = OpenCLDevices.enumerate().devices.count
    if count == 0 && !TestDevice.allowMissing { Issue.record("no OpenCL device found") }
    do {
        _ = try DeviceSelector.select(.opencl(99))
        Issue.record("opencl:99 was accepted")
    } catch {
        let text = "\(error)"
        #expect(text.contains("opencl:99") || count == 0)
        if count > 0 {
            #expect(text.contains("\(count) OpenCL device"))
            #expect(text.contains("scratchnet devices"))
        }
    }
    do {
        _ = try OpenCLBackend(deviceIndex: 99)
        Issue.record("OpenCLBackend(deviceIndex: 99) was accepted")
    } catch {
        #expect("\(error)".contains("opencl:99"))
        if count > 0 { #expect("\(error)".contains("\(count) OpenCL device")) }
    }
}
