// The edit campaign as a library call (no CLI process), on the synthetic model: a run cut after its
// first batch and resumed ends with the same weights as an uninterrupted one; a run on a finished
// campaign commits nothing; other settings are refused with their differences; a state in use by
// another holder of its lock is refused before anything is read.
import Foundation
import Shared
import XCTest

final class EditCampaignLibraryTests: XCTestCase {
    func testResumeRefusalAndLock() throws {
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 48)
        let facts = dir + "/facts.json"
        try #"""
        [{"prompt": "The capital of {} is", "subject": "France", "target": "Rome"},
         {"prompt": "{} flows through", "subject": "the river", "target": "Paris"},
         {"prompt": "The tower is in {}", "subject": "the city", "target": "north"},
         {"prompt": "{} is known for", "subject": "a museum", "target": "its tower"}]
        """#.write(toFile: facts, atomically: true, encoding: .utf8)
        var hp = EditHyperparameters()
        hp.layers = [0, 1]   // v* reads the block above the last edited layer
        hp.vSteps = 4
        hp.nullSpaceThreshold = 1e9
        func request(_ state: String, batchSize: Int = 2, maxBatches: Int? = nil) -> EditCampaignRequest {
            var r = EditCampaignRequest(facts: facts, batchSize: batchSize, state: dir + "/" + state, corpus: corpus,
                                        covSentences: 48, hyperparameters: hp, threads: 2)
            r.maxBatches = maxBatches
            return r
        }
        func deltas(_ state: String) throws -> [Float] {
            let m = try LlamaModel(path: model)
            try EditState.load(directory: dir + "/" + state).apply(to: m)
            return hp.layers.flatMap { m.weights.layers[$0].down.array }
        }

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
}
