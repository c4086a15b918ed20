// K0 statistics (method.md §1) against the authors' PyTorch code (shared/fixtures/alphaedit/c_cov500_*),
// shards that merge to the whole, and the batch plan.
import Foundation
import Shared
import XCTest

final class CovarianceFixtureTests: XCTestCase {
    struct CovFixture: Decodable {
        let layer: Int
        let n_sentences: Int
        let token_count: Int
        let trace: Double
        let top10_eigenvalues: [Double]
        let n_eig_lt_1e_2: Int
        let n_eig_lt_2e_2: Int
        let diag_first10: [Double]

        enum CodingKeys: String, CodingKey {
            case layer, n_sentences, token_count, trace, top10_eigenvalues, diag_first10
            case n_eig_lt_1e_2 = "n_eig_lt_1e-2", n_eig_lt_2e_2 = "n_eig_lt_2e-2"
        }
    }

    static func corpus() throws -> String { try RepoPaths.sharedFile("data/wiki-triplets/trex.jsonl").path }

    /// Layer 3 over the first 500 sentences: token count exact; trace and top-10 eigenvalues within
    /// 1e-4 relative; counts below 1e-2 / 2e-2 within ±3; diagonal within 1e-4 relative (the JSON
    /// rounds it to 6 digits); the full matrix within 1e-6 absolute.
    func testCov500Layer3MatchesReference() throws {
        let (m, tok) = try ModelFixtureTests.load()
        let fx = try JSONDecoder().decode(CovFixture.self, from: Data(
            contentsOf: try RepoPaths.sharedFile("fixtures/alphaedit/c_cov500_layer3.json")))
        let builder = try CovarianceBuilder(model: m, tokenizer: tok, layers: [fx.layer])
        let t0 = ProcessStats.now()
        let stats = try builder.build(corpus: try Self.corpus(), range: 0..<fx.n_sentences)
        let seconds = ProcessStats.now() - t0
        let n = try stats.count(layer: 3)
        print(String(format: "cov500 layer 3: %d tokens in %.2f s (%.0f tokens/s, one layer)", n, seconds, Double(n) / seconds))
        XCTAssertEqual(n, fx.token_count)

        let c0 = try stats.mean(layer: 3)
        let f = c0.rows
        let (eig, _) = try LAPACK.symmetricEigen(c0.values, n: f)
        let trace = (0..<f).reduce(0.0) { $0 + c0[$1, $1] }
        let dTrace = abs(trace - fx.trace) / fx.trace
        print("cov500: trace \(trace) vs \(fx.trace), relative diff \(dTrace)")
        XCTAssertLessThanOrEqual(dTrace, 1e-4)

        let top = Array(eig.reversed().prefix(10))
        let dTop = zip(top, fx.top10_eigenvalues).map { abs($0 - $1) / $1 }.max() ?? .infinity
        print("cov500: top-10 eigenvalues max relative diff \(dTop) (largest \(top[0]) vs \(fx.top10_eigenvalues[0]))")
        XCTAssertLessThanOrEqual(dTop, 1e-4)

        let below1 = eig.filter { $0 < 1e-2 }.count, below2 = eig.filter { $0 < 2e-2 }.count
        print("cov500: eigenvalues < 1e-2: \(below1) (reference \(fx.n_eig_lt_1e_2)); < 2e-2: \(below2) (reference \(fx.n_eig_lt_2e_2))")
        XCTAssertLessThanOrEqual(abs(below1 - fx.n_eig_lt_1e_2), 3)
        XCTAssertLessThanOrEqual(abs(below2 - fx.n_eig_lt_2e_2), 3)

        let dDiag = fx.diag_first10.enumerated().map { abs(c0[$0.offset, $0.offset] - $0.element) / $0.element }.max() ?? .infinity
        print("cov500: first 10 diagonal entries max relative diff \(dDiag)")
        XCTAssertLessThanOrEqual(dDiag, 1e-4)

        let npy = try NPY.read(path: try RepoPaths.sharedFile("fixtures/alphaedit/c_cov500_layer3.npy").path)
        XCTAssertEqual(npy.shape, [f, f])
        let dMax = zip(c0.values, npy.values).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
        print("cov500: full matrix max abs diff \(dMax) (max |C0| \(c0.maxAbs))")
        XCTAssertLessThanOrEqual(dMax, 1e-6)
    }

