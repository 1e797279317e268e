// swift-tools-version:6.0
import PackageDescription

// The numeric kernels are written with 8-wide SIMD types; on x86-64 they compile to AVX2 (any x86
// CPU since 2013) instead of pairs of SSE instructions, which halves the Splat rasterizer's time.
#if arch(x86_64)
let kernelSettings: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-mavx2", "-Xcc", "-mfma"])]
#else
let kernelSettings: [SwiftSetting] = []
#endif

// C libraries sit behind one system-library shim target each (module.modulemap + shim.h);
// Swift modules import them privately so no C type reaches public API.
let package = Package(
    name: "pgflow",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pgflow", targets: ["pgflow"]),
        .library(name: "PGFlow", targets: ["PGFlow"]),
        .library(name: "PGNodes", targets: ["PGNodes"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
    ],
    targets: [
        // C shims
        .systemLibrary(name: "CJSONC", path: "Sources/CJSONC", pkgConfig: "json-c",
                       providers: [.apt(["libjson-c-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        // FFmpeg's headers (libavformat-dev, libavcodec-dev, libavutil-dev, libswscale-dev) and a
        // loader that opens the libraries on first use instead of linking them.
        .target(name: "CFFmpeg", path: "Sources/CFFmpeg"),
        // OpenBLAS's header (libopenblas-dev) and a loader that opens the library on first use,
        // single-threaded, instead of linking it.
        .target(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPrefetch", path: "Sources/CPrefetch"),   // header-only: cache prefetch hints
        .systemLibrary(name: "CMemory", path: "Sources/CMemory"),       // header-only: glibc malloc tuning

        // Swift modules, bottom up
        .target(name: "PGTensor", dependencies: ["CZlib"]),
        .target(name: "PGKernels", dependencies: ["CBLAS", "CPrefetch", "PGTensor"], swiftSettings: kernelSettings),
        .target(name: "PGMedia", dependencies: ["PGTensor", "CFFmpeg", "CPNG"]),
        .target(name: "PGFlow", dependencies: [
            "PGTensor", "CJSONC", "CMemory",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "PGNodes", dependencies: [
            "PGFlow", "PGTensor", "PGKernels", "PGMedia",
            .product(name: "Crypto", package: "swift-crypto"),   // Encoder's File.sha256
        ]),
        // Run reports: what a graph's runs left in the cache and its output files, as one HTML page.
        .target(name: "PGReport", dependencies: ["PGFlow", "PGNodes", "PGMedia", "PGTensor"]),
        .executableTarget(name: "pgflow", dependencies: [
            "PGNodes", "PGFlow", "PGTensor", "PGKernels", "PGMedia", "PGReport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Benchmarks that print tables (release build): `swift run -c release pgbench splat`.
        .executableTarget(name: "pgbench", dependencies: ["PGKernels", "PGTensor", "PGFlow", "PGNodes", "PGMedia"]),

        // Tests: one target per module, one that runs every graph in Graphs/, one for the CLI.
        .testTarget(name: "PGTensorTests", dependencies: ["PGTensor"]),
        .testTarget(name: "PGKernelsTests", dependencies: ["PGKernels", "PGTensor", "CBLAS"], resources: [.copy("Fixtures")]),
        .testTarget(name: "PGMediaTests", dependencies: ["PGMedia", "PGTensor", "CFFmpeg"]),   // CFFmpeg: frames of formats no file here has
        .testTarget(name: "PGFlowTests", dependencies: ["PGFlow", "PGTensor"]),
        .testTarget(name: "PGNodesTests", dependencies: ["PGNodes", "PGFlow", "PGTensor", "PGKernels", "PGMedia"],
                    exclude: ["Fixtures"]),   // read in place through #filePath
        .testTarget(name: "GraphsTests", dependencies: ["PGNodes", "PGFlow", "PGMedia"]),
        .testTarget(name: "CLITests", dependencies: ["PGMedia", "PGTensor"]),
        .testTarget(name: "PGReportTests", dependencies: ["PGReport", "PGFlow", "PGNodes", "PGMedia", "PGTensor"]),
    ],
    swiftLanguageModes: [.v6]
)
