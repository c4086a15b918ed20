// The state database: schema, campaigns and the batch commit, artifacts by checksum, and one test per
// kind of bad file (garbage, truncated, another application's, another schema version), each with
// its message pinned. The job queue is in JobQueueTests.
import Foundation
import Shared
import XCTest

enum StoreFixtures {
    static func directory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("aestore-\(UUID().uuidString)").path
    }

    static func requests(_ n: Int) -> [EditRequest] {
        (0..<n).map { EditRequest(prompt: "{} is in", subject: "S\($0)", targetNew: "T\($0)") }
    }

    static func settings(requests: Int, batchSize: Int, method: EditMethod = .alphaedit) -> CampaignSettings {
        CampaignSettings(method: method, model: "m.gguf", modelChecksum: "aa", facts: "f.json", factsChecksum: "bb",
                         requestCount: requests, batchSize: batchSize, hyperparameters: EditHyperparameters(),
                         templateSeed: 0, corpus: "c.jsonl", covSentences: 10)
    }

    /// Writes `bytes` at dir/rel and describes it.
    static func file(_ dir: String, _ rel: String, _ kind: ArtifactKind, _ bytes: [UInt8]) throws -> ArtifactFile {
        let p = ArtifactFile.absolute(rel, in: dir)
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return try ArtifactFile.describe(kind: kind, path: rel, in: dir)
    }
}

