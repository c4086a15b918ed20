// Artifact records (files referenced by path and checksum) and the JSON columns' coding.
import Support
import GGUF
import Model
import Editing
import Foundation

extension JobStore {
    /// Records a file already written under the state directory (one transaction).
    public func registerArtifact(_ file: ArtifactFile, now: Double = Date().timeIntervalSince1970) throws -> ArtifactFile {
        try write { try insertArtifact(file, now: now) }
    }

    /// Whether a file at `path` (relative to the state directory) is in the commit record.
    public func isRecorded(path rel: String) throws -> Bool {
        try read { try db.queryOne("SELECT 1 AS n FROM artifacts WHERE path = ?", [.text(rel)]) != nil }
    }

    /// The record of artifact `id`.
    public func artifact(id: Int64) throws -> ArtifactFile {
        guard let a = try read({ try artifact(id: Optional(id)) }) else {
            throw StoreError.badRecord(path: path, what: "artifact \(id)", reason: "no such artifact")
        }
        return a
    }

    /// The absolute path of an artifact's file, after its checksum is recomputed and matches.
    public func verified(_ file: ArtifactFile) throws -> String {
        try file.verified(in: directory)
    }

    func insertArtifact(_ f: ArtifactFile, now: Double) throws -> ArtifactFile {
        try db.run("INSERT INTO artifacts (kind, path, checksum, bytes, created_at) VALUES (?, ?, ?, ?, ?)",
                   [.text(f.kind.rawValue), .text(f.path), .text(f.checksum), .int(f.bytes), .double(now)])
        var out = f
        out.id = db.lastInsertRowID
        return out
    }

    func artifact(id: Int64?) throws -> ArtifactFile? {
        guard let id else { return nil }
        guard let row = try db.queryOne("SELECT id, kind, path, checksum, bytes FROM artifacts WHERE id = ?", [.int(id)]) else {
            throw StoreError.badRecord(path: path, what: "artifact \(id)", reason: "referenced but missing")
        }
        return try artifact(row, idColumn: "id")
    }

    /// An artifact read from the columns kind, path, checksum, bytes of a row (nil when the id is NULL).
    func artifact(_ row: SQLiteRow, idColumn: String) throws -> ArtifactFile? {
        guard let id = try row.optionalInt(idColumn) else { return nil }
        let kindText = try row.string("kind")
        guard let kind = ArtifactKind(rawValue: kindText) else {
            throw StoreError.badRecord(path: path, what: "artifact \(id)", reason: "unknown kind \(kindText)")
        }
        // A recorded path stays inside the state directory: rollback unlinks what a row names, and a
        // tampered or garbled row ("../x", "/etc/x") would otherwise reach any file.
        let rel = try row.string("path")
        guard !rel.isEmpty, !rel.hasPrefix("/"), !rel.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
            throw StoreError.badRecord(path: path, what: "artifact \(id)", reason: "its path \"\(rel.prefix(80))\" leaves the state directory")
        }
        return ArtifactFile(id: id, kind: kind, path: rel, checksum: try row.string("checksum"), bytes: try row.int("bytes"))
    }

    func json<T: Encodable>(_ value: T) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: try enc.encode(value), as: UTF8.self)
    }

    func decode<T: Decodable>(_ type: T.Type, _ text: String, what: String) throws -> T {
        do { return try JSONDecoder().decode(type, from: Data(text.utf8)) } catch {
            throw StoreError.badRecord(path: path, what: what, reason: "\(error)")
        }
    }
}
