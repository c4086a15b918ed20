// The SQLite C API, wrapped once: a connection, prepared statements with typed binds and columns, and
// transactions. Everything above it (JobStore) speaks SQL through these few calls.
//
// Journal: WAL, so readers (`alphaedit status`, a worker's view) never block the writer and the
// writer never blocks them. synchronous=FULL rather than NORMAL: in WAL mode NORMAL may roll back the
// last commits after a power loss or OS crash, and a commit here stands for minutes of compute (a
// committed batch, a finished job). The price, one fsync of the WAL per commit, is nothing at the
// rates here (a few transactions a second at most).
import Support
import GGUF
import Model
import Editing
import CSQLite
import Foundation

/// SQLITE_TRANSIENT is a C macro Swift cannot import: it tells sqlite to copy bound text and blobs.
let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

public struct SQLiteError: Error, Equatable, CustomStringConvertible {
    public let path: String
    /// sqlite's primary result code (SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_BUSY, …).
    public let code: Int32
    public let message: String
    public let sql: String?

    /// The primary code's name, as sqlite3.h spells it.
    public var codeName: String {
        let names: [Int32: String] = [
            SQLITE_ERROR: "SQLITE_ERROR", SQLITE_INTERNAL: "SQLITE_INTERNAL", SQLITE_PERM: "SQLITE_PERM",
            SQLITE_ABORT: "SQLITE_ABORT", SQLITE_BUSY: "SQLITE_BUSY", SQLITE_LOCKED: "SQLITE_LOCKED",
            SQLITE_NOMEM: "SQLITE_NOMEM", SQLITE_READONLY: "SQLITE_READONLY", SQLITE_INTERRUPT: "SQLITE_INTERRUPT",
            SQLITE_IOERR: "SQLITE_IOERR", SQLITE_CORRUPT: "SQLITE_CORRUPT", SQLITE_NOTFOUND: "SQLITE_NOTFOUND",
            SQLITE_FULL: "SQLITE_FULL", SQLITE_CANTOPEN: "SQLITE_CANTOPEN", SQLITE_PROTOCOL: "SQLITE_PROTOCOL",
            SQLITE_SCHEMA: "SQLITE_SCHEMA", SQLITE_TOOBIG: "SQLITE_TOOBIG", SQLITE_CONSTRAINT: "SQLITE_CONSTRAINT",
            SQLITE_MISMATCH: "SQLITE_MISMATCH", SQLITE_MISUSE: "SQLITE_MISUSE", SQLITE_NOLFS: "SQLITE_NOLFS",
            SQLITE_AUTH: "SQLITE_AUTH", SQLITE_RANGE: "SQLITE_RANGE", SQLITE_NOTADB: "SQLITE_NOTADB",
        ]
        return names[code & 0xFF] ?? "sqlite code \(code)"
    }

    public var description: String {
        "\(path): sqlite error \(code) \(codeName) (\(message))" + (sql.map { " in `\($0)`" } ?? "")
    }
}

/// A value bound to a parameter or read from a column.
public enum SQLiteValue: Equatable, Sendable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])
}

/// One connection. Not shared across threads: each thread (or process) opens its own; sqlite's locks
/// and BEGIN IMMEDIATE serialise the writers.
public final class SQLiteDatabase {
    public let path: String
    private var handle: OpaquePointer?

    /// How a connection may touch the file.
    public enum Access: Sendable {
        case readWrite
        /// Reads only; sqlite may still create the WAL index (`-shm`) beside the file.
        case readOnly
        /// Reads only, and sqlite assumes nothing changes the file and creates nothing beside it: for a
        /// database on read-only storage (sqlite's `immutable=1`; a `-wal` file would be ignored).
        case immutable
    }

