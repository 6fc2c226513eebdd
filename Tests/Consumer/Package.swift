// swift-tools-version:6.0
// A package that depends on ScratchNet by version, as a user's would: `.ci/consumer.sh` points SCRATCHNET_URL at
// a tagged clone and builds this. It checks that SwiftPM accepts ScratchNet as a versioned dependency (no unsafe
// build flags), that the CPU-only products link no OpenCL loader, and how fast the CPU path runs with and
// without the one consumer setting (`-Xswiftc -target-cpu -Xswiftc haswell`).
import PackageDescription

let url = Context.environment["SCRATCHNET_URL"] ?? "https://github.com/scratchnet/scratchnet"

let package = Package(
    name: "Consumer",
    dependencies: [.package(url: url, from: "0.1.0")],
    targets: [
        .executableTarget(
            name: "consumer",
            dependencies: [
                .product(name: "ScratchNet", package: "scratchnet"),
                .product(name: "ScratchNetIO", package: "scratchnet"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
