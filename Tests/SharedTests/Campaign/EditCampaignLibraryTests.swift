// The edit campaign as a library call (no CLI process), on the synthetic model: a run cut after its
// first batch and resumed ends with the same weights as an uninterrupted one; a run on a finished
// campaign commits nothing; other settings are refused with their differences; a state in use by
// another holder of its lock is refused before anything is read; a campaign grows by appended facts
// only when asked to, and then ends where one over all the facts from the start ends.
import Foundation
import Shared
import XCTest

final class EditCampaignLibraryTests: XCTestCase {
    /// A synthetic model, a corpus, small v* settings and campaign requests in a temporary directory.
    struct Fixture {
        let dir: String, model: String, corpus: String
        var hp = EditHyperparameters()
        init() throws {
            dir = try ClusterTestSupport.tempDir()
            model = try ClusterTestSupport.model(in: dir)
            corpus = try ClusterTestSupport.corpus(in: dir, sentences: 48)
            hp.layers = [0, 1]   // v* reads the block above the last edited layer
            hp.vSteps = 4
            hp.nullSpaceThreshold = 1e9
        }
        func request(_ state: String, facts: String, batchSize: Int = 2, limit: Int? = nil) -> EditCampaignRequest {
            EditCampaignRequest(facts: facts, limit: limit, batchSize: batchSize, state: dir + "/" + state, corpus: corpus,
                                covSentences: 48, hyperparameters: hp, threads: 2)
        }
        /// The edited layers' weights after the state's batches.
        func weights(_ state: String) throws -> [Float] {
            let m = try LlamaModel(path: model)
            try EditState.load(directory: dir + "/" + state).apply(to: m)
            return hp.layers.flatMap { m.weights.layers[$0].down.array }
        }
    }