final class JobStoreTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = StoreFixtures.directory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }
    var dbPath: String { dir + "/" + JobStore.fileName }

    func assertStoreError(_ body: @autoclosure () throws -> Any, _ expected: String, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { e in
            XCTAssertTrue(e is StoreError, "\(type(of: e)): \(e)", line: line)
            XCTAssertEqual("\(e)", expected, line: line)
        }
    }

    func testSchemaIsCreatedThenReopenedWithItsCampaign() throws {
        do {
            let s = try JobStore(directory: dir, create: true)
            let c = try s.createCampaign(settings: StoreFixtures.settings(requests: 5, batchSize: 2),
                                         templates: ContextTemplates(groups: [["{}"]]), requests: StoreFixtures.requests(5))
            XCTAssertEqual(c.id, 1)
        }
        let raw = try SQLiteDatabase(path: dbPath, create: false)
        XCTAssertEqual(try raw.queryOne("PRAGMA application_id")?.int("application_id"), JobStore.applicationID)
        XCTAssertEqual(try raw.queryOne("PRAGMA user_version")?.int("user_version"), JobStore.schemaVersion)
        XCTAssertEqual(try raw.queryOne("PRAGMA journal_mode")?.string("journal_mode"), "wal")

        let s = try JobStore(directory: dir, create: false)
        let c = try XCTUnwrap(try s.campaign(matching: StoreFixtures.settings(requests: 5, batchSize: 2)))
        XCTAssertEqual(c.templates, ContextTemplates(groups: [["{}"]]))
        XCTAssertNil(c.base)
        let b = try s.batches(campaign: c.id)
        XCTAssertEqual(b.map(\.index), [1, 2, 3])
        XCTAssertEqual(b.map(\.requests), [0..<2, 2..<4, 4..<5])
        XCTAssertEqual(b.map(\.state), [.pending, .pending, .pending])
        XCTAssertEqual(try s.requests(campaign: c.id, batch: 2), Array(StoreFixtures.requests(5)[2..<4]))
    }

    func testResumingWithOtherSettingsNamesTheDifferences() throws {
        let s = try JobStore(directory: dir, create: true)
        _ = try s.createCampaign(settings: StoreFixtures.settings(requests: 4, batchSize: 2),
                                 templates: ContextTemplates(groups: [["{}"]]), requests: StoreFixtures.requests(4))
        var other = StoreFixtures.settings(requests: 4, batchSize: 3, method: .memit)
        other.model = "elsewhere/m.gguf"  // a path alone is no difference
        assertStoreError(try s.campaign(matching: other),
                         "\(dbPath) holds a campaign with other settings (batchSize: stored 2, requested 3; "
                         + "method: stored alphaedit, requested memit): run with the original settings to resume it, "
                         + "or use another --state directory")
        other = StoreFixtures.settings(requests: 4, batchSize: 2)
        other.hyperparameters.vLR = 0.25
        XCTAssertThrowsError(try s.campaign(matching: other)) { e in
            XCTAssertTrue("\(e)".contains("hyperparameters.vLR: stored 0.5"), "\(e)")
        }
    }

    /// Issue 15 §6: another K0 corpus (its contents' checksum) is refused on resume like any setting;
    /// a campaign recorded before the corpus checksum was kept is not held to it.
    func testResumingWithAnotherCorpusIsRefused() throws {
        let s = try JobStore(directory: dir, create: true)
        var settings = StoreFixtures.settings(requests: 4, batchSize: 2)
        settings.corpusChecksum = "00000000000000aa"
        _ = try s.createCampaign(settings: settings, templates: ContextTemplates(groups: [["{}"]]), requests: StoreFixtures.requests(4))
        var other = settings
        other.corpus = "other.jsonl"
        other.corpusChecksum = "00000000000000bb"
        assertStoreError(try s.campaign(matching: other),
                         "\(dbPath) holds a campaign with other settings (corpusChecksum: stored 00000000000000aa (c.jsonl), "
                         + "requested 00000000000000bb (other.jsonl)): run with the original settings to resume it, "
                         + "or use another --state directory")
        other.corpusChecksum = "00000000000000aa"
        XCTAssertNotNil(try s.campaign(matching: other), "the same contents under another path")
        var old = settings
        old.corpusChecksum = nil
        XCTAssertTrue(old.differences(from: other).isEmpty, "no checksum recorded: not compared")
    }

    // `status`'s v* progress: the first pending batch's jobs, the rate from the done jobs' completion
    // times (a long gap, a stopped coordinator, left out), the v* requests left at that rate.
    func testStatusShowsVStarProgressRateAndTimeLeft() throws {
        XCTAssertNil(VStarRate.requestsPerSecond([(0, 8)]))
        let r = try XCTUnwrap(VStarRate.requestsPerSecond([(0, 8), (100, 8), (200, 8), (5000, 8), (5100, 8)]))
        XCTAssertEqual(r, 8.0 / 100, accuracy: 1e-12, "the 4,800 s stop barely moves the median")
        XCTAssertEqual(try XCTUnwrap(VStarRate.requestsPerSecond([(10, 2), (0, 2), (30, 4)])), (2.0 / 10 + 4.0 / 20) / 2, accuracy: 1e-12, "any order")
        // Three workers finishing each round together (8 requests a job, a round every 100 s): 0.24 a
        // second, where consecutive completions alone would say 16.
        let rounds = (0..<6).flatMap { k in (0..<3).map { (Double(100 * k) + 0.5 * Double($0), 8) } }
        XCTAssertEqual(try XCTUnwrap(VStarRate.requestsPerSecond(rounds, lag: 3)), 0.24, accuracy: 1e-12)
        XCTAssertNil(VStarRate.requestsPerSecond(Array(rounds.prefix(3)), lag: 3), "one round is no span yet")

        let s = try JobStore(directory: dir, create: true)
        let c = try s.createCampaign(settings: StoreFixtures.settings(requests: 5, batchSize: 2),
                                     templates: ContextTemplates(groups: [["{}"]]), requests: StoreFixtures.requests(5))
        func job(_ batch: Int, _ requests: [Int]) throws -> Int64 {
            let p = String(decoding: try JSONEncoder().encode(VStarPayload(campaign: c.id, batch: batch, requests: requests, weightsVersion: 0)), as: UTF8.self)
            return try s.enqueue([NewJob(kind: .vstar, campaign: c.id, batch: batch, payload: p)], now: 0)[0]
        }
        var st = try s.status(now: 0, liveness: 10)
        XCTAssertEqual(st.currentBatch, 1)
        XCTAssertNil(st.currentBatchJobsTotal, "no jobs yet")
        XCTAssertNil(st.vstarRequestsPerMinute)
        try s.complete(job: try job(1, [0, 1]), now: 100)
        try s.commitBatch(campaign: c.id, index: 1, deltas: try StoreFixtures.file(dir, "deltas/batch-00001.bin", .deltas, [1]),
                          cp: nil, seconds: 1, now: 110)
        try s.complete(job: try job(2, [2]), now: 160)
        _ = try job(2, [3])
        st = try s.status(now: 170, liveness: 10)
        XCTAssertEqual(st.currentBatch, 2)
        XCTAssertEqual(st.currentBatchJobsDone, 1)
        XCTAssertEqual(st.currentBatchJobsTotal, 2)
        XCTAssertEqual(try XCTUnwrap(st.vstarRequestsPerMinute), 1, accuracy: 1e-9, "1 request in the 60 s since the last")
        XCTAssertEqual(try XCTUnwrap(st.vstarSecondsLeft), 120, accuracy: 1e-6, "requests 3 and 4 at 1 a minute")
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(st)) as? [String: Any]
        for key in ["current_batch", "current_batch_jobs_done", "current_batch_jobs_total", "vstar_requests_per_minute", "vstar_seconds_left"] {
            XCTAssertNotNil(json?[key], key)
        }
    }

    func testCommitBatchRecordsFilesKeepsOnlyTheLatestCpAndCountsStatus() throws {
        let s = try JobStore(directory: dir, create: true)
        let c = try s.createCampaign(settings: StoreFixtures.settings(requests: 3, batchSize: 2),
                                     templates: ContextTemplates(groups: [["{}"]]), requests: StoreFixtures.requests(3))
        let d1 = try StoreFixtures.file(dir, "deltas/batch-00001.bin", .deltas, [1, 2, 3])
        let cp1 = try StoreFixtures.file(dir, "cp/batch-00001.bin", .cp, [4, 5])
        // Batch 2 before batch 1 is refused: each batch is solved on the model edited by the ones before.
        assertStoreError(try s.commitBatch(campaign: c.id, index: 2, deltas: d1, cp: cp1, seconds: 1),
                         "batch 2 of campaign 1 cannot be committed: batch 1 is not committed yet")
        try s.commitBatch(campaign: c.id, index: 1, deltas: d1, cp: cp1, seconds: 1.5, now: 100)
        assertStoreError(try s.commitBatch(campaign: c.id, index: 1, deltas: d1, cp: cp1, seconds: 1),
                         "batch 1 of campaign 1 cannot be committed: it is already committed")

        var st = try s.status(now: 100, liveness: 10)
        XCTAssertEqual([st.batchesCommitted, st.batchesTotal, st.requestsDone, st.requestsTotal], [1, 2, 2, 3])

        let d2 = try StoreFixtures.file(dir, "deltas/batch-00002.bin", .deltas, [6])
        let cp2 = try StoreFixtures.file(dir, "cp/batch-00002.bin", .cp, [7])
        _ = try StoreFixtures.file(dir, "cp/batch-00003.bin.tmp", .cp, [8])
        _ = try StoreFixtures.file(dir, "cp/left-over.bin", .cp, [9])  // not a name the state gives: someone else's
        try FileManager.default.createDirectory(atPath: dir + "/deltas/batch-00009.bin", withIntermediateDirectories: true)
        try s.commitBatch(campaign: c.id, index: 2, deltas: d2, cp: cp2, seconds: 2.5, now: 200)
        let b = try s.batches(campaign: c.id)
        XCTAssertEqual(b.map(\.state), [.committed, .committed])
        XCTAssertEqual(b.map { $0.deltas?.checksum }, [d1.checksum, d2.checksum])
        XCTAssertEqual(b.map { $0.cp?.path }, [nil, "cp/batch-00002.bin"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/cp/batch-00001.bin"), "superseded cp deleted")
        XCTAssertEqual(try s.removeUnreferencedFiles(in: ["cp", "deltas"]), ["cp/batch-00003.bin.tmp"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/cp/left-over.bin"), "only the state's own names are swept")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/deltas/batch-00009.bin"), "and only plain files")
        XCTAssertEqual(["batch-00001.bin", "batch-12345.bin.tmp", "batch-123456.bin"].map(JobStore.isBatchFileName), [true, true, true])
        XCTAssertEqual(["batch-1.bin", "batch-0000a.bin", "id_rsa", "batch-00001.bin.bak", "xbatch-00001.bin"].map(JobStore.isBatchFileName),
                       [false, false, false, false, false])
        XCTAssertNoThrow(try s.verified(try XCTUnwrap(b[1].cp)))

        try s.upsertWorker(WorkerInfo(name: "w1", pid: 1, host: "h", threads: 2, modelChecksum: "aa", protocolVersion: 1), now: 190)
        try s.upsertWorker(WorkerInfo(name: "w2", pid: 2, host: "h", threads: 2, modelChecksum: "aa", protocolVersion: 1), now: 150)
        try s.heartbeat(worker: "w2", now: 195)
        try s.upsertWorker(WorkerInfo(name: "w3", pid: 3, host: "h", threads: 2, modelChecksum: "aa", protocolVersion: 1), now: 199)
        try s.workerGone("w3", now: 199)
        assertStoreError(try s.heartbeat(worker: "w9", now: 1), "no worker named w9")
        st = try s.status(now: 200, liveness: 8)
        XCTAssertEqual([st.batchesCommitted, st.batchesTotal, st.requestsDone, st.requestsTotal], [2, 2, 3, 3])
        XCTAssertEqual([st.workersAlive, st.workersKnown], [1, 3])  // w1 too old, w3 gone
        XCTAssertEqual(st.lastBatchAt, 200)
        XCTAssertEqual(st.lastBatchSeconds, 2.5)
        XCTAssertEqual(st.method, "alphaedit")
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(st)) as? [String: Any]
        for key in ["batches_committed", "batches_total", "requests_done", "requests_total", "workers_alive", "jobs"] {
            XCTAssertNotNil(json?[key], key)
        }
    }

    func testAThrowingTransactionLeavesNothingBehind() throws {
        let s = try JobStore(directory: dir, create: true)
        let c = try s.createCampaign(settings: StoreFixtures.settings(requests: 2, batchSize: 1),
                                     templates: ContextTemplates(groups: [["{}"]]), requests: StoreFixtures.requests(2))
        try s.commitBatch(campaign: c.id, index: 1, deltas: try StoreFixtures.file(dir, "deltas/batch-00001.bin", .deltas, [1]),
                          cp: try StoreFixtures.file(dir, "cp/batch-00001.bin", .cp, [2]), seconds: 1)
        // Batch 2's cp reuses the deltas path: the second artifact insert fails after the old cp record
        // was dropped and the deltas recorded; all of it must roll back.
        let d2 = try StoreFixtures.file(dir, "deltas/batch-00002.bin", .deltas, [3])
        var cp2 = d2
        cp2.kind = .cp
        XCTAssertThrowsError(try s.commitBatch(campaign: c.id, index: 2, deltas: d2, cp: cp2, seconds: 1)) { e in
            XCTAssertTrue("\(e)".contains("UNIQUE constraint failed: artifacts.path"), "\(e)")
        }
        let b = try s.batches(campaign: c.id)
        XCTAssertEqual(b.map(\.state), [.committed, .pending])
        XCTAssertEqual(b[0].cp?.path, "cp/batch-00001.bin")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/cp/batch-00001.bin"))
        let raw = try SQLiteDatabase(path: dbPath, create: false)
        XCTAssertEqual(try raw.queryOne("SELECT count(*) AS n FROM artifacts")?.int("n"), 2)
        XCTAssertEqual(try raw.queryOne("SELECT count(*) AS n FROM requests WHERE state = 'done'")?.int("n"), 1)

        // The wrapper itself: a throwing body rolls back and rethrows its own error.
        struct Boom: Error {}
        try raw.exec("CREATE TABLE t (x INTEGER)")
        XCTAssertThrowsError(try raw.transaction { try raw.run("INSERT INTO t VALUES (1)"); throw Boom() }) { XCTAssertTrue($0 is Boom) }
        XCTAssertEqual(try raw.queryOne("SELECT count(*) AS n FROM t")?.int("n"), 0)
    }

    func testArtifactChecksumMismatchAndMissingFileAreNamed() throws {
        let s = try JobStore(directory: dir, create: true)
        let a = try s.registerArtifact(try StoreFixtures.file(dir, "cp/x.bin", .cp, Array(0..<200)))
        XCTAssertEqual(try s.artifact(id: try XCTUnwrap(a.id)), a)
        XCTAssertEqual(try s.verified(a), dir + "/cp/x.bin")
        var bytes = [UInt8](0..<200)
        bytes[77] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/cp/x.bin"))
        let (now, _) = try ArtifactFile.checksum(of: dir + "/cp/x.bin")
        assertStoreError(try s.verified(a), "\(dir)/cp/x.bin does not match the checksum recorded in the state database "
                         + "(recorded \(a.checksum), file \(now)): the file is corrupted or was replaced")
        try FileManager.default.removeItem(atPath: dir + "/cp/x.bin")
        assertStoreError(try s.verified(a), "\(dir)/cp/x.bin is missing: the state database references it")

        // A row whose path leaves the state directory (tampered, garbled) is refused when read: rollback
        // unlinks what a row names.
        let id = try XCTUnwrap(a.id)
        for bad in ["../victim.bin", "/etc/passwd", "cp/../../x"] {
            let raw = try SQLiteDatabase(path: dir + "/state.sqlite", create: false)
            XCTAssertEqual(try raw.run("UPDATE artifacts SET path = ? WHERE id = ?", [.text(bad), .int(id)]), 1)
            assertStoreError(try s.artifact(id: id), "\(s.path): artifact \(id) does not decode: its path \"\(bad)\" leaves the state directory")
        }
    }

    func testSQLiteTypedValuesRoundTripAndErrorsNameThePath() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let db = try SQLiteDatabase(path: dir + "/t.sqlite", create: true)
        try db.exec("CREATE TABLE v (i INTEGER, d REAL, s TEXT, b BLOB, n INTEGER)")
        let values: [SQLiteValue] = [.int(Int64.min), .double(-2.5e-300), .text("Köln \u{0} ✓"), .blob([0, 255, 7]), .null]
        XCTAssertEqual(try db.run("INSERT INTO v VALUES (?, ?, ?, ?, ?)", values), 1)
        let row = try XCTUnwrap(try db.queryOne("SELECT * FROM v"))
        XCTAssertEqual(row.values, values)
        XCTAssertEqual(try row.int("i"), Int64.min)
        XCTAssertEqual(try row.blob("b"), [0, 255, 7])
        XCTAssertNil(try row.optionalString("n"))
        XCTAssertThrowsError(try row.string("i")) {
            XCTAssertEqual("\($0)", "\(dir)/t.sqlite: sqlite error 20 SQLITE_MISMATCH (column i holds int(-9223372036854775808), expected text)")
        }
        XCTAssertThrowsError(try db.run("INSERT INTO nope VALUES (1)")) {
            XCTAssertEqual("\($0)", "\(dir)/t.sqlite: sqlite error 1 SQLITE_ERROR (no such table: nope) in `INSERT INTO nope VALUES (1)`")
        }
        XCTAssertThrowsError(try db.run("INSERT INTO v (i) VALUES (?)", [])) {
            XCTAssertTrue("\($0)".contains("0 values bound to 1 parameters"), "\($0)")
        }
    }

    // MARK: bad files

    func testMissingDatabaseIsNotAStateDirectory() {
        assertStoreError(try JobStore(directory: dir, create: false),
                         "\(dir) holds no state.sqlite: not an alphaedit state directory")
    }

    func testGarbageFileIsNotADatabase() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(String(repeating: "not a database at all\n", count: 300).utf8).write(to: URL(fileURLWithPath: dbPath))
        assertStoreError(try JobStore(directory: dir, create: true),
                         "\(dbPath) is not an SQLite database (wrong file, or overwritten)")
    }

    func testAnotherApplicationsDatabaseIsForeign() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        do {
            let raw = try SQLiteDatabase(path: dbPath, create: true)
            try raw.exec("CREATE TABLE users (name TEXT); CREATE TABLE orders (id INTEGER)")
        }
        assertStoreError(try JobStore(directory: dir, create: true),
                         "\(dbPath) is an SQLite database of another application (application_id 0x0, tables: orders, users), "
                         + "not an alphaedit state database")
        try FileManager.default.removeItem(atPath: dbPath)
        do { try SQLiteDatabase(path: dbPath, create: true).exec("PRAGMA application_id = 1234") }
        assertStoreError(try JobStore(directory: dir, create: true),
                         "\(dbPath) is an SQLite database of another application (application_id 0x4d2, tables: none), "
                         + "not an alphaedit state database")
    }

    func testAnotherSchemaVersionIsRefused() throws {
        do { _ = try JobStore(directory: dir, create: true) }
        do { try SQLiteDatabase(path: dbPath, create: false).exec("PRAGMA user_version = 99") }
        assertStoreError(try JobStore(directory: dir, create: false),
                         "\(dbPath) has alphaedit schema version 99; this build reads version 1")
    }

    func testTruncatedDatabaseIsCorrupt() throws {
        do {
            let s = try JobStore(directory: dir, create: true)
            _ = try s.createCampaign(settings: StoreFixtures.settings(requests: 2000, batchSize: 10),
                                     templates: ContextTemplates(groups: [["{}"]]), requests: StoreFixtures.requests(2000))
        }  // the last connection closes: the WAL is checkpointed into the file and removed
        XCTAssertFalse(FileManager.default.fileExists(atPath: dbPath + "-wal"))
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: dbPath)[.size] as? Int)
        XCTAssertGreaterThan(size, 64 * 1024)
        let fh = try XCTUnwrap(FileHandle(forWritingAtPath: dbPath))
        try fh.truncate(atOffset: UInt64(size / 2))
        try fh.close()
        assertStoreError(try JobStore(directory: dir, create: false),
                         "\(dbPath) is a corrupt SQLite database (database disk image is malformed); "
                         + "restore it from a copy or start a new state directory")
    }
}
