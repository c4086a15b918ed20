// The job state of an edit campaign: one SQLite database per state directory (`state.sqlite`), next to
// the artifact files it references. It is the commit record: a batch is committed exactly when its
// commitBatch transaction commits, a job is leased or done exactly when its row says so. Every
// operation that changes state is one transaction (JobStore+Campaigns, +Jobs, +Workers).
//
// Opening checks, in order, that the file is SQLite (else .notADatabase), that it is intact
// (`PRAGMA quick_check`, else .corrupt), and that it is ours: `application_id` = "AEDT" and
// `user_version` = the schema version (else .foreign / .unsupportedSchema). An empty database is
// given the schema when `create` is set.
import Support
import GGUF
import Model
import Editing
import CSQLite
import Foundation

public final class JobStore {
    public static let fileName = "state.sqlite"
    /// "AEDT" in the database header, so `file` and the checks below can tell this database from others.
    public static let applicationID: Int64 = 0x4145_4454
    public static let schemaVersion: Int64 = 1

    public let directory: String
    public let path: String
    /// A job taken this many times (each lease expired or released, or the worker reported an error)
    /// is failed rather than handed out again.
    public let maxAttempts: Int
    let db: SQLiteDatabase

    /// Opens for reading only (status, generate, export): never writes, and works on read-only storage.
    public let readOnly: Bool

