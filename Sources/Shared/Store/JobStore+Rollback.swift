// The commit record's half of `alphaedit rollback` (Campaign/EditRollback.swift has the rest): the
// campaign cut back to its first k batches, as if it had been created with their requests only. Batches
// after k (committed or pending), their requests, their v* jobs and the records of their files go; Cp
// after batch k (written by the caller beforehand, rebuilt from the batches' keys) becomes the record's
// Cp; the campaign's request count becomes that of its first k batches, so the removed requests come back
// only through `edit --extend` (again, or as corrected in the facts file). One transaction: on any error
// nothing changes. The files are deleted after it; a deletion cut short leaves files that no record
// references, which the next `edit` removes (`removeUnreferencedFiles`).
import Support
import GGUF
import Model
import Editing
import Foundation

/// What a rollback did to the record.
public struct RollbackRecord: Equatable, Sendable {
    /// Committed batches before and after.
    public var committedBefore: Int
    public var committedAfter: Int
    /// Batches removed (committed or pending), by index.
    public var removedBatches: [Int]
    /// Requests removed from the campaign.
    public var removedRequests: Int
    /// Requests the campaign holds now (its first ones).
    public var requestCount: Int
    /// Files no record references any more, relative to the state directory (deleted after the commit).
    public var removedFiles: [String]
}

extension JobStore {
    /// The recorded keys file of batch `index` (EditState.keysPath), nil when the batch has none (committed
    /// before they were kept, or not committed).
    public func keysFile(batch index: Int) throws -> ArtifactFile? {
        try read {
            guard let row = try db.queryOne("SELECT id, kind, path, checksum, bytes FROM artifacts WHERE path = ?",
                                            [.text(Self.keysPath(batch: index))]) else { return nil }
            return try artifact(row, idColumn: "id")
        }
    }

    /// Drops the record of batch `index`'s keys file (the file stays): the state as written before keys
    /// were kept (how EditRollbackTests makes one). Nothing references a keys record by id.
    public func forgetKeysFile(batch index: Int) throws {
        try write { try db.run("DELETE FROM artifacts WHERE path = ? AND kind = 'keys'", [.text(Self.keysPath(batch: index))]) }
    }

    static func keysPath(batch: Int) -> String { String(format: "keys/batch-%05d.bin", batch) }

    /// Cuts campaign `id` back to its first `k` batches (see the file comment). `cp`: the file of Cp after
    /// batch k, already written (nil for k = 0, or when k is the last committed batch and its Cp stays).
    /// `dryRun`: what it would do, found by reading only (so it works on a read-only database); nothing changed.
    public func rollback(campaign id: Int64, to k: Int, cp: ArtifactFile?, dryRun: Bool = false,
                         now: Double = Date().timeIntervalSince1970) throws -> RollbackRecord {
        if dryRun { return try read { try rollbackPlan(campaign: id, to: k, cp: cp).record } }
        let record: RollbackRecord = try write {
            let plan = try rollbackPlan(campaign: id, to: k, cp: cp)
            guard !plan.record.removedBatches.isEmpty, var c = plan.campaign else { return plan.record }
            try db.run("DELETE FROM jobs WHERE campaign = ? AND batch > ?", [.int(id), .int(Int64(k))])
            try db.run("DELETE FROM requests WHERE campaign = ? AND batch > ?", [.int(id), .int(Int64(k))])
            try db.run("DELETE FROM batches WHERE campaign = ? AND idx > ?", [.int(id), .int(Int64(k))])
            for a in plan.artifacts { try db.run("DELETE FROM artifacts WHERE id = ?", [.int(a)]) }
            if let cp {
                let a = try insertArtifact(cp, now: now)
                try db.run("UPDATE batches SET cp_artifact = ? WHERE campaign = ? AND idx = ?", [.int(a.id ?? 0), .int(id), .int(Int64(k))])
            }
            c.settings.requestCount = plan.record.requestCount
            try db.run("UPDATE campaigns SET settings = ? WHERE id = ?", [.text(try json(c.settings)), .int(id)])
            return plan.record
        }
        for p in record.removedFiles { try? FileManager.default.removeItem(atPath: ArtifactFile.absolute(p, in: directory)) }
        return record
    }

    /// What a rollback of campaign `id` to batch `k` removes, read from the record (every check made; nothing
    /// written): the record it leaves, the ids of the artifact rows it drops, and the campaign row (nil when
    /// nothing is removed).
    func rollbackPlan(campaign id: Int64, to k: Int, cp: ArtifactFile?) throws -> (record: RollbackRecord, artifacts: [Int64], campaign: Campaign?) {
        guard let c = try campaignRow(), c.id == id else { throw StoreError.noCampaign(path: path) }
        let batches = try db.query("SELECT * FROM batches WHERE campaign = ? ORDER BY idx", [.int(id)]).map(batchRecord)
        let committed = batches.filter { $0.state == .committed }.count
        guard k >= 0, k <= committed else {
            throw StoreError.cannotRollBack(path: path, reason: k < 0 ? "batch \(k) is not a batch"
                : "the campaign has \(committed) committed batch\(committed == 1 ? "" : "es"), not \(k)")
        }
        guard batches.prefix(committed).allSatisfy({ $0.state == .committed }) else {
            throw StoreError.badRecord(path: path, what: "batches", reason: "committed batches do not come first")
        }
        let keep = batches.prefix(k), drop = batches.dropFirst(k)
        let requestCount = keep.last?.requests.upperBound ?? 0
        if drop.isEmpty {
            return (RollbackRecord(committedBefore: committed, committedAfter: committed, removedBatches: [],
                                   removedRequests: 0, requestCount: requestCount, removedFiles: []), [], nil)
        }
        let needsCp = k > 0 && k < committed
        guard needsCp == (cp != nil) else {
            throw StoreError.cannotRollBack(path: path, reason: needsCp ? "Cp after batch \(k) was not given" : "a Cp file was given where none is needed")
        }
        if let cp, cp.kind != .cp { throw StoreError.cannotRollBack(path: path, reason: "\(cp.path) is a \(cp.kind.rawValue) file, not Cp") }
        // Records of the dropped batches' files: deltas, Cp, keys, and their v* jobs' results.
        var ids = Set<Int64>()
        for b in drop {
            if let a = b.deltas?.id { ids.insert(a) }
            if let a = b.cp?.id { ids.insert(a) }
            if let row = try db.queryOne("SELECT id FROM artifacts WHERE path = ?", [.text(Self.keysPath(batch: b.index))]) {
                ids.insert(try row.int("id"))
            }
        }
        for row in try db.query("SELECT result_artifact FROM jobs WHERE campaign = ? AND batch > ? AND result_artifact IS NOT NULL",
                                [.int(id), .int(Int64(k))]) {
            ids.insert(try row.int("result_artifact"))
        }
        var files: [String] = []
        for a in ids.sorted() {
            if let row = try db.queryOne("SELECT path FROM artifacts WHERE id = ?", [.int(a)]) { files.append(try row.string("path")) }
        }
        let r = RollbackRecord(committedBefore: committed, committedAfter: min(k, committed), removedBatches: drop.map(\.index),
                               removedRequests: drop.reduce(0) { $0 + $1.requests.count }, requestCount: requestCount,
                               removedFiles: files.sorted())
        return (r, ids.sorted(), c)
    }
}
