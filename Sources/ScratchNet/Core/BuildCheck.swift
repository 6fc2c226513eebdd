// BuildCheck: does this build of ScratchNet compute a multiply-add with the CPU's FMA instruction, or through a
// `fmaf` library call? Both give the same bits (IEEE 754 fused multiply-add), but the call makes the CPU path
// tens of times slower. A package that depends on ScratchNet by version is built without ScratchNet's own
// `-target-cpu` flag (SwiftPM refuses unsafe flags in versioned dependencies), so the CPU backend checks its
// own machine code once and warns on stderr when it is the slow kind. See README, "Depend on ScratchNet".

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How this build of ScratchNet turns `Float.addingProduct` (fused multiply-add) into machine code.
public enum FusedMultiplyAddCodegen: Sendable, Equatable {
    /// A hardware FMA instruction (x86-64 `vfmadd…`, or any ARM64 build): full speed.
    case inline
    /// A call to the C library's `fmaf`: the same bits, but the CPU path runs much slower.
    case libraryCall
    /// Not determined: a debug build, or an architecture whose code is not inspected.
    case notChecked

    /// What this build does, found once by reading the machine code of a multiply-add compiled in this module.
    public static let current: FusedMultiplyAddCodegen = inspect()

    /// A one-line warning for builds that call `fmaf`, with the setting that fixes it; nil otherwise.
    public var warning: String? {
        guard self == .libraryCall else { return nil }
        return "scratchnet: warning: this build computes multiply-adds with fmaf calls (same bits, much slower "
            + "CPU path); build with -Xswiftc -target-cpu -Xswiftc haswell (or native) for FMA instructions; "
            + "SCRATCHNET_NO_FMA_WARNING=1 hides this"
    }

    /// "inline (vfmadd)", "library call (fmaf)" or "not checked".
    public var summary: String {
        switch self {
        case .inline: return "inline"
        case .libraryCall: return "library call"
        case .notChecked: return "not checked"
        }
    }

    static func inspect() -> FusedMultiplyAddCodegen {
        #if DEBUG
        // -Onone keeps generic stdlib calls around the instruction; only optimised builds are inspected.
        return .notChecked
        #elseif arch(x86_64)
        let code = unsafeBitCast(fmaProbe, to: UnsafeRawPointer.self)
        return scanX86(code.assumingMemoryBound(to: UInt8.self), limit: 96)
        #elseif arch(arm64)
        return .inline  // every ARMv8 core has FMA and Swift always emits fmadd for it
        #else
        return .notChecked
        #endif
    }

    /// Follows a leading `jmp rel32` (a thunk in front of the body) once, then classifies the next 96 bytes.
    static func scanX86(_ start: UnsafePointer<UInt8>, limit: Int) -> FusedMultiplyAddCodegen {
        var p = start
        if p[0] == 0xE9 {
            let rel = Int32(bitPattern: UInt32(p[1]) | UInt32(p[2]) << 8 | UInt32(p[3]) << 16 | UInt32(p[4]) << 24)
            p = p + 5 + Int(rel)
        }
        return classify(x86Code: Array(UnsafeBufferPointer(start: p, count: limit)))
    }

    /// Classifies x86-64 machine code: ``inline`` if a VEX (C4, map 0F38) or EVEX (62, map 0F38) encoded
    /// vfmadd/vfmsub/vfnmadd/vfnmsub (opcodes 98–9F, A8–AF, B8–BF) comes before the first `ret`, `jmp`, `call`
    /// or `int3` byte (the tail call into `fmaf` is a `jmp`), ``libraryCall`` otherwise.
    public static func classify(x86Code code: [UInt8]) -> FusedMultiplyAddCodegen {
        func isFMAOpcode(_ op: UInt8) -> Bool {
            (0x98...0x9F).contains(op) || (0xA8...0xAF).contains(op) || (0xB8...0xBF).contains(op)
        }
        for (i, b) in code.enumerated() {
            if b == 0xC4, i + 3 < code.count, code[i + 1] & 0x1F == 0x02, isFMAOpcode(code[i + 3]) { return .inline }
            if b == 0x62, i + 4 < code.count, code[i + 1] & 0x07 == 0x02, isFMAOpcode(code[i + 4]) { return .inline }
            if b == 0xC3 || b == 0xE9 || b == 0xE8 || b == 0xCC { return .libraryCall }
        }
        return .libraryCall
    }
}

/// The multiply-add whose machine code ``FusedMultiplyAddCodegen/current`` reads: compiled with this module's
/// flags, like every other multiply-add of the CPU path.
private let fmaProbe: @convention(c) (Float, Float, Float) -> Float = { a, b, c in
    a.addingProduct(b, c)
}