    public init(directory: String, create: Bool, maxAttempts: Int = 3, readOnly: Bool = false) throws {
        self.directory = directory
        self.path = URL(fileURLWithPath: directory).appendingPathComponent(Self.fileName).path
        self.maxAttempts = maxAttempts
        self.readOnly = readOnly
        if FileIO.isDirectory(path) { throw StoreError.notADatabase(path: path) }   // not sqlite's "disk I/O error"
        if readOnly {
            guard FileManager.default.fileExists(atPath: path) else { throw StoreError.noDatabase(directory: directory) }
            // A rollback journal beside the database (a write cut short, or a stray file) must be dealt with
            // by a read-write open: read-only, every command failed with SQLITE_READONLY, naming no file.
            // Where the directory is writable, one read-write open lets sqlite roll it back (or drop it).
            if FileManager.default.fileExists(atPath: path + "-journal"), access(directory, W_OK) == 0,
               let rw = try? SQLiteDatabase(path: path, create: false) {
                _ = try? rw.queryOne("PRAGMA application_id")
            }
            do { db = try SQLiteDatabase(path: path, create: false, access: try Self.readAccess(directory: directory, path: path)) } catch {
                throw Self.mapped(error, path)
            }
            try identify(create: false)
            return
        }
        if !FileManager.default.fileExists(atPath: path) {
            guard create else { throw StoreError.noDatabase(directory: directory) }
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw StoreError.sqlite(SQLiteError(path: directory, code: 14, message: "cannot create the directory: \(error)", sql: nil))
            }
        }
        do { db = try SQLiteDatabase(path: path, create: create) } catch { throw Self.mapped(error, path) }
        try identify(create: create)
    }

    /// Read-only access to a directory: plain read-only where sqlite can keep its WAL index beside the
    /// database; `immutable` on read-only storage, unless a write-ahead log there still holds commits
    /// the database file lacks (immutable mode would not see them).
    static func readAccess(directory: String, path: String) throws -> SQLiteDatabase.Access {
        if access(directory, W_OK) == 0 { return .readOnly }
        let wal = path + "-wal"
        let walBytes = ((try? FileManager.default.attributesOfItem(atPath: wal))?[.size] as? NSNumber)?.intValue ?? 0
        guard walBytes == 0 else { throw StoreError.readOnlyWithLog(directory: directory, log: wal, bytes: walBytes) }
        return .immutable
    }

    /// Turns sqlite's codes for "not a database" and "damaged" into the errors that say so.
    static func mapped(_ error: Error, _ path: String) -> Error {
        guard let e = error as? SQLiteError else { return error }
        switch e.code & 0xFF {
        case SQLITE_NOTADB: return StoreError.notADatabase(path: path)
        case SQLITE_CORRUPT: return StoreError.corrupt(path: path, detail: e.message)
        default: return StoreError.sqlite(e)
        }
    }

    /// A write transaction; sqlite errors come out as StoreErrors.
    func write<T>(_ body: () throws -> T) throws -> T {
        do { return try db.transaction(body) } catch { throw Self.mapped(error, path) }
    }

    /// A read outside a write transaction (one statement, or a consistent snapshot of several).
    func read<T>(_ body: () throws -> T) throws -> T {
        do {
            try db.exec("BEGIN")
            defer { try? db.exec("COMMIT") }
            return try body()
        } catch {
            throw Self.mapped(error, path)
        }
    }

    private func identify(create: Bool) throws {
        do {
            let appID = try db.queryOne("PRAGMA application_id")?.int("application_id") ?? 0
            let check = try db.query("PRAGMA quick_check(5)").compactMap { try? $0.string("quick_check") }
            guard check == ["ok"] else {
                throw StoreError.corrupt(path: path, detail: "quick_check: " + check.joined(separator: "; "))
            }
            let version = try db.queryOne("PRAGMA user_version")?.int("user_version") ?? 0
            let tables = try db.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .map { try $0.string("name") }
            if appID == Self.applicationID {
                guard version == Self.schemaVersion else {
                    throw StoreError.unsupportedSchema(path: path, found: version, supported: Self.schemaVersion)
                }
            } else if appID != 0 || !tables.isEmpty || version != 0 {
                let hex = "0x" + String(UInt32(truncatingIfNeeded: appID), radix: 16)
                let shown = tables.prefix(5).joined(separator: ", ") + (tables.count > 5 ? ", …" : "")
                throw StoreError.foreign(path: path, detail: "application_id \(hex), tables: \(tables.isEmpty ? "none" : shown)")
            } else if !create {
                throw StoreError.foreign(path: path, detail: "an empty database without the alphaedit schema")
            }
            if readOnly { return }
            try db.useWriteAheadLog()
            try db.exec("PRAGMA foreign_keys = ON")
            if appID == 0 { try createSchema() }
        } catch let e as StoreError {
            throw e
        } catch {
            throw Self.mapped(error, path)
        }
    }

    private func createSchema() throws {
        try db.transaction {
            // Another process may have created it between our check and our write lock.
            let appID = try db.queryOne("PRAGMA application_id")?.int("application_id") ?? 0
            guard appID != Self.applicationID else { return }
            try db.exec(Self.schema)
            try db.exec("PRAGMA application_id = \(Self.applicationID); PRAGMA user_version = \(Self.schemaVersion)")
        }
    }

    /// Times are seconds since 1970 (REAL); batch indices are 1-based (as in deltas/batch-00001.bin),
    /// request indices 0-based positions in the facts file. JSON columns hold Codable Swift values.
    static let schema = """
    CREATE TABLE artifacts (
        id          INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL,
        path        TEXT NOT NULL UNIQUE,      -- relative to the state directory
        checksum    TEXT NOT NULL,             -- FNV-1a-64, hex
        bytes       INTEGER NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE TABLE campaigns (
        id            INTEGER PRIMARY KEY,
        method        TEXT NOT NULL,
        settings      TEXT NOT NULL,           -- CampaignSettings JSON
        templates     TEXT NOT NULL,           -- ContextTemplates JSON
        base_artifact INTEGER REFERENCES artifacts(id),   -- projector or K0 statistics
        created_at    REAL NOT NULL
    );
    CREATE TABLE batches (
        campaign        INTEGER NOT NULL REFERENCES campaigns(id),
        idx             INTEGER NOT NULL,
        first_request   INTEGER NOT NULL,
        request_count   INTEGER NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'committed')),
        deltas_artifact INTEGER REFERENCES artifacts(id),
        cp_artifact     INTEGER REFERENCES artifacts(id),  -- kept for the last committed batch only
        seconds         REAL,
        committed_at    REAL,
        PRIMARY KEY (campaign, idx)
    );
    CREATE TABLE requests (
        campaign    INTEGER NOT NULL REFERENCES campaigns(id),
        idx         INTEGER NOT NULL,
        batch       INTEGER NOT NULL,
        request     TEXT NOT NULL,             -- EditRequest JSON
        state       TEXT NOT NULL CHECK (state IN ('pending', 'done')),
        z_artifact  INTEGER REFERENCES artifacts(id),
        PRIMARY KEY (campaign, idx),
        FOREIGN KEY (campaign, batch) REFERENCES batches(campaign, idx)
    );
    CREATE TABLE jobs (
        id              INTEGER PRIMARY KEY,
        kind            TEXT NOT NULL CHECK (kind IN ('cov_shard', 'vstar', 'eval_shard')),
        campaign        INTEGER REFERENCES campaigns(id),
        batch           INTEGER,
        payload         TEXT NOT NULL,         -- JSON, per kind (VStarPayload for vstar)
        state           TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'done', 'failed')),
        lease_owner     TEXT,
        lease_expiry    REAL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        result_artifact INTEGER REFERENCES artifacts(id),
        result          TEXT,                  -- JSON, when the result is small
        error           TEXT,                  -- the last failure, kept for diagnosis
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL
    );
    CREATE INDEX jobs_by_state ON jobs (state, id);
    CREATE TABLE workers (
        name            TEXT PRIMARY KEY,
        pid             INTEGER NOT NULL,
        host            TEXT NOT NULL,
        threads         INTEGER NOT NULL,
        model_checksum  TEXT NOT NULL,
        protocol        INTEGER NOT NULL,
        first_seen      REAL NOT NULL,
        last_seen       REAL NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('alive', 'gone'))
    );
    """
}
