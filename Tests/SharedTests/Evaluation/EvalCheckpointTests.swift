// `eval --out DIR` keeps each phase's per-record results as they come (EvalCheckpoint): a run started
// again with the same inputs takes the records already done from there and evaluates only the rest,
// and ends with the report an uninterrupted run gives; a file of other inputs is not used.
import Foundation
import Shared
import XCTest

final class EvalCheckpointTests: XCTestCase {
    func testAStoppedEvaluationGoesOnFromItsCheckpoint() throws {
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 48)
        // An edit state of two records, for the post-edit phase.
        let facts = dir + "/facts.json"
        try #"[{"prompt": "The capital of {} is", "subject": "France", "target": "Rome"}, {"prompt": "{} flows through", "subject": "the river", "target": "Paris"}]"#
            .write(toFile: facts, atomically: true, encoding: .utf8)
        var hp = EditHyperparameters()
        hp.layers = [0, 1]; hp.vSteps = 4; hp.nullSpaceThreshold = 1e9
        _ = try EditCampaign.run(EditCampaignRequest(facts: facts, batchSize: 2, state: dir + "/state", corpus: corpus,
                                                     covSentences: 48, hyperparameters: hp, threads: 2), modelPath: model)

        let out = dir + "/out"
        var evaluated: [String: Int] = [:]   // the records each phase evaluated in a run (its progress totals)
        func run(_ records: [EditRequest], checkpoint: Bool = true) throws -> EvalReport {
            let m = try LlamaModel(path: model)
            let tok = try BPETokenizer(gguf: m.gguf)
            var s = EvalCampaignSettings()
            s.state = dir + "/state"; s.generalItems = 0; s.modelIdentity = "synthetic"; s.threads = 2
            s.checkpointDirectory = checkpoint ? out : nil
            s.checkpointRecords = 2
            let c = EvalCampaign(model: m, tokenizer: tok, evaluator: CounterFactEvaluator(model: m, tokenizer: tok, generation: GenerationSettings(maxTokens: 4)),
                                 settings: s)
            evaluated = [:]
            c.progress = { what, _, total in evaluated[what.hasPrefix("pre") ? "pre" : "post"] = total }
            return try c.run(records: records, firstIndex: 0, name: "fixture")
        }
        let records = EvalShardTests.records
        let whole = try run(records, checkpoint: false)
        let first = try run(records)
        XCTAssertEqual(first.preShard, whole.preShard)
        XCTAssertEqual(first.postShard, whole.postShard)
        XCTAssertEqual(evaluated, ["pre": 5, "post": 5])

        // As if stopped after the first chunk of each phase: the files keep records 0 and 1, record 0
        // marked (so that reading it back, not evaluating it again, is what the report shows).
        for phase in ["pre", "post"] {
            let path = out + "/partial-\(phase).json"
            var file = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
            var kept = Array(try XCTUnwrap(file["records"] as? [[String: Any]]).prefix(2))
            var rewrite = try XCTUnwrap(kept[0]["rewrite"] as? [String: Any])
            rewrite["nllNew"] = 42.0
            kept[0]["rewrite"] = rewrite
            file["records"] = kept
            try JSONSerialization.data(withJSONObject: file).write(to: URL(fileURLWithPath: path))
        }
        let resumed = try run(records)
        XCTAssertEqual(evaluated, ["pre": 3, "post": 3], "only records 2-4 evaluated again")
        for (shard, reference) in [(resumed.preShard, whole.preShard), (resumed.postShard, whole.postShard)] {
            let got = try XCTUnwrap(shard), want = try XCTUnwrap(reference)
            XCTAssertEqual(got.records[0].rewrite?.nllNew, 42, "record 0 read from the checkpoint")
            XCTAssertEqual(Array(got.records[1...]), Array(want.records[1...]), "the others as in the uninterrupted run, bit for bit")
        }

        // A checkpoint that cannot be written (its directory is a file) costs the checkpoint, not the run.
        try FileManager.default.removeItem(atPath: out)
        try Data().write(to: URL(fileURLWithPath: out))
        XCTAssertThrowsError(try run(records), "the directory cannot be made") { XCTAssertTrue("\($0)".contains("out"), "\($0)") }
        try FileManager.default.removeItem(atPath: out)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: out + "/partial-pre.json", withIntermediateDirectories: true)
        let unwritable = try run(records)
        XCTAssertEqual(unwritable.preShard, whole.preShard, "evaluated all the same")
        try FileManager.default.removeItem(atPath: out + "/partial-pre.json")

        // Other records (the first 4): the files are of other inputs, so everything is evaluated again.
        let other = try run(Array(records.prefix(4)))
        XCTAssertEqual(evaluated, ["pre": 4, "post": 4])
        XCTAssertEqual(other.postShard?.records, Array(try XCTUnwrap(whole.postShard).records.prefix(4)))
    }
}
