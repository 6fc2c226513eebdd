// Tests of FusedMultiplyAddCodegen: the machine-code classifier on known encodings, and what this build is. A
// release build of the root package on x86-64 has -target-cpu haswell, so its multiply-adds must be vfmadd
// instructions; with SCRATCHNET_TARGET_CPU=none they must be fmaf calls (the warning's case).

import Foundation
import Testing
import ScratchNet

@Suite struct BuildCheckTests {
    @Test func classifiesKnownEncodings() {
        // vfmadd213ss xmm0, xmm1, xmm2 ; ret
        #expect(FusedMultiplyAddCodegen.classify(x86Code: [0xC4, 0xE2, 0x71, 0xA9, 0xC2, 0xC3]) == .inline)
        // vfmadd231ss xmm0, xmm1, xmm2 (VEX) and its EVEX form vfmadd231ss xmm0{k0}, xmm1, xmm2
        #expect(FusedMultiplyAddCodegen.classify(x86Code: [0xC4, 0xE2, 0x71, 0xB9, 0xC2, 0xC3]) == .inline)
        #expect(FusedMultiplyAddCodegen.classify(x86Code: [0x62, 0xF2, 0x75, 0x08, 0xB9, 0xC2, 0xC3]) == .inline)
        // jmp fmaf (a tail call) ; a call then ret ; a VEX op of another map (vaddps, map 0F) ; nothing
        #expect(FusedMultiplyAddCodegen.classify(x86Code: [0xE9, 0x10, 0x00, 0x00, 0x00]) == .libraryCall)
        #expect(FusedMultiplyAddCodegen.classify(x86Code: [0xE8, 0x10, 0x00, 0x00, 0x00, 0xC3]) == .libraryCall)
        #expect(FusedMultiplyAddCodegen.classify(x86Code: [0xC4, 0xE1, 0x70, 0x58, 0xC2, 0xC3]) == .libraryCall)
        // an FMA after the ret belongs to another function
        #expect(FusedMultiplyAddCodegen.classify(x86Code: [0xC3, 0xC4, 0xE2, 0x71, 0xA9, 0xC2]) == .libraryCall)
        #expect(FusedMultiplyAddCodegen.classify(x86Code: []) == .libraryCall)
    }

    @Test func thisBuildUsesFMAInstructions() {
        let current = FusedMultiplyAddCodegen.current
        #if DEBUG
        #expect(current == .notChecked)
        #elseif arch(x86_64)
        let cpu = ProcessInfo.processInfo.environment["SCRATCHNET_TARGET_CPU"] ?? "haswell"
        #expect(current == (cpu == "none" ? .libraryCall : .inline), "SCRATCHNET_TARGET_CPU=\(cpu)")
        #expect((current.warning != nil) == (current == .libraryCall))
        #else
        #expect(current != .libraryCall)
        #endif
    }
}
