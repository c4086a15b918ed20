// `alphaedit rollback` as a library call, on the synthetic model: a campaign of 3 batches rolled back to
// its first has the Cp of a campaign of that one batch, bit for bit, and its removed batches' files are
// gone; extended again over the same facts it ends with the weights and Cp of the campaign that was never
// rolled back. Refusals change nothing: a batch number past the committed ones, a state in use, a keys
// file that fails its checksum. Where the first batches were committed without keys, Cp is the recorded
// one less the later batches' keys (equal to rounding); where keys are missing before and after the
// batch asked for, they are read again from the model (the same Cp, bit for bit); and from 0 an
// extension edits everything again.
import Foundation
import Shared
import XCTest

final class EditRollbackTests: XCTestCase {
    static let records = [#"{"prompt": "The capital of {} is", "subject": "France", "target": "Rome"}"#,
                          #"{"prompt": "{} flows through", "subject": "the river", "target": "Paris"}"#,
                          #"{"prompt": "The tower is in {}", "subject": "the city", "target": "north"}"#,
                          #"{"prompt": "{} is known for", "subject": "a museum", "target": "its tower"}"#,
                          #"{"prompt": "{} was born in", "subject": "the painter", "target": "Lyon"}"#,
                          #"{"prompt": "{} is played on", "subject": "the game", "target": "ice"}"#]

    struct Setup {
        let fx: EditCampaignLibraryTests.Fixture
        let facts: String
        init() throws {
            fx = try EditCampaignLibraryTests.Fixture()
            facts = fx.dir + "/facts.jsonl"
            try (EditRollbackTests.records.joined(separator: "\n") + "\n").write(toFile: facts, atomically: true, encoding: .utf8)
        }
        var dir: String { fx.dir }
        func run(_ state: String, limit: Int? = nil, extend: Bool = false) throws -> EditCampaignSummary {
            var r = fx.request(state, facts: facts, limit: limit)
            r.extend = extend
            return try EditCampaign.run(r, modelPath: fx.model)
        }
        func cp(_ state: String) throws -> SequentialState {
            let st = try EditState.load(directory: dir + "/" + state)
            return try SequentialState.read(from: try st.verified(try XCTUnwrap(st.manifest.cp)))
        }
        func files(_ state: String, _ folder: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/" + state + "/" + folder)) ?? []).sorted()
        }
    }

    func testRolledBackCampaignExtendsToTheSameWeights() throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(atPath: s.dir) }
        XCTAssertEqual(try s.run("whole").batchesCommitted, 3)
        XCTAssertEqual(try s.run("one", limit: 2).batchesCommitted, 1)
        XCTAssertEqual(try s.run("cut").batchesCommitted, 3)
        XCTAssertEqual(s.files("cut", "keys"), ["batch-00001.bin", "batch-00002.bin", "batch-00003.bin"])
        XCTAssertEqual(try JobStore(directory: s.dir + "/cut", create: false).status(now: 0, liveness: 1).rollbackTargets, [0, 1, 2, 3])

        // --dry-run: the same checks and figures, nothing changed.
        let dry = try EditRollback.run(directory: s.dir + "/cut", to: 1, dryRun: true)
        XCTAssertTrue(dry.dryRun)
        XCTAssertEqual(dry.removedBatches, [2, 3])
        XCTAssertEqual(dry.cpCheck, "equal")
        XCTAssertEqual(try EditState.load(directory: s.dir + "/cut").manifest.batches.count, 3)
        XCTAssertEqual(s.files("cut", "cp"), ["batch-00003.bin"])
        XCTAssertEqual(s.files("cut", "keys").count, 3)

        let r = try EditRollback.run(directory: s.dir + "/cut", to: 1)
        XCTAssertFalse(r.dryRun)
        XCTAssertEqual(r.removedFiles, dry.removedFiles)
        XCTAssertEqual(r.committedBefore, 3)
        XCTAssertEqual(r.committedAfter, 1)
        XCTAssertEqual(r.removedBatches, [2, 3])
        XCTAssertEqual(r.removedRequests, 4)
        XCTAssertEqual(r.requestCount, 2)
        XCTAssertEqual(r.cpCheck, "equal", "the keys of batches 1-3 add up to the recorded Cp")
        let st = try EditState.load(directory: s.dir + "/cut")
        XCTAssertEqual(st.manifest.batches.map(\.index), [1])
        XCTAssertEqual(st.campaign.settings.requestCount, 2)
        XCTAssertEqual(try s.cp("cut"), try s.cp("one"), "Cp after batch 1, bit for bit")
        XCTAssertEqual(try s.fx.weights("cut"), try s.fx.weights("one"))
        XCTAssertEqual(s.files("cut", "deltas"), ["batch-00001.bin"])
        XCTAssertEqual(s.files("cut", "keys"), ["batch-00001.bin"])
        XCTAssertEqual(s.files("cut", "cp"), ["batch-00001.bin"])
        XCTAssertEqual(try JobStore(directory: s.dir + "/cut", create: false).verifyFiles().1, [], "every recorded file checks")

