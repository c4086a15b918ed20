// K₀ statistics built once (as `alphaedit cov` does) and reused by an edit campaign and by the
// evaluation's cache, only where they are the statistics asked for (K0Source.swift): the same model,
// corpus, sentence range and layers. On the synthetic model.
import Foundation
import Shared
import XCTest

final class K0ReuseTests: XCTestCase {
    func testSourceRoundTripsAndNamesWhatDiffers() throws {
        let a = K0Source(modelChecksum: "ab12", corpusChecksum: "cd34", sentences: 0..<2000, layers: [3, 4, 5], note: "model m.gguf, corpus trex.jsonl")
        XCTAssertEqual(K0Source(provenance: a.provenance), a)
        XCTAssertNil(a.mismatch(a))
        var b = a
        b.sentences = 0..<1000; b.layers = [3, 4]; b.note = "other"
        XCTAssertEqual(a.mismatch(b), "sentences 0..<2000, wanted 0..<1000; layers 3-5, wanted 3,4")
        b = a; b.corpusChecksum = "ffff"
        XCTAssertEqual(a.mismatch(b), "corpus checksum cd34, wanted ffff")
        XCTAssertNil(K0Source(provenance: "corpus trex.jsonl sentences 0..<2000"), "free text (older files) names no source")
        let old = try KeyStatistics(layers: [1], f: 4, provenance: "model m.gguf; corpus trex.jsonl sentences 0..<2000")
        XCTAssertNotNil(old.mismatch(a), "a file without a recorded source is never taken")
    }

