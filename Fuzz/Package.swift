// swift-tools-version:6.0
// libFuzzer programs for the fuzz targets of Sources/Shared/FuzzTargets (one per parser of untrusted
// input). Build and run them with scripts/fuzz.sh, which passes `-sanitize=fuzzer,address
// -parse-as-library` to every Swift target, so the library code is instrumented too, not just the
// harness. A separate package, so the product's own build never links libFuzzer.
import PackageDescription

let harnesses = ["FuzzGGUF", "FuzzWire", "FuzzFacts", "FuzzConfig", "FuzzArtifact", "FuzzKeys", "FuzzCurve"]

let package = Package(
    name: "alphaedit-fuzz",
    dependencies: [.package(name: "alphaedit", path: "..")],
    targets: [
        .target(name: "CFuzzDriver", path: "Sources/CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzDriver", .product(name: "FuzzTargets", package: "alphaedit")],
                path: "Sources/FuzzSupport"),
    ] + harnesses.map { name in
        .executableTarget(name: name, dependencies: ["FuzzSupport", .product(name: "FuzzTargets", package: "alphaedit")],
                          path: "Sources/\(name)")
    }
)
