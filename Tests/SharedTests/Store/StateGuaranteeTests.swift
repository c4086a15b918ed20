// What a state directory guarantees (issue 15 §1, §3-§6), each through the real `alphaedit` process on
// the synthetic model: one coordinator per state directory; committed files never rewritten; edits
// applied only to the model they were made for (an export of the campaign is refused as already
// edited); every record checked against the model's context before any work; read-only storage works
// for status, generate and export; status recomputes the checksums of what it reports as committed;
// one eval per report directory; an export never replaces the model it reads.
import Foundation
import Shared
import XCTest

final class StateGuaranteeTests: XCTestCase {
    var dir = ""
    var model = ""
    override func setUpWithError() throws {
        dir = try ClusterTestSupport.tempDir()
        model = try ClusterTestSupport.model(in: dir)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Runs `alphaedit` and returns (exit code, stdout + stderr).
    func alphaedit(_ args: [String], seconds: Double = 120) throws -> (Int32, String) {
        let exe = try ClusterTestSupport.executable("alphaedit")
        let out = dir + "/out-\(UUID().uuidString.prefix(6)).log"
        FileManager.default.createFile(atPath: out, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)   // no cluster.conf here
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardOutput = h
        p.standardError = h
        try p.run()
        ClusterTestSupport.wait(p, seconds: seconds, "alphaedit \(args.first ?? "")")
        return (p.terminationStatus, ClusterTestSupport.read(out))
    }

    /// A state directory for the synthetic model with one committed batch of small random deltas.
    func makeState(_ path: String) throws {
        let cfg = ClusterTestSupport.modelConfig
        let store = try JobStore(directory: path, create: true)
        var hp = EditHyperparameters()
        hp.layers = ClusterTestSupport.layers
        let c = try store.createCampaign(settings: CampaignSettings(
            method: .alphaedit, model: model, modelChecksum: try EditState.fileChecksum(model), facts: "f.json",
            factsChecksum: "0123456789abcdef", requestCount: 1, batchSize: 1, hyperparameters: hp, templateSeed: 0,
            corpus: "c.jsonl", covSentences: 1),
            templates: ContextTemplates(groups: [["{}"]]), requests: [EditRequest(prompt: "{} is in", subject: "S", targetNew: "T")])
        var rng = SplitMix64(seed: 3)
        let n = cfg.hidden * cfg.ffn
        let deltas = Dictionary(uniqueKeysWithValues: hp.layers.map { l in (l, (0..<n).map { _ in rng.symmetric(0.05) }) })
        try EditState.commit(store, campaign: c.id, batch: 1, deltas: BatchDeltas(rows: cfg.hidden, cols: cfg.ffn, deltas: deltas),
                             cp: try SequentialState(layers: hp.layers, f: cfg.ffn), seconds: 0)
    }

    // §1: a second coordinator on a state directory in use stops at once, naming the holder's pid,
    // and touches nothing. On the old main both ran and the second overwrote committed files.
    func testSecondCoordinatorOnAStateInUseStopsAtOnce() throws {
        let state = dir + "/state"
        let lock = try StateLock(directory: state)   // this process is the first coordinator
        XCTAssertThrowsError(try StateLock(directory: state)) {
            XCTAssertEqual($0 as? StateLockError, .inUse(directory: state, pid: getpid()))
        }
        let facts = dir + "/facts.json"
        try #"[{"prompt": "{} is in", "subject": "Paris", "target": "Rome"}]"#.write(toFile: facts, atomically: true, encoding: .utf8)
        let t0 = ProcessStats.now()
        let (code, said) = try alphaedit(["edit", "--model", model, "--facts", facts, "--state", state,
                                          "--cluster", "in-process", "--corpus", dir + "/none.jsonl"])
        XCTAssertNotEqual(code, 0, said)
        XCTAssertTrue(said.contains("state \(state) is in use by pid \(getpid())"), said)
        XCTAssertLessThan(ProcessStats.now() - t0, 20, "refused at once")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: state), [StateLock.fileName], "nothing touched")
        lock.release()
        XCTAssertNoThrow(try StateLock(directory: state).release(), "free again once released")

