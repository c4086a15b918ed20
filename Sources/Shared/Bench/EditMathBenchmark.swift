// `alphaedit bench math`: the edit math at SmolLM2-135M sizes (f = 1536, d = 576) on random data:
// K0 accumulation (docs/algorithm.md §1, float64 dsyrk, with float32 ssyrk for comparison), the
// statistics artifact round trip, the projector's eigendecomposition, and the AlphaEdit and MEMIT
// solves of §4.3 for u = 100.
import Support
import Kernels
import Editing
import Foundation

public struct EditMathBenchmark {
    public struct Result: Codable, Sendable {
        public var f: Int
        public var d: Int
        public var accumulate_tokens_per_s: Double
        public var accumulate_gflops: Double
        public var accumulate_float32_tokens_per_s: Double
        public var statistics_artifact_mb: Double
        public var statistics_round_trip_seconds: Double
        public var projector_seconds: Double
        public var kept_dimension: Int
        public var alphaedit_solve_seconds: Double
        public var alphaedit_solve_no_cp_seconds: Double
        public var memit_solve_seconds: Double
        public var threads: Int
        public var kernels = KernelChoice.current
    }

    struct Random {
        var g: SplitMix64
        mutating func uniform() -> Double { Double(g.next() >> 11) / Double(1 << 53) * 2 - 1 }
        mutating func matrix(_ rows: Int, _ cols: Int) -> Matrix64 {
            var m = Matrix64(zeros: rows, cols)
            for i in 0..<rows { for j in 0..<cols { m[i, j] = uniform() } }
            return m
        }
    }

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let t0 = ProcessStats.now()
        try body()
        return ProcessStats.now() - t0
    }

    /// Best of `n` (the least disturbed run on a shared machine).
    static func best(_ n: Int, _ body: () throws -> Void) rethrows -> Double {
        try (0..<n).map { _ in try seconds(body) }.min() ?? 0
    }

    public static func run(threads: Int, log: (String) -> Void) throws -> Result {
        BLAS.setThreads(threads)
        let f = 1536, d = 576, layers = [3, 4, 5, 6, 7], tokens = 2048, reps = 3
        var rng = Random(g: SplitMix64(seed: 31))
        let k = (0..<(tokens * f)).map { _ in Float(rng.uniform() * 0.5) }
        var stats = try KeyStatistics(layers: layers, f: f)
        var t = 0.0, t32 = 0.0
        try k.withUnsafeBufferPointer { p in
            for l in layers { try stats.accumulate(layer: l, keys: p.baseAddress!, count: 256) }  // warm-up
            t = try seconds { for _ in 0..<reps { for l in layers { try stats.accumulate(layer: l, keys: p.baseAddress!, count: tokens) } } }
            var c = [Float](repeating: 0, count: f * f)
            t32 = seconds {
                c.withUnsafeMutableBufferPointer { cp in
                    for _ in 0..<(reps * layers.count) {
                        BLAS.ssyrkUpperAtA(n: f, k: tokens, a: p.baseAddress!, lda: f, beta: 1, c: cp.baseAddress!, ldc: f)
                    }
                }
            }
        }
        let tps = Double(reps * tokens) / t
        log(String(format: "accumulate: %.0f tokens/s over 5 layers (float32: %.0f)", tps, Double(reps * tokens) / t32))
        let bytes = stats.serialized()
        let tRead = try seconds { _ = try KeyStatistics.read(bytes: stats.serialized()) }

        let rank = 436  // C0 of rank 436: a null space of dimension 1100
        let k0 = rng.matrix(f, rank)
        let c0low = try k0.times(k0, transposeOther: true).scaled(1 / Double(rank))
        var projector: NullSpaceProjector?
        let tEig = try seconds { projector = try NullSpaceProjector(c0: c0low, threshold: 1e-8, layer: 3) }
        guard let p = projector else { throw LinearAlgebraError.shapeMismatch("no projector") }
        log(String(format: "projector: %.3f s, kept %d", tEig, p.keptDimension))
        let u = 100
        let k1 = rng.matrix(f, u), r = rng.matrix(d, u)
        let kp = rng.matrix(f, 1000)
        let cp = try kp.times(kp, transposeOther: true)
        let full = rng.matrix(f, 3000)
        let c0 = try full.times(full, transposeOther: true).scaled(1.0 / 3000)
        let tA0 = try best(3) { _ = try EditSolver.alphaEdit(residual: r, keys: k1, projector: p) }
        let tA = try best(3) { _ = try EditSolver.alphaEdit(residual: r, keys: k1, projector: p, previousKeys: cp) }
        let tM = try best(3) { _ = try EditSolver.memit(residual: r, keys: k1, c0: c0, previousKeys: cp) }
        return Result(f: f, d: d, accumulate_tokens_per_s: tps, accumulate_gflops: tps * 5 * Double(f * (f + 1)) / 1e9,
                      accumulate_float32_tokens_per_s: Double(reps * tokens) / t32,
                      statistics_artifact_mb: Double(bytes.count) / 1e6, statistics_round_trip_seconds: tRead,
                      projector_seconds: tEig, kept_dimension: p.keptDimension,
                      alphaedit_solve_seconds: tA, alphaedit_solve_no_cp_seconds: tA0, memit_solve_seconds: tM, threads: threads)
    }
}