        // The removed requests come back only when asked (the file holds more than the campaign now).
        XCTAssertThrowsError(try s.run("cut")) {
            XCTAssertEqual($0 as? StoreError, .extensionNotAsked(path: s.dir + "/cut/state.sqlite", stored: 2, requested: 6), "\($0)")
        }
        let again = try s.run("cut", extend: true)
        XCTAssertEqual(again.batchesThisRun, 2)
        XCTAssertEqual(again.batchesCommitted, 3)
        XCTAssertEqual(try s.fx.weights("cut"), try s.fx.weights("whole"), "rolled back and extended = never rolled back")
        XCTAssertEqual(try s.cp("cut"), try s.cp("whole"))

        // Rolling back to the last committed batch removes nothing; --to-batch past it is refused.
        XCTAssertEqual(try EditRollback.run(directory: s.dir + "/cut", to: 3).removedBatches, [])
        XCTAssertThrowsError(try EditRollback.run(directory: s.dir + "/cut", to: 4)) {
            XCTAssertTrue("\($0)".contains("it has 3 committed batches; roll back to 0…3; nothing was changed"), "\($0)")
        }
        let lock = try StateLock(directory: s.dir + "/cut")
        XCTAssertThrowsError(try EditRollback.run(directory: s.dir + "/cut", to: 1)) {
            XCTAssertEqual($0 as? StateLockError, .inUse(directory: s.dir + "/cut", pid: getpid()))
        }
        lock.release()
        XCTAssertEqual(try EditState.load(directory: s.dir + "/cut").manifest.batches.count, 3)
    }

    func testDamagedOrMissingKeysAreRefusedAndZeroStillWorks() throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(atPath: s.dir) }
        XCTAssertEqual(try s.run("whole").batchesCommitted, 3)
        XCTAssertEqual(try s.run("cut").batchesCommitted, 3)
        let cut = s.dir + "/cut"

        // A keys file that fails its checksum: refused by name, nothing changed.
        let keys2 = cut + "/keys/batch-00002.bin"
        let good = try Data(contentsOf: URL(fileURLWithPath: keys2))
        var bad = good
        bad[bad.count - 1] ^= 1
        try bad.write(to: URL(fileURLWithPath: keys2))
        XCTAssertThrowsError(try EditRollback.run(directory: cut, to: 1)) {
            XCTAssertTrue("\($0)".contains("keys/batch-00002.bin does not match the checksum"), "\($0)")
        }
        XCTAssertEqual(try EditState.load(directory: cut).manifest.batches.count, 3)
        XCTAssertEqual(s.files("cut", "cp"), ["batch-00003.bin"], "the Cp written for batch 1 was removed again")
        // `status` offers only the targets a rollback still takes: 0 and 3 (nothing to rebuild) with keys damaged.
        func targets() throws -> [Int] {
            let store = try JobStore(directory: cut, create: false)
            return StoreStatus.rollbackTargets([0, 1, 2, 3], committed: 3, damaged: try store.verifyFilesNamingDamaged().damaged)
        }
        XCTAssertEqual(try targets(), [0, 3])
        try good.write(to: URL(fileURLWithPath: keys2))

        // A damaged file the rolled-back state would keep (the base, a kept batch's deltas): refused, nothing
        // changed. A damaged file of a batch taken out does not stop it (rolling it back is the repair).
        for kept in ["projector.bin", "deltas/batch-00001.bin"] {
            let path = cut + "/" + kept
            let original = try Data(contentsOf: URL(fileURLWithPath: path))
            var flipped = original
            flipped[flipped.count / 2] ^= 1
            try flipped.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try EditRollback.run(directory: cut, to: 1)) {
                XCTAssertTrue("\($0)".contains("cannot roll back: a file the rolled-back state would keep is damaged") && "\($0)".contains(kept), "\($0)")
            }
            XCTAssertEqual(try EditState.load(directory: cut).manifest.batches.count, 3)
            XCTAssertEqual(try targets(), kept == "projector.bin" ? [] : [0], kept)
            try original.write(to: URL(fileURLWithPath: path))
        }

        // Batch 1 without keys, as committed before they were kept (a campaign resumed after the upgrade):
        // Cp after batch 2 is the recorded Cp less batch 3's keys, equal to a 2-batch campaign's to rounding.
        try FileManager.default.removeItem(atPath: cut + "/keys/batch-00001.bin")
        let store = try JobStore(directory: cut, create: false)
        XCTAssertNotNil(try store.keysFile(batch: 1))
        try store.forgetKeysFile(batch: 1)
        XCTAssertNil(try store.keysFile(batch: 1))
        XCTAssertEqual(try store.status(now: 0, liveness: 1).rollbackTargets, [0, 1, 2, 3], "0, and 1…3 by taking later keys out")
        XCTAssertEqual(try s.run("two", limit: 4).batchesCommitted, 2)
        let sub = try EditRollback.run(directory: cut, to: 2)
        XCTAssertTrue(sub.cpCheck.hasPrefix("subtracted: batch 1 has no keys file"), sub.cpCheck)
        let diff = try XCTUnwrap(try s.cp("cut").relativeDifference(to: try s.cp("two")))
        XCTAssertLessThan(diff, 1e-12, "the recorded Cp less batch 3's keys = the 2-batch campaign's Cp to rounding")
        print(String(format: "Cp by subtraction against the 2-batch campaign's: max relative difference %.2e", diff))
        XCTAssertEqual(try s.fx.weights("cut"), try s.fx.weights("two"))
        // Batches 1 and 3 without keys: neither way gives Cp after batch 2 from files alone, so their keys
        // are read again from the model, and all the keys must still add up to the recorded Cp.
        XCTAssertEqual(try s.run("cut", extend: true).batchesThisRun, 1)
        try store.forgetKeysFile(batch: 3)
        XCTAssertEqual(try store.status(now: 0, liveness: 1).rollbackTargets, [0, 1, 2, 3])
        let gone = s.dir + "/moved.gguf"
        XCTAssertThrowsError(try EditRollback.run(directory: cut, to: 2, modelPath: gone)) {
            XCTAssertTrue("\($0)".contains("batches 1, 3 were committed without their keys") && "\($0)".contains("\(gone) is not there: pass that file with --model"), "\($0)")
        }
        let dryRecomputed = try EditRollback.run(directory: cut, to: 2, dryRun: true)
        XCTAssertTrue(dryRecomputed.cpCheck.hasSuffix("the keys of batches 1, 3, committed without them, read again from the model"), dryRecomputed.cpCheck)
        XCTAssertEqual(try EditState.load(directory: cut).manifest.batches.count, 3)
        let recomputed = try EditRollback.run(directory: cut, to: 2)
        XCTAssertEqual(recomputed.removedBatches, [3])
        XCTAssertTrue(recomputed.cpCheck.hasPrefix("equal;"), recomputed.cpCheck)
        XCTAssertEqual(try s.cp("cut"), try s.cp("two"), "Cp from keys read again: the 2-batch campaign's, bit for bit")
        XCTAssertEqual(try s.fx.weights("cut"), try s.fx.weights("two"))
        XCTAssertEqual(try s.run("cut", extend: true).batchesThisRun, 1)
        XCTAssertEqual(try s.fx.weights("cut"), try s.fx.weights("whole"))
        let zero = try EditRollback.run(directory: cut, to: 0)
        XCTAssertEqual(zero.removedBatches, [1, 2, 3])
        XCTAssertEqual(zero.requestCount, 0)
        let st = try EditState.load(directory: cut)
        XCTAssertTrue(st.manifest.batches.isEmpty)
        XCTAssertNil(st.manifest.cp)
        XCTAssertNotNil(st.manifest.base, "the K0 base stays")
        XCTAssertEqual(s.files("cut", "deltas") + s.files("cut", "keys") + s.files("cut", "cp"), [])
        XCTAssertEqual(try s.run("cut", extend: true).batchesThisRun, 3)
        XCTAssertEqual(try s.fx.weights("cut"), try s.fx.weights("whole"))
    }
}