    func testEditReusesMatchingStatisticsAndRefusesOthers() throws {
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let modelPath = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 48)
        let facts = dir + "/facts.json"
        try #"""
        [{"prompt": "The capital of {} is", "subject": "France", "target": "Rome"},
         {"prompt": "{} flows through", "subject": "the river", "target": "Paris"}]
        """#.write(toFile: facts, atomically: true, encoding: .utf8)
        var hp = EditHyperparameters()
        hp.layers = [0, 1]
        hp.vSteps = 4
        hp.nullSpaceThreshold = 1e9
        let model = try LlamaModel(path: modelPath)
        let tok = try BPETokenizer(gguf: model.gguf)
        func build(_ range: Range<Int>, to path: String) throws {
            let src = K0Source(modelChecksum: try EditState.fileChecksum(modelPath), corpusChecksum: try EditState.fileChecksum(corpus),
                               sentences: range, layers: hp.layers)
            try CovarianceBuilder(model: model, tokenizer: tok, layers: hp.layers, workers: 2)
                .build(corpus: corpus, range: range, provenance: src.provenance).write(to: path)
        }
        try build(0..<48, to: dir + "/stats.bin")
        try build(0..<24, to: dir + "/stats-24.bin")

        func run(_ state: String, statistics: String?, required: Bool) throws -> (logs: [String], down: [Float]) {
            var r = EditCampaignRequest(facts: facts, batchSize: 2, state: dir + "/" + state, corpus: corpus,
                                        covSentences: 48, hyperparameters: hp, threads: 2)
            r.statistics = statistics; r.statisticsRequired = required
            var logs: [String] = []
            _ = try EditCampaign.run(r, modelPath: modelPath, events: EditCampaignEvents(log: { logs.append($0) }))
            let m = try LlamaModel(path: modelPath)
            try EditState.load(directory: dir + "/" + state).apply(to: m)
            return (logs, hp.layers.flatMap { m.weights.layers[$0].down.array })
        }
        let built = try run("built", statistics: nil, required: false)
        XCTAssertFalse(built.logs.contains { $0.hasPrefix("K0 statistics from") })
        let reused = try run("reused", statistics: dir + "/stats.bin", required: true)
        XCTAssertTrue(reused.logs.contains { $0.hasPrefix("K0 statistics from \(dir)/stats.bin") }, "\(reused.logs)")
        XCTAssertEqual(reused.down, built.down, "the same statistics, so the same edit")

        // Named on the command line and not this campaign's: an error that says what differs; nothing is created.
        XCTAssertThrowsError(try run("refused", statistics: dir + "/stats-24.bin", required: true)) {
            XCTAssertTrue("\($0)".contains("are not this campaign's: sentences 0..<24, wanted 0..<48"), "\($0)")
        }
        XCTAssertThrowsError(try run("refused", statistics: dir + "/none.bin", required: true)) {
            XCTAssertTrue("\($0)".contains("none.bin: no such file"), "\($0)")
        }
        XCTAssertNil(try JobStore(directory: dir + "/refused", create: false).campaign(), "no campaign recorded")
        // At the default location: passed over with a line, and built.
        let passed = try run("passed", statistics: dir + "/stats-24.bin", required: false)
        XCTAssertTrue(passed.logs.contains { $0.contains("not using the K0 statistics in \(dir)/stats-24.bin (sentences 0..<24, wanted 0..<48)") },
                      "\(passed.logs)")
        XCTAssertEqual(passed.down, built.down)
        // A truncated file: an error naming it when named, passed over at the default location.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/stats.bin"))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: dir + "/cut.bin"))
        XCTAssertThrowsError(try run("cut", statistics: dir + "/cut.bin", required: true)) {
            XCTAssertTrue("\($0)".contains("cut.bin"), "\($0)")
        }
        let cut = try run("cut-default", statistics: dir + "/cut.bin", required: false)
        XCTAssertTrue(cut.logs.contains { $0.hasPrefix("not using the K0 statistics in \(dir)/cut.bin") }, "\(cut.logs)")
        XCTAssertEqual(cut.down, built.down)
    }

    func testEvaluationCacheOfAnotherCorpusIsRebuilt() throws {
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let modelPath = try ClusterTestSupport.model(in: dir)
        let corpusA = try ClusterTestSupport.corpus(in: dir, sentences: 30)
        let corpusB = dir + "/other.txt"
        try (0..<30).map { "Sentence \($0) of another corpus about rivers." }.joined(separator: "\n")
            .write(toFile: corpusB, atomically: true, encoding: .utf8)
        let model = try LlamaModel(path: modelPath)
        let tok = try BPETokenizer(gguf: model.gguf)
        func campaign(_ corpus: String, artifact: String? = nil, cache: String? = nil) -> (EvalCampaign, () -> [String]) {
            var s = EvalCampaignSettings()
            s.hp.layers = [0, 1]; s.corpus = corpus; s.covSentences = 30; s.covCache = cache ?? dir + "/k0-cache.bin"; s.threads = 1
            s.covArtifact = artifact
            let c = EvalCampaign(model: model, tokenizer: tok, evaluator: CounterFactEvaluator(model: model, tokenizer: tok), settings: s)
            let box = LogBox()
            c.log = { box.lines.append($0) }
            return (c, { box.lines })
        }
        let (a, logA) = campaign(corpusA)
        let sa = try a.statistics()
        XCTAssertFalse(logA().contains { $0.hasPrefix("K0 statistics from") }, "built the first time")
        let (a2, logA2) = campaign(corpusA)
        XCTAssertEqual(try a2.statistics().mean(layer: 1), try sa.mean(layer: 1))
        XCTAssertTrue(logA2().contains { $0.hasPrefix("K0 statistics from") }, "\(logA2())")
        // Same cache file, same N and layers, another corpus: before, this reused corpus A's statistics.
        let (b, logB) = campaign(corpusB)
        let sb = try b.statistics()
        XCTAssertTrue(logB().contains { $0.contains("are not this run's (corpus checksum") }, "\(logB())")
        XCTAssertTrue(logB().contains { $0.hasSuffix("stored in \(dir)/k0-cache.bin") }, "\(logB())")
        XCTAssertNotEqual(try sb.mean(layer: 1), try sa.mean(layer: 1))
        XCTAssertEqual(try KeyStatistics.read(from: dir + "/k0-cache.bin").source?.corpusChecksum, try EditState.fileChecksum(corpusB))
        // A cache cut short is built again, never fatal.
        try Data("AEKSTATS garbage".utf8).write(to: URL(fileURLWithPath: dir + "/k0-cache.bin"))
        let (c, logC) = campaign(corpusB)
        XCTAssertEqual(try c.statistics().mean(layer: 1), try sb.mean(layer: 1))
        XCTAssertTrue(logC().contains { $0.contains("are unreadable") }, "\(logC())")
        // `cov`'s artifact, read when the cache does not hold this run's; never written.
        try KeyStatistics.read(from: dir + "/k0-cache.bin").write(to: dir + "/cov-statistics.bin")
        let (d, logD) = campaign(corpusB, artifact: dir + "/cov-statistics.bin", cache: dir + "/empty-cache.bin")
        XCTAssertEqual(try d.statistics().mean(layer: 1), try sb.mean(layer: 1))
        XCTAssertTrue(logD().contains { $0 == "K0 statistics from \(dir)/cov-statistics.bin" }, "\(logD())")
    }
}

private final class LogBox { var lines: [String] = [] }