        // A lock file that is a symbolic link is refused, its target untouched (it was truncated to our pid).
        let linked = dir + "/linked", victim = dir + "/victim.txt"
        try FileManager.default.createDirectory(atPath: linked, withIntermediateDirectories: true)
        try "precious\n".write(toFile: victim, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: linked + "/" + StateLock.fileName, withDestinationPath: victim)
        XCTAssertThrowsError(try StateLock(directory: linked)) { XCTAssertTrue("\($0)".contains("it is a symbolic link"), "\($0)") }
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "precious\n")
        try FileManager.default.removeItem(atPath: linked + "/" + StateLock.fileName)
        try FileManager.default.linkItem(atPath: victim, toPath: linked + "/" + StateLock.fileName)   // a hard link
        XCTAssertThrowsError(try StateLock(directory: linked)) { XCTAssertTrue("\($0)".contains("a hard link to another file"), "\($0)") }
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "precious\n")

        // The same for an evaluation's report directory: a second `eval --out` on it stops at once (before
        // 2026-12-07 both ran, sharing its checkpoints, and the last report replaced the first).
        let report = dir + "/report"
        let held = try StateLock(directory: report)
        let (evalCode, evalSaid) = try alphaedit(["eval", "--model", model, "--records", facts, "--method", "none", "--out", report,
                                                  "--cluster", "in-process", "--no-generation"])
        XCTAssertNotEqual(evalCode, 0, evalSaid)
        XCTAssertTrue(evalSaid.contains("report directory \(report) is in use by pid \(getpid()): one eval per --out directory"), evalSaid)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: report), [StateLock.fileName], "nothing touched")
        held.release()
    }

    // `eval --state` scores its records as the state's edits: records the state did not edit, or more of
    // them than it committed, are refused before any evaluation (they came out "edited" before 2026-12-07).
    func testEvalOfAStateTakesOnlyItsOwnEdits() throws {
        let state = dir + "/state"
        try makeState(state)   // one edit: "{} is in", S → T
        let other = dir + "/other.jsonl", more = dir + "/more.jsonl"
        try #"{"prompt": "{} is in", "subject": "S", "target": "U"}"#.write(toFile: other, atomically: true, encoding: .utf8)
        try #"""
        {"prompt": "{} is in", "subject": "S", "target": "T"}
        {"prompt": "{} lies in", "subject": "R", "target": "V"}
        """#.write(toFile: more, atomically: true, encoding: .utf8)
        for (records, expected) in [(other, "record 1 (\"S is in\" → U) is not the edit 1 of state \(state) (\"S is in\" → T)"),
                                    (more, "records 1…2 are evaluated as edited, but state \(state) committed 1 edit")] {
            let (code, said) = try alphaedit(["eval", "--model", model, "--records", records, "--state", state, "--cluster", "in-process",
                                              "--no-generation", "--general-items", "0", "--hidden-prompts", "0"])
            XCTAssertNotEqual(code, 0, said)
            XCTAssertTrue(said.contains(expected), said)
            XCTAssertFalse(said.contains("pre-edit"), "refused before the pre-edit evaluation: \(said)")
        }
    }

    // `cov --out` on an edit campaign's state directory is refused: it replaced the recorded projector.
    func testCovDoesNotWriteIntoAState() throws {
        let state = dir + "/state"
        try makeState(state)
        let before = try FileManager.default.contentsOfDirectory(atPath: state).sorted()
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 4)
        let (code, said) = try alphaedit(["cov", "--model", model, "--out", state, "--corpus", corpus, "--sentences", "4", "--cluster", "in-process"])
        XCTAssertNotEqual(code, 0, said)
        XCTAssertTrue(said.contains("\(state) is an edit campaign's state directory"), said)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: state).sorted(), before, "nothing written")
        let (short, shortSaid) = try alphaedit(["cov", "--model", model, "--out", dir + "/cov", "--corpus", corpus, "--offset", "99",
                                                "--sentences", "4", "--cluster", "in-process"])
        XCTAssertNotEqual(short, 0, shortSaid)
        XCTAssertTrue(shortSaid.contains("has 4 sentences; the range needs 103"), shortSaid)
    }

    // §1: committing a batch twice stops before its files are written: the committed bytes stay.
    func testCommittedFilesAreNeverRewritten() throws {
        let state = dir + "/state"
        try makeState(state)
        let store = try JobStore(directory: state, create: false)
        let path = state + "/" + EditState.deltasPath(batch: 1)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let cfg = ClusterTestSupport.modelConfig
        let other = BatchDeltas(rows: cfg.hidden, cols: cfg.ffn,
                                deltas: [1: [Float](repeating: 1, count: cfg.hidden * cfg.ffn)])
        XCTAssertThrowsError(try EditState.commit(store, campaign: 1, batch: 1, deltas: other,
                                                  cp: try SequentialState(layers: [1, 2], f: cfg.ffn), seconds: 0)) {
            XCTAssertTrue("\($0)".contains("already committed"), "\($0)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        XCTAssertNoThrow(try EditState.load(directory: state).apply(to: try LlamaModel(path: model)))
    }

    // §3: generate and export refuse another model, naming both checksums, and an export of the same
    // campaign as already edited. On the old main `export --model edited.gguf` applied the edits twice.
    func testEditsApplyOnlyToTheirModel() throws {
        let state = dir + "/state"
        try makeState(state)
        let exported = dir + "/edited.gguf"
        var (code, said) = try alphaedit(["export", "--model", model, "--state", state, "--out", exported])
        XCTAssertEqual(code, 0, said)
        // Never over the model it reads: refused, the original intact (before 2026-12-07 it was replaced).
        let original = try Data(contentsOf: URL(fileURLWithPath: model))
        (code, said) = try alphaedit(["export", "--model", model, "--state", state, "--out", model])
        XCTAssertNotEqual(code, 0, said)
        XCTAssertTrue(said.contains("it is the file this one copies its tensors from"), said)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: model)), original)
        (code, said) = try alphaedit(["export", "--model", exported, "--state", state, "--out", dir + "/twice.gguf"])
        XCTAssertNotEqual(code, 0, said)
        XCTAssertTrue(said.contains("already contains the edits of its first"), said)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/twice.gguf"))
        (code, said) = try alphaedit(["generate", "--model", exported, "--state", state, "--max-tokens", "2", "x"])
        XCTAssertNotEqual(code, 0, said)
        XCTAssertTrue(said.contains("already contains the edits of its first"), said)

        let other = try ClusterTestSupport.model(in: dir, seed: 99)
        (code, said) = try alphaedit(["generate", "--model", other, "--state", state, "--max-tokens", "2", "x"])
        XCTAssertNotEqual(code, 0, said)
        XCTAssertTrue(said.contains("is not the model state \(state) was made for"), said)
        let sums = (try EditState.fileChecksum(other), try EditState.fileChecksum(model))
        XCTAssertTrue(said.contains(sums.0) && said.contains(sums.1), said)
        (code, said) = try alphaedit(["generate", "--model", model, "--state", state, "--max-tokens", "2", "x"])
        XCTAssertEqual(code, 0, said)
        // Without --model, the state's own model file answers (the config's default model is another file).
        let (implicitCode, implicitSaid) = try alphaedit(["generate", "--state", state, "--max-tokens", "2", "x"])
        XCTAssertEqual(implicitCode, 0, implicitSaid)
        XCTAssertTrue(implicitSaid.contains("model: \(model) (the file state \(state) was made for)"), implicitSaid)
        XCTAssertTrue(implicitSaid.contains(said.trimmingCharacters(in: .whitespacesAndNewlines)), "\(implicitSaid) / \(said)")
        // The export answers like the state applied to the original (its own edits, once).
        let a = try LlamaModel(path: model)
        try EditState.load(directory: state).apply(to: a)
        let b = try LlamaModel(path: exported)
        let ids: [Int32] = [3, 5, 7, 11]
        XCTAssertEqual(Array(try a.forward(TokenBatch([ids]), logitRows: [3]).logits(at: 0)),
                       Array(try b.forward(TokenBatch([ids]), logitRows: [3]).logits(at: 0)))
    }

    // §4: a record too long for the model's context is refused, by name, before anything is built
    // or written. On the old main it failed after K0 and the projector, leaving the directory stuck.
    func testOverlongRecordIsRefusedBeforeAnyWork() throws {
        let facts = dir + "/facts.json"
        let long = String(repeating: "the river flows ", count: 2000)
        try #"[{"prompt": "{} is in", "subject": "Paris", "target": "Rome"}, {"prompt": "\#(long){} is in", "subject": "Lyon", "target": "Rome"}]"#
            .write(toFile: facts, atomically: true, encoding: .utf8)
        let state = dir + "/state"
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 10)
        let (code, said) = try alphaedit(["edit", "--model", model, "--facts", facts, "--state", state,
                                          "--cluster", "in-process", "--corpus", corpus])
        XCTAssertNotEqual(code, 0, said)
        XCTAssertTrue(said.contains("\(facts) record 2: prompt + target is"), said)
        XCTAssertTrue(said.contains("model's context of \(ClusterTestSupport.modelConfig.contextLength)"), said)
        XCTAssertFalse(FileManager.default.fileExists(atPath: state + "/" + JobStore.fileName), "no campaign written")
    }

    // §5 and §6: status, generate and export work on a state directory on read-only storage (a
    // read-only bind mount); status checks the committed files' checksums and says when one is bad.
    func testReadOnlyStateAndVerifiedStatus() throws {
        let state = dir + "/state", ro = dir + "/ro"
        try makeState(state)
        try FileManager.default.createDirectory(atPath: ro, withIntermediateDirectories: true)
        func sh(_ cmd: String) -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", cmd + " 2>/dev/null"]
            try? p.run()
            p.waitUntilExit()
            return p.terminationStatus
        }
        guard sh("mount --bind '\(state)' '\(ro)' && mount -o remount,bind,ro '\(ro)'") == 0 else {
            _ = sh("umount '\(ro)'")
            throw XCTSkip("a read-only bind mount needs root")
        }
        defer { _ = sh("umount '\(ro)'") }
        XCTAssertFalse(FileManager.default.createFile(atPath: ro + "/probe", contents: Data([1])), "the mount is read-only")

        var (code, said) = try alphaedit(["status", "--state", ro, "--json"])
        XCTAssertEqual(code, 0, said)
        XCTAssertTrue(said.contains("\"batches_committed\" : 1") || said.contains("\"batches_committed\":1"), said)
        XCTAssertTrue(said.contains("\"files_checked\" : 2") || said.contains("\"files_checked\":2"), said)
        (code, said) = try alphaedit(["generate", "--model", model, "--state", ro, "--max-tokens", "2", "x"])
        XCTAssertEqual(code, 0, said)
        (code, said) = try alphaedit(["export", "--model", model, "--state", ro, "--out", dir + "/e.gguf"])
        XCTAssertEqual(code, 0, said)
        // rollback --dry-run reads only: no lock to take (its open for writing failed here), no write transaction.
        (code, said) = try alphaedit(["rollback", "--state", ro, "--last", "1", "--dry-run"])
        XCTAssertEqual(code, 0, said)
        XCTAssertTrue(said.contains("would roll back"), said)
        // Past the start is the state's refusal (exit 1), as --to-batch past the end is, not a usage error (64).
        for args in [["--last", "2"], ["--to-batch", "2"]] {
            (code, said) = try alphaedit(["rollback", "--state", ro, "--dry-run"] + args)
            XCTAssertEqual(code, 1, said)
            XCTAssertTrue(said.contains("1 committed batch"), said)
        }

        // A corrupted committed file: status names it and exits non-zero.
        _ = sh("umount '\(ro)'")
        let deltas = state + "/" + EditState.deltasPath(batch: 1)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: deltas)))
        bytes[bytes.count / 2] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: deltas))
        (code, said) = try alphaedit(["status", "--state", state])
        XCTAssertEqual(code, 4, said)
        XCTAssertTrue(said.contains("1 of 2 BAD") && said.contains(EditState.deltasPath(batch: 1)), said)
    }
}
