// swift-tools-version:6.0
import PackageDescription

// Hot loops (dequantisation, attention, norms) are bounds-checked in debug and unchecked in release.
let fast: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "alphaedit",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "alphaedit", targets: ["Coordinator"]),
        .executable(name: "alphaedit-worker", targets: ["Worker"]),
        .library(name: "Shared", targets: ["Shared"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]),
        .systemLibrary(name: "CZMQ", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // Quantized small-batch matmul kernels in C: AVX2/AVX-512 chosen per function at run time.
        .target(name: "CQuantKernels"),
        .target(
            name: "Shared",
            dependencies: ["CBLAS", "CZMQ", "CSQLite", "CQuantKernels", .product(name: "Logging", package: "swift-log")],
            swiftSettings: fast),
        .executableTarget(
            name: "Coordinator",
            dependencies: ["Shared", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: fast),
        .executableTarget(
            name: "Worker",
            dependencies: ["Shared", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: fast),
        .testTarget(name: "SharedTests", dependencies: ["Shared", .product(name: "Logging", package: "swift-log")],
                    swiftSettings: fast),
    ],
    // Swift 5 language mode: the numeric core shares raw buffers across threads by design
    // (each thread owns disjoint rows), which the Swift 6 checker cannot express without copies.
    swiftLanguageModes: [.v5]
)
