// swift-tools-version:6.0
import PackageDescription

// The layers, bottom to top; each target depends only on targets above it in this list (the compiler
// enforces it: a target imports only what it declares). Folders are Sources/Shared/<Target>.
//   Support      process stats, paths, PRNG, endpoints (Foundation only)
//   GGUF         reader, writer, names, dequantizers, synthetic test model
//   Corpus       the K0 sentence corpus
//   Tokenization byte-level BPE
//   Kernels      BLAS/LAPACK wrappers, norms, RoPE, attention, SwiGLU, quantized matmul
//   Model        the LLaMA forward/backward, K/V caches, generation
//   Editing      requests, facts files, keys, v*, K0 statistics, projector, AlphaEdit/MEMIT solve, artifacts
//   Store        the state directory: SQLite job store, commit record, EditState, lock
//   Evaluation   docs/algorithm.md §6-§7 metrics, the eval campaign, reports
//   Wire         libzmq wrapper and the protocol
//   Config       cluster.conf
//   Cluster      worker node and runner, the coordinator's pool, distributed K0 / v* / evaluation
//   Campaign     the resumable edit campaign (`alphaedit edit` is its wiring)
//   Bench        benchmarks behind `alphaedit bench`
//   FuzzTargets  one fuzz target per parser of untrusted input (Fuzz/ runs them under libFuzzer)
//   Shared       re-exports them all for the executables and tests

// Hot loops (dequantisation, attention, norms, the forward) are bounds-checked in debug and unchecked
// in release; everything else, the parsers of untrusted input first, keeps Swift's checks.
let fast: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

// Swift 6 language mode (full data-race checking) everywhere except where raw buffers are shared
// across threads by design (each thread owns disjoint rows), which the checker cannot express without
// copies: the numeric layers Kernels, Model and Editing stay in Swift 5 mode.
let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

// Every layer, for the umbrella and for the executables and tests, which import only `Shared` but
// depend on each layer too: through `@_exported` imports alone the build did not see a layer's change,
// and an executable kept a layer's old struct layout (a stored property added to ClusterConfig left
// `alphaedit edit` reading the wrong field: a crash, until something in Coordinator changed).
let layers: [Target.Dependency] = ["Support", "GGUF", "Corpus", "Tokenization", "Kernels", "Model", "Editing", "Store",
                                   "Evaluation", "Wire", "Config", "Cluster", "Campaign", "Bench", "FuzzTargets"]

func layer(_ name: String, _ deps: [Target.Dependency], settings: [SwiftSetting] = swift6) -> Target {
    .target(name: name, dependencies: deps, path: "Sources/Shared/\(name)", swiftSettings: settings)
}

// Linux only: the native libraries come from Debian packages (libzmq3-dev, libopenblas-dev,
// liblapacke-dev, libsqlite3-dev) and the code uses Glibc, /proc and flock directly.
#if !os(Linux)
#error("alphaedit builds on Linux (Swift 6.3); see README.md, Set-up")
#endif

let package = Package(
    name: "alphaedit",
    products: [
        .executable(name: "alphaedit", targets: ["Coordinator"]),
        .executable(name: "alphaedit-worker", targets: ["Worker"]),
        .library(name: "Shared", targets: ["Shared"]),
        .library(name: "FuzzTargets", targets: ["FuzzTargets"]),
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

        layer("Support", []),
        layer("GGUF", ["Support", "CQuantKernels"]),
        layer("Corpus", ["Support"]),
        layer("Tokenization", ["GGUF"]),
        layer("Kernels", ["GGUF", "CBLAS", "CQuantKernels"], settings: fast + [.swiftLanguageMode(.v5)]),
        layer("Model", ["Support", "GGUF", "Tokenization", "Kernels"], settings: fast + [.swiftLanguageMode(.v5)]),
        layer("Editing", ["Support", "Corpus", "GGUF", "Tokenization", "Kernels", "Model"], settings: [.swiftLanguageMode(.v5)]),
        layer("Store", ["Support", "GGUF", "Model", "Editing", "CSQLite"]),
        layer("Evaluation", ["Support", "Kernels", "Model", "Tokenization", "Editing", "Store"]),
        layer("Wire", ["Support", "Editing", "Evaluation", "CZMQ"]),
        layer("Config", ["Support", "Editing"]),
        layer("Cluster", ["Support", "Kernels", "Model", "Tokenization", "Editing", "Store", "Evaluation", "Wire", "Config",
                          .product(name: "Logging", package: "swift-log")]),
        layer("Campaign", ["Support", "Corpus", "Model", "Tokenization", "Editing", "Store", "Evaluation", "Config", "Cluster",
                           .product(name: "Logging", package: "swift-log")]),
        layer("Bench", ["Support", "Corpus", "Kernels", "Model", "Tokenization", "Editing", "Evaluation", "Wire", "Cluster",
                        .product(name: "Logging", package: "swift-log")]),
        layer("FuzzTargets", ["GGUF", "Tokenization", "Model", "Editing", "Evaluation", "Wire", "Config"]),
        layer("Shared", layers),

        .executableTarget(
            name: "Coordinator",
            dependencies: ["Shared"] + layers + [.product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "Worker",
            dependencies: ["Shared"] + layers + [.product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "SharedTests", dependencies: ["Shared", "CQuantKernels"] + layers + [.product(name: "Logging", package: "swift-log")],
                    resources: [.copy("Fixtures")]),
    ],
    // The default for the executables and tests; the library layers set their own (`swift6` above).
    swiftLanguageModes: [.v5]
)
