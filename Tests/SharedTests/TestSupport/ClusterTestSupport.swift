// What the process tests of the cluster share: the built executables, a tiny synthetic model and
// corpus in a short temporary directory (ipc paths must stay under 107 bytes), a log handler that
// keeps the coordinator's lines for assertions, and the 1e-9 comparison of key statistics.
import Foundation
import Logging
import Shared
import XCTest

enum ClusterTestSupport {
    /// The directory of the running test bundle: SwiftPM builds the executables beside it
    /// (`<scratch-path>/release`, `.build/release` in CI).
    static var binDir: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// A peer that a test waits on said nothing: the test fails (never skips) with this.
    struct NoAnswer: Error, CustomStringConvertible {
        let what: String
        let seconds: Int
        var description: String { "\(what): no answer in \(seconds) s" }
    }

    struct MissingExecutable: Error, CustomStringConvertible {
        let path: String
        var description: String { "\(path) is not built: run `swift build -c release --build-tests` first (it builds the executables too)" }
    }

    /// This test process runs OpenBLAS's generic kernels where the executables it starts re-execute with
    /// better ones (BLASRuntime.ensureOptimizedKernels; XCTest cannot): their results then differ in the
    /// last bits (1.8e-7 relative on an Intel Xeon that OpenBLAS 0.3.21 reads as Prescott, 2026-12-07).
    struct MismatchedKernels: Error, CustomStringConvertible {
        let core: String, best: String
        var description: String {
            "this test process runs OpenBLAS's \(core) kernels and the executables it starts re-execute with \(best): "
                + "their sums would differ in the last bits; run the tests with `bash scripts/test.sh`, or export OPENBLAS_CORETYPE=\(best)"
        }
    }

    /// A built executable of the package; a test that needs one fails (not skips) when it is missing, or
    /// when it would run other BLAS kernels than this process (`MismatchedKernels`).
    static func executable(_ name: String) throws -> String {
        let p = binDir.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: p) else { throw MissingExecutable(path: p) }
        let env = ProcessInfo.processInfo.environment
        if env["OPENBLAS_CORETYPE"] == nil, let best = BLASRuntime.bestCoreType(),
           BLASRuntime.upgrade(from: BLASRuntime.coreName, best: best, capped: env["ALPHAEDIT_ISA"] == "avx2") != nil {
            throw MismatchedKernels(core: BLASRuntime.coreName, best: best)
        }
        return p
    }

    static func tempDir() throws -> String {
        let d = "/tmp/aec-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// Big enough that a covariance shard of 200 sentences takes a few hundred milliseconds (a
    /// kill -9 lands inside it), small enough that the whole corpus takes seconds.
    static let modelConfig = SyntheticConfig(layers: 3, hidden: 128, ffn: 512, heads: 4, kvHeads: 2, contextLength: 256)
    static let layers = [1, 2]

    static func model(in dir: String, seed: UInt64 = 0x5EED) throws -> String {
        let p = dir + "/model-\(seed).gguf"
        try SyntheticModel.write(to: p, config: modelConfig, seed: seed)
        return p
    }

    /// `n` deterministic sentences as JSON lines.
    static func corpus(in dir: String, sentences n: Int) throws -> String {
        let words = ["the", "capital", "of", "France", "is", "Paris", "river", "which", "flows", "through", "a", "city",
                     "known", "for", "its", "tower", "and", "museums", "in", "north"]
        var rng = SplitMix64(seed: 11)
        var lines: [String] = []
        for _ in 0..<n {
            let len = 6 + Int(rng.next() % 10)
            let s = (0..<len).map { _ in words[Int(rng.next() % UInt64(words.count))] }.joined(separator: " ") + "."
            lines.append(#"{"sentence": "\#(s.prefix(1).uppercased() + s.dropFirst())"}"#)
        }
        let p = dir + "/corpus.jsonl"
        try lines.joined(separator: "\n").write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    static func inProcessStatistics(model path: String, corpus: String, range: Range<Int>, layers: [Int] = layers) throws -> KeyStatistics {
        let m = try LlamaModel(path: path)
        return try CovarianceBuilder(model: m, tokenizer: try BPETokenizer(gguf: m.gguf), layers: layers)
            .build(corpus: corpus, range: range)
    }

    /// max |a − b| / max |b| over every layer's S (and counts equal).
    static func relativeDifference(_ a: KeyStatistics, _ b: KeyStatistics) throws -> Double {
        XCTAssertEqual(a.layers, b.layers)
        XCTAssertEqual(a.counts, b.counts, "token counts")
        var diff = 0.0, scale = 0.0
        for l in b.layers {
            let x = try a.sum(layer: l).values, y = try b.sum(layer: l).values
            for i in y.indices { diff = max(diff, abs(x[i] - y[i])); scale = max(scale, abs(y[i])) }
        }
        return diff / scale
    }

    static func start(_ executable: String, _ args: [String], stderr: String? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        if let stderr {
            FileManager.default.createFile(atPath: stderr, contents: nil)
            p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderr))
        }
        try p.run()
        return p
    }

    /// Waits for `p` to exit, at most `seconds` (then kills it and fails).
    static func wait(_ p: Process, seconds: Double, _ what: String) {
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning, Date() < deadline { usleep(20_000) }
        if p.isRunning {
            XCTFail("\(what) still running after \(seconds) s")
            kill(p.processIdentifier, SIGKILL)
        }
        p.waitUntilExit()
    }

    /// A log file's text; bytes that are not UTF-8 (a synthetic model's generated tokens) become U+FFFD.
    static func read(_ path: String) -> String {
        (try? Data(contentsOf: URL(fileURLWithPath: path))).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// Runs `executable` to its end: exit status and stdout + stderr together.
    static func run(_ executable: String, _ args: [String], env: [String: String] = [:]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        let out = Pipe()
        p.standardError = out
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    /// ΔW of every edited layer summed over the committed batches of the state in `directory`
    /// (files checked by checksum).
    static func deltas(state directory: String) throws -> [Int: [Float]] {
        let st = try EditState.load(directory: directory)
        var sum: [Int: [Float]] = [:]
        for b in st.manifest.batches {
            for (l, d) in try BatchDeltas.read(from: try st.verified(b.deltas)).deltas {
                sum[l] = zip(sum[l] ?? [Float](repeating: 0, count: d.count), d).map { $0 + $1 }
            }
        }
        return sum
    }

    /// max |a − b| / max |b| over the layers of two ΔW sets (their layers equal).
    static func relativeDifference(_ a: [Int: [Float]], _ b: [Int: [Float]]) -> Double {
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        var diff: Float = 0, scale: Float = 0
        for (l, y) in b { for (x, y) in zip(a[l] ?? [], y) { diff = max(diff, abs(x - y)); scale = max(scale, abs(y)) } }
        return scale > 0 ? Double(diff / scale) : .infinity
    }
}

/// Keeps every log line (for assertions on what the coordinator said) and echoes warnings and errors.
final class CapturedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    var all: [String] { lock.withLock { lines } }
    func append(_ s: String) { lock.withLock { lines.append(s) } }
    func contains(_ s: String) -> Bool { all.contains { $0.contains(s) } }

    var logger: Logger { Logger(label: "test-coordinator") { _ in CapturingHandler(sink: self) } }

    struct CapturingHandler: LogHandler {
        let sink: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            sink.append("\(level): \(message)")
            if level >= .warning { FileHandle.standardError.write(Data("[coordinator] \(level): \(message)\n".utf8)) }
        }
    }
}
