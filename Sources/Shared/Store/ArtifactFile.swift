// A file of the state directory as the database records it: kind, path relative to the directory,
// FNV-1a-64 checksum (see Artifact.swift for why this hash) and size. The database never holds the
// bulk data itself; it holds these records, and a file is trusted only after its checksum is
// recomputed and matches.
#if canImport(Glibc)
import Support
import GGUF
import Model
import Editing
import Glibc
#endif
import Foundation

public enum ArtifactKind: String, Codable, Sendable, CaseIterable {
    case covariance      // K0 statistics shard or sum (MEMIT's C0 is this kind)
    case projector       // null-space projectors
    case cp              // the sequential state after a batch
    case deltas          // one batch's ΔW
    case keys            // the keys one batch added to Cp (BatchKeys)
    case zresults        // a v* job's results
    case evaluation      // an evaluation shard's results
}

public struct ArtifactFile: Codable, Equatable, Sendable {
    /// The row id once registered in a database.
    public var id: Int64?
    public var kind: ArtifactKind
    /// Relative to the state directory.
    public var path: String
    /// FNV-1a-64 of the whole file, lowercase hex.
    public var checksum: String
    public var bytes: Int64

    public init(id: Int64? = nil, kind: ArtifactKind, path: String, checksum: String, bytes: Int64) {
        self.id = id; self.kind = kind; self.path = path; self.checksum = checksum; self.bytes = bytes
    }

    /// Checksums a file already written under `directory/path` and flushes it to disk: the record is
    /// about to be committed, and a committed record must not outlive its file in a power loss.
    public static func describe(kind: ArtifactKind, path: String, in directory: String) throws -> ArtifactFile {
        let full = absolute(path, in: directory)
        let (sum, bytes) = try checksum(of: full, sync: true)
        syncDirectory(URL(fileURLWithPath: full).deletingLastPathComponent().path)
        return ArtifactFile(kind: kind, path: path, checksum: sum, bytes: bytes)
    }

    /// The file's absolute path after its checksum is recomputed and found equal to the record's.
    public func verified(in directory: String) throws -> String {
        let full = Self.absolute(path, in: directory)
        let (sum, _) = try Self.checksum(of: full, sync: false)
        guard sum == checksum else {
            throw StoreError.artifactChecksumMismatch(path: full, recorded: checksum, computed: sum)
        }
        return full
    }

    public static func absolute(_ path: String, in directory: String) -> String {
        URL(fileURLWithPath: directory).appendingPathComponent(path).path
    }

    /// FNV-1a-64 of a file, read in 1 MiB pieces (a projector set is tens of MB), and its size.
    public static func checksum(of path: String, sync: Bool = false) throws -> (String, Int64) {
        guard let fh = FileHandle(forReadingAtPath: path) else { throw StoreError.missingArtifact(path: path) }
        defer { try? fh.close() }
        var h = FNV1a64.offsetBasis
        var total: Int64 = 0
        while true {
            let chunk: Data?
            do { chunk = try fh.read(upToCount: 1 << 20) } catch {
                throw ArtifactError.io(path: path, reason: "cannot read: \(error)")
            }
            guard let chunk, !chunk.isEmpty else { break }
            h = chunk.withUnsafeBytes { FNV1a64.hash($0, seed: h) }
            total += Int64(chunk.count)
        }
        if sync {
            do { try fh.synchronize() } catch { throw ArtifactError.io(path: path, reason: "cannot flush to disk: \(error)") }
        }
        return (String(h, radix: 16), total)
    }

    /// Makes a rename into `directory` durable. Best effort: a file system that cannot fsync a
    /// directory still has the file, only without the guarantee.
    static func syncDirectory(_ directory: String) {
        #if canImport(Glibc)
        let fd = open(directory, O_RDONLY)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
        #endif
    }
}
