// The fuzz targets: one per parser of untrusted input, each with seed inputs made by the library's own
// writers and a test that feeds one input to the parser and to what consumes its result. Fuzz/ builds
// them into libFuzzer programs (scripts/fuzz.sh); FuzzRegressionTests replays the committed seeds and
// the inputs that once crashed them (Fuzz/Regressions) in the ordinary test run.
// A test returns normally for any input: a parser must reject bad bytes with an error, never trap.

public protocol FuzzTarget {
    /// Valid inputs to start from (name, bytes).
    static func seeds() throws -> [(String, [UInt8])]
    static func test(_ input: [UInt8])
}

public enum FuzzTargets {
    /// Harness name (Fuzz/Sources/<name>, Fuzz/Corpus/<name>, Fuzz/Regressions/<name>) and target.
    public static let all: [(name: String, target: any FuzzTarget.Type)] = [
        ("FuzzGGUF", GGUFFuzz.self), ("FuzzWire", WireFuzz.self), ("FuzzFacts", FactsFuzz.self),
        ("FuzzConfig", ConfigFuzz.self), ("FuzzArtifact", ArtifactFuzz.self), ("FuzzKeys", KeysFuzz.self),
        ("FuzzCurve", CurveFuzz.self),
    ]
}