    /// The distributed pipeline sums partial statistics: two halves merged = the whole (1e-9 relative),
    /// with batch boundaries that differ between the runs.
    func testHalvesMergeToWhole() throws {
        let (m, tok) = try ModelFixtureTests.load()
        let corpus = try Self.corpus()
        let b = try CovarianceBuilder(model: m, tokenizer: tok, layers: [5, 3], batchTokens: 300)
        XCTAssertEqual(b.layers, [3, 5])
        var reports: [CovarianceProgress] = []
        let whole = try b.build(corpus: corpus, range: 0..<40) { reports.append($0) }
        var merged = try b.build(corpus: corpus, range: 0..<17)
        try merged.merge(try b.build(corpus: corpus, range: 17..<40))
        for l in [3, 5] {
            XCTAssertEqual(try merged.count(layer: l), try whole.count(layer: l))
            let w = try whole.sum(layer: l), s = try merged.sum(layer: l)
            let d = zip(w.values, s.values).reduce(0.0) { max($0, abs($1.0 - $1.1)) } / w.maxAbs
            print("layer \(l): \(try whole.count(layer: l)) tokens; halves merged vs whole: max diff / max|S| = \(d)")
            XCTAssertLessThanOrEqual(d, 1e-9)
        }
        // Two workers (each its own batches and partial sums) = one, up to float64 summation order.
        BLAS.setThreads(1)  // each worker calls BLAS from its own thread
        defer { BLAS.setThreads(2) }  // the machine's cores, the test process's default
        let two = try CovarianceBuilder(model: m, tokenizer: tok, layers: [3, 5], batchTokens: 300, workers: 2)
        let parallel = try two.build(corpus: corpus, range: 0..<40)
        for l in [3, 5] {
            XCTAssertEqual(try parallel.count(layer: l), try whole.count(layer: l))
            let w = try whole.sum(layer: l)
            let d = zip(w.values, try parallel.sum(layer: l).values).reduce(0.0) { max($0, abs($1.0 - $1.1)) } / w.maxAbs
            print("layer \(l): 2 workers vs 1: max diff / max|S| = \(d)")
            XCTAssertLessThanOrEqual(d, 1e-9)
        }
        XCTAssertGreaterThan(reports.count, 3, "several batches")
        XCTAssertEqual(reports.last?.sentencesDone, 40)
        XCTAssertEqual(reports.last?.tokensDone, try whole.count(layer: 3))
        XCTAssertEqual(reports.last?.tokensTotal, try whole.count(layer: 3))
        XCTAssertEqual(reports.last?.eta ?? -1, 0, accuracy: 1e-12)
        XCTAssertEqual(whole.provenance, "corpus trex.jsonl sentences 0..<40")
    }

    func testInputErrors() throws {
        let (m, tok) = try ModelFixtureTests.load()
        XCTAssertThrowsError(try CovarianceBuilder(model: m, tokenizer: tok, layers: [3, 30])) {
            XCTAssertEqual("\($0)", "layers [3, 30] must be distinct, non-empty and within the model's 0...29")
        }
        XCTAssertThrowsError(try CovarianceBuilder(model: m, tokenizer: tok, layers: [])) {
            XCTAssertEqual("\($0)", "layers [] must be distinct, non-empty and within the model's 0...29")
        }
        XCTAssertThrowsError(try CovarianceBuilder(model: m, tokenizer: tok, layers: [3], workers: 0)) {
            XCTAssertEqual("\($0)", "0 workers: expected 1-256")
        }
        XCTAssertThrowsError(try CovarianceBuilder(model: m, tokenizer: tok, layers: [3], batchTokens: 0)) {
            XCTAssertEqual("\($0)", "batch size 0 tokens must be at least 1")
        }
        let b = try CovarianceBuilder(model: m, tokenizer: tok, layers: [3])
        let corpus = try Self.corpus()
        XCTAssertThrowsError(try b.build(corpus: corpus, range: 94_780..<94_800)) {
            XCTAssertEqual("\($0)", "corpus \(corpus) has 94790 sentences; the range needs 94800")
        }
        XCTAssertThrowsError(try b.build(corpus: corpus, range: 5..<5)) {
            XCTAssertEqual("\($0)", "sentence range 5..<5 is invalid")
        }
    }

    func testBatchPlan() {
        let small = QuantizedLinear.maxRows
        XCTAssertEqual(CovarianceBuilder.batches(lengths: [40, 40, 40, 40], batchTokens: 100), [0..<2, 2..<4])
        // A sentence longer than the target goes alone; a short tail joins the batch before it.
        XCTAssertEqual(CovarianceBuilder.batches(lengths: [40, 500, 40, small], batchTokens: 100), [0..<1, 1..<2, 2..<4])
        XCTAssertEqual(CovarianceBuilder.batches(lengths: [40, 500, 40, small + 1], batchTokens: 50), [0..<1, 1..<2, 2..<3, 3..<4])
        // A short head grows past the target rather than run alone.
        XCTAssertEqual(CovarianceBuilder.batches(lengths: [3, 500, 40], batchTokens: 100), [0..<2, 2..<3])
        XCTAssertEqual(CovarianceBuilder.batches(lengths: [5], batchTokens: 100), [0..<1])
        XCTAssertEqual(CovarianceBuilder.batches(lengths: [], batchTokens: 100), [])
    }
}
