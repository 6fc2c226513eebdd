// swift-tools-version:6.0
// ScratchNet: the networks of "Deep Learning from Scratch" on OpenCL devices and a pure-Swift CPU path,
// with bitwise-identical results on every device.
import PackageDescription

// Bitwise parity needs every multiply-add to be a real fused multiply-add. On x86-64 Swift only emits
// `vfmadd` when the target CPU has FMA; otherwise `addingProduct` becomes a slow `fmaf` library call
// (same bits, ~10x slower). "haswell" (x86-64-v3: Intel 2013+, AMD Zen+) has FMA and AVX2. Override with
// SCRATCHNET_TARGET_CPU=native (or =none to build for baseline x86-64) when building.
let targetCPU = Context.environment["SCRATCHNET_TARGET_CPU"] ?? "haswell"
#if arch(x86_64)
let cpuFlags: [SwiftSetting] = targetCPU == "none" ? [] : [.unsafeFlags(["-target-cpu", targetCPU])]
#else
let cpuFlags: [SwiftSetting] = []
#endif

let package = Package(
    name: "ScratchNet",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "ScratchNet", targets: ["ScratchNet", "ScratchNetOpenCL", "ScratchNetIO"]),
        .executable(name: "scratchnet", targets: ["scratchnet"]),
        .executable(name: "scratchnet-fuzz", targets: ["ScratchNetFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
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
