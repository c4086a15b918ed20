// K0 statistics (docs/algorithm.md §1) against the authors' PyTorch code (shared/fixtures/alphaedit/c_cov500_*),
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

    /// The distributed pipeline sums partial statistics: two halves cut at a batch boundary, merged,
    /// equal the whole, and so do 2 parallel forwards, whatever BLAS's configured thread count — up to
    /// float64 summation order (1e-12 relative), because every sentence's keys are the same float32
    /// numbers (fixed global batches, one BLAS thread; see CovarianceBuilder). On AVX2 machines the
    /// token-cut batches of before differed by 8e-8 here.
    func testHalvesMergeToWhole() throws {
        let (m, tok) = try ModelFixtureTests.load()
        let corpus = try Self.corpus()
        BLAS.setThreads(2)   // the builder must not depend on it
        let b = try CovarianceBuilder(model: m, tokenizer: tok, layers: [5, 3], batchSentences: 8)
        XCTAssertEqual(b.layers, [3, 5])
        var reports: [CovarianceProgress] = []
        let whole = try b.build(corpus: corpus, range: 0..<40) { reports.append($0) }
        var merged = try b.build(corpus: corpus, range: 0..<16)
        try merged.merge(try b.build(corpus: corpus, range: 16..<40))
        BLAS.setThreads(1)
        let two = try CovarianceBuilder(model: m, tokenizer: tok, layers: [3, 5], batchSentences: 8, workers: 2)
        let parallel = try two.build(corpus: corpus, range: 0..<40)
        BLAS.setThreads(2)
        for (name, other) in [("halves merged", merged), ("2 workers", parallel)] {
            for l in [3, 5] {
                XCTAssertEqual(try other.count(layer: l), try whole.count(layer: l))
                let w = try whole.sum(layer: l), s = try other.sum(layer: l)
                let d = zip(w.values, s.values).reduce(0.0) { max($0, abs($1.0 - $1.1)) } / w.maxAbs
                print("layer \(l): \(try whole.count(layer: l)) tokens; \(name) vs whole: max diff / max|S| = \(d)")
                XCTAssertLessThanOrEqual(d, 1e-12, "\(name), layer \(l)")
            }
        }
        XCTAssertEqual(reports.count, 5, "batches of 8 sentences")
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
        XCTAssertThrowsError(try CovarianceBuilder(model: m, tokenizer: tok, layers: [3], batchSentences: 0)) {
            XCTAssertEqual("\($0)", "batch size 0 sentences must be at least 1")
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
        // Global batches of 10: a range starting or ending inside one is cut there, never regrouped.
        XCTAssertEqual(CovarianceBuilder.batches(first: 0, count: 25, size: 10), [0..<10, 10..<20, 20..<25])
        XCTAssertEqual(CovarianceBuilder.batches(first: 7, count: 15, size: 10), [0..<3, 3..<13, 13..<15])
        XCTAssertEqual(CovarianceBuilder.batches(first: 10, count: 10, size: 10), [0..<10])
        XCTAssertEqual(CovarianceBuilder.batches(first: 3, count: 1, size: 10), [0..<1])
        XCTAssertEqual(CovarianceBuilder.batches(first: 0, count: 0, size: 10), [])
    }

    /// Shards end on batch boundaries, so no shard splits a batch, whatever shard_sentences says.
    func testShardsNeverSplitBatches() {
        func cuts(_ r: Range<Int>, shard: Int, batch: Int) -> [Range<Int>] {
            CovarianceJobPlan(corpus: "c", range: r, layers: [3], f: 8, batchSentences: batch, shardSentences: shard)
                .shards.map { $0.first..<($0.first + $0.count) }
        }
        XCTAssertEqual(cuts(0..<100, shard: 40, batch: 24), [0..<48, 48..<96, 96..<100])
        XCTAssertEqual(cuts(5..<100, shard: 30, batch: 10), [5..<30, 30..<60, 60..<90, 90..<100])
        XCTAssertEqual(cuts(0..<10, shard: 1, batch: 4), [0..<4, 4..<8, 8..<10])
        for (r, shard, batch) in [(3..<997, 50, 24), (0..<500, 500, 24), (17..<18, 5, 24)] {
            let c = cuts(r, shard: shard, batch: batch)
            XCTAssertEqual(c.first?.lowerBound, r.lowerBound)
            XCTAssertEqual(c.last?.upperBound, r.upperBound)
            XCTAssertTrue(zip(c, c.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound && $0.upperBound % batch == 0 })
        }
    }

    /// The corpus reader stops at the last sentence wanted (a bad line after it is never read) and
    /// names a bad line by its number in the file, empty lines counted.
    func testCorpusReadsOnlyWhatItNeedsAndNamesBadLines() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("corpus-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try [#"{"sentence": "A b."}"#, "", #"{"sentence": "C d."}"#, #"{"sentence": "E f."}"#, "not json", ""]
            .joined(separator: "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try SentenceCorpus.read(path: path, offset: 1, limit: 2), ["C d.", "E f."])
        XCTAssertThrowsError(try SentenceCorpus.read(path: path)) {
            XCTAssertEqual("\($0)", "corpus \(path) line 5: not a JSON object")
        }
    }
}