    /// Opens `path`, creating the file when `create` is set (read-write access only). Nothing is read
    /// yet: a file that is not a database shows up on the first statement (SQLITE_NOTADB).
    public init(path: String, create: Bool, access: Access = .readWrite, busyTimeoutMilliseconds: Int32 = 10_000) throws {
        self.path = path
        var h: OpaquePointer?
        var name = path
        var flags = SQLITE_OPEN_FULLMUTEX
        switch access {
        case .readWrite: flags |= SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0)
        case .readOnly: flags |= SQLITE_OPEN_READONLY
        case .immutable:
            flags |= SQLITE_OPEN_READONLY | SQLITE_OPEN_URI
            let unreserved = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "/-._~"))
            name = "file:" + (path.addingPercentEncoding(withAllowedCharacters: unreserved) ?? path) + "?immutable=1"
        }
        let rc = sqlite3_open_v2(name, &h, flags, nil)
        guard rc == SQLITE_OK, let h else {
            let msg = h.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(h)
            throw SQLiteError(path: path, code: rc & 0xff, message: msg, sql: nil)
        }
        handle = h
        sqlite3_extended_result_codes(h, 0)
        sqlite3_busy_timeout(h, busyTimeoutMilliseconds)
    }

    deinit { sqlite3_close_v2(handle) }

    func error(_ rc: Int32, _ sql: String?) -> SQLiteError {
        SQLiteError(path: path, code: rc & 0xff, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }

    /// Runs one or more statements that return no rows (schema, pragmas that set).
    public func exec(_ sql: String) throws {
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc, sql) }
    }

    public func prepare(_ sql: String) throws -> SQLiteStatement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, sql) }
        return SQLiteStatement(db: self, stmt: stmt, sql: sql)
    }

    /// Runs a statement with parameters; returns the number of rows it changed.
    @discardableResult
    public func run(_ sql: String, _ args: [SQLiteValue] = []) throws -> Int {
        let s = try prepare(sql)
        try s.bind(args)
        while try s.step() {}
        return Int(sqlite3_changes(handle))
    }

    /// Every row of a query.
    public func query(_ sql: String, _ args: [SQLiteValue] = []) throws -> [SQLiteRow] {
        let s = try prepare(sql)
        try s.bind(args)
        var rows: [SQLiteRow] = []
        while try s.step() { rows.append(s.row()) }
        return rows
    }

    /// The first row of a query, if any.
    public func queryOne(_ sql: String, _ args: [SQLiteValue] = []) throws -> SQLiteRow? {
        let s = try prepare(sql)
        try s.bind(args)
        return try s.step() ? s.row() : nil
    }

    /// WAL journal and synchronous=FULL (see the file comment for why). Needs a readable database.
    public func useWriteAheadLog() throws {
        let mode = try queryOne("PRAGMA journal_mode=WAL")?.string("journal_mode")
        guard mode == "wal" else {
            throw SQLiteError(path: path, code: SQLITE_ERROR, message: "journal mode is \(mode ?? "unknown"), not wal", sql: nil)
        }
        try exec("PRAGMA synchronous=FULL")
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Runs `body` in one write transaction: BEGIN IMMEDIATE takes the write lock up front (waiting up
    /// to the busy timeout), so two connections that read-then-update never interleave; COMMIT on
    /// return, ROLLBACK when `body` throws (the error is rethrown).
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try exec("BEGIN IMMEDIATE")
        let value: T
        do {
            value = try body()
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
        do {
            try exec("COMMIT")
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
        return value
    }
}

/// A prepared statement; finalized when released.
public final class SQLiteStatement {
    let db: SQLiteDatabase
    let stmt: OpaquePointer
    let sql: String

    init(db: SQLiteDatabase, stmt: OpaquePointer, sql: String) { self.db = db; self.stmt = stmt; self.sql = sql }
    deinit { sqlite3_finalize(stmt) }

    /// Binds parameters 1…n in order (resetting the statement first, so it can be reused).
    public func bind(_ values: [SQLiteValue]) throws {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
        guard values.count == Int(sqlite3_bind_parameter_count(stmt)) else {
            throw SQLiteError(path: db.path, code: SQLITE_RANGE, message:
                "\(values.count) values bound to \(sqlite3_bind_parameter_count(stmt)) parameters", sql: sql)
        }
        for (i, v) in values.enumerated() {
            let k = Int32(i + 1)
            let rc: Int32
            switch v {
            case .null: rc = sqlite3_bind_null(stmt, k)
            case .int(let x): rc = sqlite3_bind_int64(stmt, k, x)
            case .double(let x): rc = sqlite3_bind_double(stmt, k, x)
            case .text(let s):
                // The byte length, not -1: text may hold U+0000, which would end a C string early.
                rc = s.utf8CString.withUnsafeBufferPointer {
                    sqlite3_bind_text64(stmt, k, $0.baseAddress, sqlite3_uint64($0.count - 1), sqliteTransient, UInt8(SQLITE_UTF8))
                }
            case .blob(let b):
                rc = b.withUnsafeBytes { sqlite3_bind_blob64(stmt, k, $0.baseAddress, sqlite3_uint64($0.count), sqliteTransient) }
            }
            guard rc == SQLITE_OK else { throw db.error(rc, sql) }
        }
    }

    /// Advances: true when a row is ready, false when done.
    public func step() throws -> Bool {
        let rc = sqlite3_step(stmt)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw db.error(rc, sql)
        }
    }

    /// The current row's columns.
    public func row() -> SQLiteRow {
        let n = Int(sqlite3_column_count(stmt))
        var names: [String] = [], values: [SQLiteValue] = []
        for i in 0..<Int32(n) {
            names.append(String(cString: sqlite3_column_name(stmt, i)))
            switch sqlite3_column_type(stmt, i) {
            case SQLITE_INTEGER: values.append(.int(sqlite3_column_int64(stmt, i)))
            case SQLITE_FLOAT: values.append(.double(sqlite3_column_double(stmt, i)))
            case SQLITE_TEXT:
                let count = Int(sqlite3_column_bytes(stmt, i))
                let text = sqlite3_column_text(stmt, i).map { String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self) }
                values.append(.text(text ?? ""))
            case SQLITE_BLOB:
                let count = Int(sqlite3_column_bytes(stmt, i))
                if let p = sqlite3_column_blob(stmt, i), count > 0 {
                    values.append(.blob(Array(UnsafeRawBufferPointer(start: p, count: count))))
                } else {
                    values.append(.blob([]))
                }
            default: values.append(.null)
            }
        }
        return SQLiteRow(path: db.path, names: names, values: values)
    }
}