    func testResumeRefusalAndLock() throws {
        let fx = try Fixture()
        let (dir, model) = (fx.dir, fx.model)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let facts = dir + "/facts.json"
        try #"""
        [{"prompt": "The capital of {} is", "subject": "France", "target": "Rome"},
         {"prompt": "{} flows through", "subject": "the river", "target": "Paris"},
         {"prompt": "The tower is in {}", "subject": "the city", "target": "north"},
         {"prompt": "{} is known for", "subject": "a museum", "target": "its tower"}]
        """#.write(toFile: facts, atomically: true, encoding: .utf8)
        func request(_ state: String, batchSize: Int = 2, maxBatches: Int? = nil) -> EditCampaignRequest {
            var r = fx.request(state, facts: facts, batchSize: batchSize)
            r.maxBatches = maxBatches
            return r
        }
        let deltas = fx.weights

        let whole = try EditCampaign.run(request("whole"), modelPath: model)
        XCTAssertEqual(whole.batchesCommitted, 2)
        XCTAssertEqual(whole.batchesThisRun, 2)
        let first = try EditCampaign.run(request("cut", maxBatches: 1), modelPath: model)
        XCTAssertEqual(first.batchesThisRun, 1)
        let rest = try EditCampaign.run(request("cut"), modelPath: model)
        XCTAssertEqual(rest.batchesThisRun, 1, "resumed at batch 2")
        XCTAssertEqual(rest.edits, 4)
        XCTAssertEqual(try deltas("cut"), try deltas("whole"), "cut and resumed = uninterrupted")
        XCTAssertEqual(try EditCampaign.run(request("whole"), modelPath: model).batchesThisRun, 0, "nothing left to do")

        XCTAssertThrowsError(try EditCampaign.run(request("whole", batchSize: 1), modelPath: model)) {
            XCTAssertTrue("\($0)".contains("batchSize: stored 2, requested 1"), "\($0)")
        }
        let lock = try StateLock(directory: dir + "/whole")
        XCTAssertThrowsError(try EditCampaign.run(request("whole"), modelPath: model)) {
            XCTAssertEqual($0 as? StateLockError, .inUse(directory: dir + "/whole", pid: getpid()))
        }
        lock.release()
    }

    /// What a run can be refused for is found before the campaign is recorded: no state.sqlite is left to
    /// refuse the corrected command. A folder holding a base or batch files but no database (a `cov --out`
    /// folder, a lost database) is refused untouched; same-prompt facts with two targets in a batch are named.
    func testRefusalsComeBeforeTheCampaignIsRecorded() throws {
        var fx = try Fixture()
        defer { try? FileManager.default.removeItem(atPath: fx.dir) }
        let facts = fx.dir + "/facts.jsonl"
        try #"""
        {"prompt": "The capital of {} is", "subject": "France", "target": "Rome"}
        {"prompt": "The capital of {} is", "subject": "France", "target": "Oslo"}
        """#.write(toFile: facts, atomically: true, encoding: .utf8)
        func refused(_ r: EditCampaignRequest, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try EditCampaign.run(r, modelPath: fx.model), file: file, line: line) {
                XCTAssertTrue("\($0)".contains(expected), "\($0)", file: file, line: line)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: r.state + "/" + JobStore.fileName), "nothing recorded", file: file, line: line)
        }
        var memit = fx.request("a", facts: facts)
        memit.method = .memit
        memit.hyperparameters.keptC0Weight = 10
        refused(memit, "kept_c0_weight (--kept-c0-weight) applies to AlphaEdit with its projection, not to memit")
        var long = fx.request("a", facts: facts)
        long.covSentences = 49
        refused(long, "has 48 sentences; the range needs 49")
        try FileManager.default.createDirectory(atPath: fx.dir + "/cov", withIntermediateDirectories: true)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: fx.dir + "/cov/projector.bin"))
        refused(fx.request("cov", facts: facts), "holds projector.bin but no campaign database")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: fx.dir + "/cov/projector.bin")), Data([1, 2, 3]))

        fx.hp.vSteps = 1
        var said: [String] = []
        _ = try EditCampaign.run(fx.request("a", facts: facts), modelPath: fx.model, events: EditCampaignEvents(log: { said.append($0) }))
        XCTAssertTrue(said.contains { $0.contains("records 1 and 2 (one batch) ask \"The capital of France is\" for different targets") }, "\(said)")
        // The same records with CRLF line ends and a blank line: other bytes, the same campaign.
        let text = try String(contentsOfFile: facts, encoding: .utf8)
        try (text.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n").write(toFile: facts, atomically: true, encoding: .utf8)
        XCTAssertEqual(try EditCampaign.run(fx.request("a", facts: facts), modelPath: fx.model).batchesThisRun, 0)
    }

    func testExtendByAppendedFacts() throws {
        let fx = try Fixture()
        let (dir, model) = (fx.dir, fx.model)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let records = [#"{"prompt": "The capital of {} is", "subject": "France", "target": "Rome"}"#,
                       #"{"prompt": "{} flows through", "subject": "the river", "target": "Paris"}"#,
                       #"{"prompt": "The tower is in {}", "subject": "the city", "target": "north"}"#,
                       #"{"prompt": "{} is known for", "subject": "a museum", "target": "its tower"}"#,
                       #"{"prompt": "{} was born in", "subject": "the painter", "target": "Lyon"}"#]
        func write(_ name: String, _ lines: [String]) throws -> String {
            let path = dir + "/" + name
            try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        func request(_ state: String, _ facts: String, limit: Int? = nil, extend: Bool = false) -> EditCampaignRequest {
            var r = fx.request(state, facts: facts, limit: limit)
            r.extend = extend
            return r
        }
        let weights = fx.weights
        let all = try write("all.jsonl", records)
        // A state made in a folder that already holds a keys/ and a cp/ of someone else's leaves their files be.
        try FileManager.default.createDirectory(atPath: dir + "/whole/cp/mine", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/whole/keys", withIntermediateDirectories: true)
        for f in ["whole/keys/id_ed25519", "whole/cp/mine/notes.txt"] { try "mine".write(toFile: dir + "/" + f, atomically: true, encoding: .utf8) }
        XCTAssertEqual(try EditCampaign.run(request("whole", all), modelPath: model).batchesCommitted, 3)
        XCTAssertEqual(try ["whole/keys/id_ed25519", "whole/cp/mine/notes.txt"].map { try String(contentsOfFile: dir + "/" + $0, encoding: .utf8) }, ["mine", "mine"])

        // Three records (batches of 2 and 1), then the file grows by two: without --extend a refusal
        // that says what to do, and nothing recorded.
        let three = try write("grown.jsonl", Array(records.prefix(3)))
        XCTAssertEqual(try EditCampaign.run(request("grown", three), modelPath: model).edits, 3)
        _ = try write("grown.jsonl", records)
        XCTAssertThrowsError(try EditCampaign.run(request("grown", three), modelPath: model)) {
            XCTAssertEqual($0 as? StoreError, .extensionNotAsked(path: dir + "/grown/state.sqlite", stored: 3, requested: 5), "\($0)")
            XCTAssertTrue("\($0)".contains("run with --extend to edit the 2 new ones"), "\($0)")
        }
        XCTAssertEqual(try JobStore(directory: dir + "/grown", create: false).status(now: 0, liveness: 1).batchesTotal, 2)
        // A changed record among the stored ones is refused even with --extend, naming it and its field.
        let changed = try write("changed.jsonl", [records[0], records[1].replacingOccurrences(of: "Paris", with: "Oslo")] + records[2...])
        XCTAssertThrowsError(try EditCampaign.run(request("grown", changed, extend: true), modelPath: model)) {
            XCTAssertEqual($0 as? StoreError, .requestChanged(path: dir + "/grown/state.sqlite", index: 1, fields: ["targetNew"]), "\($0)")
        }
        // An export made before the extension (its metadata names the earlier facts) stays refused as edited.
        var writer = try GGUFWriter.copy(from: try LlamaModel(path: model).gguf, replacing: [:])
        for (key, value) in try EditState.load(directory: dir + "/grown").exportMetadata { try writer.set(key, value) }
        let exported = dir + "/exported.gguf"
        try writer.write(to: exported)
        // Extended: one more batch (the records after the third, in batches of 2), settings now the grown file's.
        let grown = try EditCampaign.run(request("grown", three, extend: true), modelPath: model)
        XCTAssertEqual(grown.batchesThisRun, 1)
        XCTAssertEqual(grown.edits, 5)
        let st = try EditState.load(directory: dir + "/grown")
        XCTAssertEqual(st.campaign.settings.requestCount, 5)
        XCTAssertEqual(st.campaign.settings.earlierFactsChecksums?.count, 1)
        XCTAssertThrowsError(try st.checkModel(path: exported, gguf: try LlamaModel(path: exported).gguf)) {
            guard case .alreadyEdited(_, _, _, let batches)? = $0 as? EditStateError else { return XCTFail("\($0)") }
            XCTAssertEqual(batches, 2)
        }
        XCTAssertEqual(try EditCampaign.run(request("grown", three), modelPath: model).batchesThisRun, 0, "resumes without --extend now")
        // A larger --limit on the same file extends too (no new facts checksum).
        XCTAssertEqual(try EditCampaign.run(request("limited", all, limit: 4), modelPath: model).edits, 4)
        XCTAssertEqual(try EditCampaign.run(request("limited", all, extend: true), modelPath: model).edits, 5)
        XCTAssertNil(try EditState.load(directory: dir + "/limited").campaign.settings.earlierFactsChecksums)
        XCTAssertEqual(try weights("limited"), try weights("whole"), "2+2 then 1 = the batches of the whole file")
        XCTAssertNotEqual(try weights("grown"), try weights("whole"), "batches 2+1+2 differ from 2+2+1")
        // Fewer requests than stored stays a refusal.
        XCTAssertThrowsError(try EditCampaign.run(request("limited", all, limit: 2, extend: true), modelPath: model)) {
            XCTAssertTrue("\($0)".contains("requestCount: stored 5, requested 2"), "\($0)")
        }
    }
}
