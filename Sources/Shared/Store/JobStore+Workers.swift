// Workers as the coordinator last saw them: registered, heartbeats, gone (their jobs put back).
import Support
import GGUF
import Model
import Editing
import Foundation

public struct WorkerInfo: Codable, Equatable, Sendable {
    public var name: String
    public var pid: Int
    public var host: String
    public var threads: Int
    public var modelChecksum: String
    public var protocolVersion: Int
    public init(name: String, pid: Int, host: String, threads: Int, modelChecksum: String, protocolVersion: Int) {
        self.name = name; self.pid = pid; self.host = host; self.threads = threads
        self.modelChecksum = modelChecksum; self.protocolVersion = protocolVersion
    }
}

public enum WorkerState: String, Codable, Sendable { case alive, gone }

public struct WorkerRecord: Sendable {
    public var info: WorkerInfo
    public var firstSeen: Double
    public var lastSeen: Double
    public var state: WorkerState
}

extension JobStore {
    /// A worker (re)registers: alive from now on.
    public func upsertWorker(_ w: WorkerInfo, now: Double) throws {
        try write {
            try db.run("""
                INSERT INTO workers (name, pid, host, threads, model_checksum, protocol, first_seen, last_seen, state)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 'alive')
                ON CONFLICT (name) DO UPDATE SET pid = ?2, host = ?3, threads = ?4, model_checksum = ?5, protocol = ?6,
                    last_seen = ?7, state = 'alive'
                """, [.text(w.name), .int(Int64(w.pid)), .text(w.host), .int(Int64(w.threads)), .text(w.modelChecksum),
                      .int(Int64(w.protocolVersion)), .double(now)])
        }
    }

    public func heartbeat(worker name: String, now: Double) throws {
        try write {
            let n = try db.run("UPDATE workers SET last_seen = ?, state = 'alive' WHERE name = ?", [.double(now), .text(name)])
            guard n == 1 else { throw StoreError.unknownWorker(name: name) }
        }
    }

    /// A worker left or missed its heartbeats (its jobs are the pool's to re-queue: JobStore+Jobs).
    public func workerGone(_ name: String, now: Double) throws {
        try write { _ = try db.run("UPDATE workers SET state = 'gone', last_seen = MAX(last_seen, ?) WHERE name = ?", [.double(now), .text(name)]) }
    }

    public func workers() throws -> [WorkerRecord] {
        try read {
            try db.query("SELECT * FROM workers ORDER BY name").map { r in
                let stateText = try r.string("state")
                guard let state = WorkerState(rawValue: stateText) else {
                    throw StoreError.badRecord(path: path, what: "worker \(try r.string("name"))", reason: "state \(stateText)")
                }
                return WorkerRecord(
                    info: WorkerInfo(name: try r.string("name"), pid: Int(try r.int("pid")), host: try r.string("host"),
                                     threads: Int(try r.int("threads")), modelChecksum: try r.string("model_checksum"),
                                     protocolVersion: Int(try r.int("protocol"))),
                    firstSeen: try r.double("first_seen"), lastSeen: try r.double("last_seen"), state: state)
            }
        }
    }
}
