// swift-tools-version:6.0
// ScratchNet: the networks of "Deep Learning from Scratch" on OpenCL devices and a pure-Swift CPU path,
// with bitwise-identical results on every device.
import Foundation
import PackageDescription

// Bitwise parity needs every multiply-add to be a real fused multiply-add. On x86-64 Swift only emits
// `vfmadd` when the target CPU has FMA; otherwise `addingProduct` becomes a `fmaf` library call (same bits,
// ~40x slower in the CPU path). "haswell" (= x86-64-v3: Intel 2013+, AMD Zen+; swiftc does not accept the
// name x86-64-v3) has FMA and AVX2. Override with SCRATCHNET_TARGET_CPU=native, or =none for baseline x86-64.
//
// SwiftPM refuses `.unsafeFlags` in a package that is a version-based dependency ("contains unsafe build
// flags"), so the flag is set only when ScratchNet is the root package. A package that depends on ScratchNet
// by version builds it without the flag; it gets the same bits but slower, a one-line warning at run time
// (`FusedMultiplyAddCodegen`), and the README's one consumer setting (`-Xswiftc -target-cpu -Xswiftc haswell`)
// makes it fast again. SwiftPM places a dependency in `.build/checkouts/NAME`, and while it resolves a graph
// it evaluates a dependency's manifest without its folder (no Package.swift at packageDirectory).
let packageDirectory = URL(fileURLWithPath: Context.packageDirectory)
let isVersionedDependency = packageDirectory.deletingLastPathComponent().lastPathComponent == "checkouts"
    || !FileManager.default.fileExists(atPath: packageDirectory.appendingPathComponent("Package.swift").path)
let targetCPU = Context.environment["SCRATCHNET_TARGET_CPU"] ?? "haswell"
#if arch(x86_64)
let cpuFlags: [SwiftSetting] =
    targetCPU == "none" || isVersionedDependency ? [] : [.unsafeFlags(["-target-cpu", targetCPU])]
#else
let cpuFlags: [SwiftSetting] = []
#endif

// swift-docc-plugin adds `swift package generate-documentation` (the catalog in Sources/ScratchNet/ScratchNet.docc).
// Only the root package needs the command, so a package that depends on ScratchNet by version never resolves or
// fetches the plugin (its graph stays ScratchNet + swift-argument-parser).
let docPlugin: [Package.Dependency] = isVersionedDependency
    ? [] : [.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0")]

let package = Package(
    name: "ScratchNet",
    platforms: [.macOS(.v13)],
    products: [
        // One product per module: a CPU-only user links `ScratchNet` (and `ScratchNetIO` for files) and never
        // the OpenCL loader.
        .library(name: "ScratchNet", targets: ["ScratchNet"]),
        .library(name: "ScratchNetOpenCL", targets: ["ScratchNetOpenCL"]),
        .library(name: "ScratchNetIO", targets: ["ScratchNetIO"]),
        .executable(name: "scratchnet", targets: ["scratchnet"]),
        .executable(name: "scratchnet-fuzz", targets: ["ScratchNetFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ] + docPlugin,
    targets: [
        // The OpenCL C API (ICD loader). Only ScratchNetOpenCL imports it.
        .systemLibrary(
            name: "COpenCL", path: "Sources/COpenCL",
            providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]),
        // zlib, for gzip (IDX files) and deflate (.npz). Only ScratchNetIO imports it.
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib",
            providers: [.apt(["zlib1g-dev"])]),

        // Core: tensors, the Backend protocol, numerics, the pure-Swift CPU backend, layers, networks.
        .target(name: "ScratchNet", path: "Sources/ScratchNet", swiftSettings: cpuFlags),
        // The OpenCL backend and device selection. Kernels/*.cl are embedded at build time.
        .target(
            name: "ScratchNetOpenCL", dependencies: ["ScratchNet", "COpenCL"],
            path: "Sources/ScratchNetOpenCL", swiftSettings: cpuFlags,
            plugins: ["EmbedKernelsPlugin"]),
        // File formats: pickle (restricted), safetensors, npy/npz, IDX/MNIST, downloads.
        .target(
            name: "ScratchNetIO", dependencies: ["ScratchNet", "CZlib"],
            path: "Sources/ScratchNetIO", swiftSettings: cpuFlags),
        // The command-line tool.
        .executableTarget(
            name: "scratchnet",
            dependencies: [
                "ScratchNet", "ScratchNetOpenCL", "ScratchNetIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/scratchnet", swiftSettings: cpuFlags),

        // libFuzzer targets for the file parsers (Tests/Fuzz/fuzz.sh builds them with -sanitize=fuzzer,address
        // -DSCRATCHNET_FUZZ); a normal build is a regression runner over saved inputs.
        .executableTarget(
            name: "ScratchNetFuzz", dependencies: ["ScratchNet", "ScratchNetIO"],
            path: "Sources/ScratchNetFuzz", swiftSettings: cpuFlags),

        // Build-time embedding of Kernels/*.cl into the ScratchNetOpenCL module.
        .executableTarget(name: "EmbedKernelsTool", path: "Sources/EmbedKernelsTool"),
        .plugin(
            name: "EmbedKernelsPlugin", capability: .buildTool(),
            dependencies: ["EmbedKernelsTool"], path: "Sources/EmbedKernelsPlugin"),

        .testTarget(name: "ScratchNetTests", dependencies: ["ScratchNet"], swiftSettings: cpuFlags),
        .testTarget(
            name: "ScratchNetOpenCLTests", dependencies: ["ScratchNet", "ScratchNetOpenCL"],
            swiftSettings: cpuFlags),
        .testTarget(
            name: "ScratchNetIOTests", dependencies: ["ScratchNet", "ScratchNetIO"],
            resources: [.copy("Fixtures")], swiftSettings: cpuFlags),
        .testTarget(
            name: "EndToEndTests", dependencies: ["ScratchNet", "ScratchNetIO", "ScratchNetOpenCL"],
            swiftSettings: cpuFlags),
    ],
    swiftLanguageModes: [.v6]
)
