// Multi-node evaluation (issue 5 §2) with real worker processes on the synthetic model: an edit-and-
// evaluate campaign whose evaluations (shards of 2 records) and v* run on 2 workers gives exactly the
// report of the same campaign in one process: every record's NLLs, top-1 flags, generated texts,
// fluency and consistency, before and after the edits — with 2 threads a worker against 1 in-process
// (on AVX2 machines OpenBLAS's rounding follows the thread count unless BLAS.singleThreaded).
import Foundation
import Shared
import XCTest

final class ClusterEvaluationTests: XCTestCase {
    func testShardPlan() {
        XCTAssertEqual(ClusterEvaluation.shards(first: 3, count: 5, size: 2), [3..<5, 5..<7, 7..<8])
        XCTAssertEqual(ClusterEvaluation.shards(first: 0, count: 0, size: 4), [])
    }

    func testCampaignOnWorkersEqualsInProcess() throws {
        let worker = try ClusterTestSupport.executable("alphaedit-worker")
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let modelPath = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 200)
        let subjects = ["France", "the river", "Paris", "a museum", "the tower", "its city"]
        let lines = subjects.enumerated().map { i, s in
            #"{"case_id": \#(10 + i), "relation_id": "P1", "requested_rewrite": {"prompt": "The capital of {} is", "subject": "\#(s)", "#
                + #""target_true": {"str": "Paris"}, "target_new": {"str": "Rome"}}, "paraphrase_prompts": ["Where is {}? In", "{} is in"], "#
                + #""neighborhood_prompts": ["The river flows through", "A city known for"], "generation_prompts": ["\#(s) is", "The city of"]}"#
        }
        let facts = dir + "/cf.jsonl"
        try lines.joined(separator: "\n").write(toFile: facts, atomically: true, encoding: .utf8)
        let snippetsPath = dir + "/snippets.json"
        try #"{"P1": {"Rome": ["Rome is the capital of Italy", "the river flows through Rome"]}}"#
            .write(toFile: snippetsPath, atomically: true, encoding: .utf8)
        let records = try FactsFile.read(path: facts, offset: 1, limit: 4)   // records 1…4: batches of 2
        let generation = GenerationSettings(maxTokens: 6, topK: 5, seed: 3)

        var s = EvalCampaignSettings()
        s.method = .alphaedit; s.batchSize = 2; s.generalItems = 0
        s.corpus = corpus; s.covSentences = 200; s.covCache = nil
        s.hp.layers = [0, 1]   // v* reads the block above the last edited layer
        s.hp.vSteps = 5; s.hp.nullSpaceThreshold = 1e9
        s.threads = 1

        func campaign(_ log: CapturedLog?) throws -> (EvalReport, WorkerPool?) {
            let m = try LlamaModel(path: modelPath)
            let tok = try BPETokenizer(gguf: m.gguf)
            var ev = CounterFactEvaluator(model: m, tokenizer: tok, generation: generation,
                                          snippets: try AttributeSnippets.read(path: snippetsPath))
            ev.generationRecords = 1..<3   // records 3 and 4 score only
            let c = EvalCampaign(model: m, tokenizer: tok, evaluator: ev, settings: s)
            var pool: WorkerPool?
            if let log {
                let p = try WorkerPool(endpoint: "ipc://\(dir)/e.ipc", modelChecksum: try ModelChecksum.of(path: modelPath), logger: log.logger)
                // 2 threads a worker against 1 in-process: a record's figures and v* must not depend on it.
                try p.spawnLocal(count: 2, executable: worker, modelPath: modelPath, threads: 2, logLevel: "warning")
                let b = try ClusterEvaluation(pool: p, records: facts, generation: generation, generationRecords: 1..<3,
                                              snippets: snippetsPath, directory: dir + "/deltas")
                b.shardRecords = 2
                c.backend = b
                pool = p
            }
            return (try c.run(records: records, firstIndex: 1, name: "cf.jsonl"), pool)
        }
        let (local, _) = try campaign(nil)
        let log = CapturedLog()
        let (remote, pool) = try campaign(log)
        defer { pool?.shutdown() }

        XCTAssertEqual(remote.edits, 4)
        let post = try XCTUnwrap(remote.postShard), localPost = try XCTUnwrap(local.postShard)
        XCTAssertEqual(pool?.weightsVersion, 2, "both batches were committed to the workers")
        XCTAssertEqual(post.records.map(\.index), [1, 2, 3, 4])
        XCTAssertEqual(post.records.compactMap(\.fluency).count, 2, "generation on records 1 and 2 only")
        XCTAssertNotNil(post.records[0].consistency, "the workers read the snippets")
        XCTAssertEqual(remote.preShard, local.preShard, "pre-edit: every record's figures and texts equal")
        XCTAssertEqual(remote.postShard, local.postShard, "post-edit: every record's figures and texts equal")
        let diff = zip(post.records, localPost.records).map { abs(($0.rewrite?.nllNew ?? .nan) - ($1.rewrite?.nllNew ?? .nan)) }.max() ?? -1
        print(String(format: "evaluation on 2 workers vs in-process: max |ΔNLL| %.1e; efficacy %.1f → %.1f",
                     diff, remote.pre[.efficacy] ?? .nan, remote.post[.efficacy] ?? .nan))
    }
}
