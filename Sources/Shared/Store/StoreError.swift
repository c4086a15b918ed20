// What can go wrong with a state directory's database and the files it references. Every case names
// the file (or the job, campaign, worker) so the message alone says what to look at.
import Support
import GGUF
import Model
import Editing

public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// The directory has no database (and none was to be created).
    case noDatabase(directory: String)
    /// The file is not an SQLite database at all.
    case notADatabase(path: String)
    /// SQLite, but damaged (quick_check failed, or a page could not be read).
    case corrupt(path: String, detail: String)
    /// SQLite, but written by another program.
    case foreign(path: String, detail: String)
    /// An alphaedit database of a schema version this build does not read.
    case unsupportedSchema(path: String, found: Int64, supported: Int64)
    /// Any other sqlite failure (I/O, locking past the busy timeout, a constraint).
    case sqlite(SQLiteError)
    /// A stored value does not decode (hand-edited or written by a different build).
    case badRecord(path: String, what: String, reason: String)

    case noCampaign(path: String)
    case campaignMismatch(path: String, differences: [SettingDifference])
    /// A campaign asked to extend whose stored request `index` is not the facts file's record there.
    case requestChanged(path: String, index: Int, fields: [String])
    /// More requests than the campaign holds, its own first, without asking to extend it.
    case extensionNotAsked(path: String, stored: Int, requested: Int)
    case unknownBatch(campaign: Int64, index: Int)
    case batchOutOfOrder(campaign: Int64, index: Int, reason: String)
    /// A rollback that cannot be done as asked (nothing is changed).
    case cannotRollBack(path: String, reason: String)

    case unknownJob(id: Int64)
    /// The caller no longer holds the job's lease (it expired and moved on, or was released).
    case jobClosed(job: Int64, state: String)
    case unknownWorker(name: String)

    /// A read-only open of a directory on read-only storage whose write-ahead log holds commits.
    case readOnlyWithLog(directory: String, log: String, bytes: Int)

    case missingArtifact(path: String)
    case artifactChecksumMismatch(path: String, recorded: String, computed: String)

    public var description: String {
        switch self {
        case .noDatabase(let d):
            return "\(d) holds no \(JobStore.fileName): not an alphaedit state directory"
        case .notADatabase(let p):
            return "\(p) is not an SQLite database (wrong file, or overwritten)"
        case let .corrupt(p, detail):
            return "\(p) is a corrupt SQLite database (\(detail)); restore it from a copy or start a new state directory"
        case let .foreign(p, detail):
            return "\(p) is an SQLite database of another application (\(detail)), not an alphaedit state database"
        case let .unsupportedSchema(p, found, supported):
            return "\(p) has alphaedit schema version \(found); this build reads version \(supported)"
        case .sqlite(let e):
            return e.description
        case let .badRecord(p, what, reason):
            return "\(p): \(what) does not decode: \(reason)"
        case let .readOnlyWithLog(d, log, bytes):
            return "\(d) is read-only and its write-ahead log \(log) (\(bytes) bytes) holds commits the database "
                + "file lacks, which read-only storage cannot fold in: copy the directory to writable storage and read it there"
        case .noCampaign(let p):
            return "\(p) holds no edit campaign"
        case let .campaignMismatch(p, diffs):
            return "\(p) holds a campaign with other settings (\(diffs.map(\.description).joined(separator: "; "))): "
                + "run with the original settings to resume it, or use another --state directory"
        case let .requestChanged(p, i, fields):
            return "\(p): request \(i) of the campaign is not the facts' record \(i) (\(fields.joined(separator: ", ")) \(fields.count == 1 ? "differs" : "differ")); "
                + "a campaign extends only by records after its own: restore the file's first records, or use another --state directory"
        case let .extensionNotAsked(p, stored, requested):
            return "\(p) holds a campaign of \(stored) requests, the first \(stored) of these \(requested): run with --extend to "
                + "edit the \(requested - stored) new \(requested - stored == 1 ? "one" : "ones") as further batches, or use another --state directory"
        case let .unknownBatch(c, i):
            return "campaign \(c) has no batch \(i)"
        case let .batchOutOfOrder(c, i, reason):
            return "batch \(i) of campaign \(c) cannot be committed: \(reason)"
        case let .cannotRollBack(p, reason):
            return "\(p): cannot roll back: \(reason); nothing was changed"
        case .unknownJob(let id):
            return "no job \(id)"
        case let .jobClosed(job, state):
            return "job \(job) is \(state): its outcome is already recorded"
        case .unknownWorker(let n):
            return "no worker named \(n)"
        case .missingArtifact(let p):
            return "\(p) is missing: the state database references it"
        case let .artifactChecksumMismatch(p, recorded, computed):
            return "\(p) does not match the checksum recorded in the state database "
                + "(recorded \(recorded), file \(computed)): the file is corrupted or was replaced"
        }
    }
}