/// One result row. Typed reads throw (naming the column) when the stored value has another type:
/// a database edited by hand is input like any other.
public struct SQLiteRow: Sendable {
    let path: String
    public let names: [String]
    public let values: [SQLiteValue]

    public subscript(_ column: String) -> SQLiteValue {
        names.firstIndex(of: column).map { values[$0] } ?? .null
    }

    func mismatch(_ column: String, _ want: String) -> SQLiteError {
        SQLiteError(path: path, code: SQLITE_MISMATCH, message: "column \(column) holds \(self[column]), expected \(want)", sql: nil)
    }

    public func int(_ c: String) throws -> Int64 {
        guard case .int(let v) = self[c] else { throw mismatch(c, "an integer") }
        return v
    }
    public func double(_ c: String) throws -> Double {
        switch self[c] {
        case .double(let v): return v
        case .int(let v): return Double(v)
        default: throw mismatch(c, "a number")
        }
    }
    public func string(_ c: String) throws -> String {
        guard case .text(let v) = self[c] else { throw mismatch(c, "text") }
        return v
    }
    public func blob(_ c: String) throws -> [UInt8] {
        guard case .blob(let v) = self[c] else { throw mismatch(c, "a blob") }
        return v
    }
    public func isNull(_ c: String) -> Bool { self[c] == .null }
    public func optionalInt(_ c: String) throws -> Int64? { isNull(c) ? nil : try int(c) }
    public func optionalDouble(_ c: String) throws -> Double? { isNull(c) ? nil : try double(c) }
    public func optionalString(_ c: String) throws -> String? { isNull(c) ? nil : try string(c) }
}
