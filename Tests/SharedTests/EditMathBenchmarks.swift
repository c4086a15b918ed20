// Throughput figures of the edit math at SmolLM2-135M sizes (f = 1536, d = 576), printed, not
// asserted: timings depend on the machine. Run with
//   ALPHAEDIT_BENCH=1 swift test -c release --filter EditMathBenchmarks
import Foundation
import Shared
import XCTest

final class EditMathBenchmarks: XCTestCase {
    override func setUpWithError() throws {
        guard ProcessInfo.processInfo.environment["ALPHAEDIT_BENCH"] == "1" else {
            throw XCTSkip("set ALPHAEDIT_BENCH=1 to run the edit-math benchmarks")
        }
        BLAS.setThreads(2)
    }

    private func seconds(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    /// docs/algorithm.md §1 hot path: S_l += Kᵀ K for 5 layers from one forward pass.
    func testAccumulateThroughput() throws {
        let f = 1536, layers = [3, 4, 5, 6, 7], tokens = 2048
        var rng = EditMathRNG(seed: 31)
        let k = rng.floats(tokens * f).map { $0 * 0.5 }
        var stats = try KeyStatistics(layers: layers, f: f)
        try k.withUnsafeBufferPointer { p in
            for l in layers { try stats.accumulate(layer: l, keys: p.baseAddress!, count: 256) }  // warm-up
            let reps = 3
            let t = try seconds {
                for _ in 0..<reps { for l in layers { try stats.accumulate(layer: l, keys: p.baseAddress!, count: tokens) } }
            }
            let tps = Double(reps * tokens) / t
            print(String(format: "accumulate f=1536, 5 layers, float64 dsyrk: %.0f tokens/s (%.0f token·layers/s, %.1f GFLOP/s)",
                         tps, tps * 5, tps * 5 * Double(f * (f + 1)) / 1e9))
            // For comparison only: the same rank-k update in float32 (ssyrk), as the reference does.
            var c = [Float](repeating: 0, count: f * f)
            let t32 = seconds {
                c.withUnsafeMutableBufferPointer { cp in
                    for _ in 0..<(reps * layers.count) {
                        BLAS.ssyrkUpperAtA(n: f, k: tokens, a: p.baseAddress!, lda: f, beta: 1, c: cp.baseAddress!, ldc: f)
                    }
                }
            }
            print(String(format: "  (float32 ssyrk, same work: %.0f tokens/s)", Double(reps * tokens) / t32))
        }
        let t = try seconds { _ = try KeyStatistics.read(bytes: stats.serialized()) }
        print(String(format: "  artifact of 5 layers (%.0f MB) serialize + read: %.2f s", Double(5 * f * (f + 1) / 2 * 8) / 1e6, t))
    }

    /// docs/algorithm.md §1 and §4.3 at f = 1536, d = 576, u = 100, r ≈ 1100: projector, AlphaEdit vs MEMIT.
    func testSolveTimes() throws {
        let f = 1536, d = 576, u = 100, rank = 436  // C0 of rank 436: null space of dimension 1100
        var rng = EditMathRNG(seed: 32)
        let k0 = rng.matrix(f, rank)
        let c0low = try k0.times(k0, transposeOther: true).scaled(1 / Double(rank))
        var projector: NullSpaceProjector?
        let tEig = try seconds { projector = try NullSpaceProjector(c0: c0low, threshold: 1e-8, layer: 3) }
        let p = try XCTUnwrap(projector)
        print(String(format: "projector f=1536 (dsyevd + Û): %.3f s, r = %d", tEig, p.keptDimension))

        let k1 = rng.matrix(f, u), r = rng.matrix(d, u)
        let kp = rng.matrix(f, 1000)
        let cp = try kp.times(kp, transposeOther: true)
        let full = rng.matrix(f, 3000)
        let c0 = try full.times(full, transposeOther: true).scaled(1.0 / 3000)

        func best(_ body: () throws -> Void) rethrows -> Double {
            try (0..<3).map { _ in try seconds(body) }.min() ?? 0
        }
        let tA0 = try best { _ = try EditSolver.alphaEdit(residual: r, keys: k1, projector: p) }
        let tA = try best { _ = try EditSolver.alphaEdit(residual: r, keys: k1, projector: p, previousKeys: cp) }
        let tM = try best { _ = try EditSolver.memit(residual: r, keys: k1, c0: c0, previousKeys: cp) }
        print(String(format: "solve f=1536 d=576 u=100 r=%d: AlphaEdit %.3f s (Cp = 0: %.3f s), MEMIT %.3f s (best of 3)",
                     p.keptDimension, tA, tA0, tM))
    }
}
