// A state directory: everything an edit campaign produced, enough to answer with the edited model,
// export it, or continue it. Layout:
//   state.sqlite             the commit record (JobStore): settings, templates, batches, requests, jobs,
//                            and every file below with its FNV-1a-64 checksum
//   projector.bin            null-space projectors (AlphaEdit) — or statistics.bin (MEMIT's C0)
//   cp/batch-00007.bin       the sequential state Cp after the last committed batch (7 here)
//   deltas/batch-00001.bin   ΔW of each committed batch, in order
//   keys/batch-00001.bin     the keys each committed batch added to Cp (BatchKeys; from 2026-12-07):
//                            Cp after any earlier batch is rebuilt from them (`alphaedit rollback`)
// Cp gets a new name per batch instead of overwriting one cp.bin: the new file is written before the
// batch commits, and until then the committed record must still find the old one intact.
import Support
import GGUF
import Model
import Editing
import Foundation

public enum EditStateError: Error, Equatable, CustomStringConvertible {
    /// The model to apply the state to is not the file the campaign edited.
    case otherModel(model: String, checksum: String, state: String, stateModel: String, stateChecksum: String)
    /// The model is an export of this very campaign: applying the edits again would double them.
    case alreadyEdited(model: String, checksum: String, state: String, batches: Int)

    public var description: String {
        switch self {
        case let .otherModel(m, sum, st, stm, stsum):
            return "model \(m) (checksum \(sum)) is not the model state \(st) was made for: \(stm) (checksum \(stsum)); "
                + "pass that file with --model"
        case let .alreadyEdited(m, sum, st, n):
            return "model \(m) (checksum \(sum)) is an export of state \(st) and already contains the edits of its first \(n) "
                + "batch\(n == 1 ? "" : "es"): use it without --state, or apply the state to the original model"
        }
    }
}

/// The committed content of a state directory, as read from its database.
public struct EditManifest: Sendable {
    public struct Batch: Sendable {
        public var index: Int
        public var requests: Int
        public var deltas: ArtifactFile
        public var seconds: Double
    }
    public var model: String
    public var method: EditMethod
    public var hyperparameters: EditHyperparameters
    public var templates: ContextTemplates
    public var base: ArtifactFile?        // projector.bin or statistics.bin
    public var cp: ArtifactFile?          // after the last committed batch
    public var batches: [Batch] = []      // committed, in order
}

public struct EditState {
    public let store: JobStore
    public let campaign: Campaign
    public let manifest: EditManifest
    public var directory: String { store.directory }

    /// Reads the committed state of the campaign in `store`.
    public init(store: JobStore) throws {
        guard let c = try store.campaign() else { throw StoreError.noCampaign(path: store.path) }
        var m = EditManifest(model: c.settings.model, method: c.settings.method, hyperparameters: c.settings.hyperparameters,
                             templates: c.templates, base: c.base)
        for b in try store.batches(campaign: c.id) where b.state == .committed {
            guard let d = b.deltas else {
                throw StoreError.badRecord(path: store.path, what: "batch \(b.index)", reason: "committed without a deltas file")
            }
            m.batches.append(.init(index: b.index, requests: b.requests.count, deltas: d, seconds: b.seconds ?? 0))
            if let cp = b.cp { m.cp = cp }
        }
        self.store = store; self.campaign = c; self.manifest = m
    }

    /// Opens an existing state directory for reading (nothing is created or written; read-only
    /// storage works).
    public static func load(directory: String) throws -> EditState {
        try EditState(store: JobStore(directory: directory, create: false, readOnly: true))
    }

    /// The model file the campaign in `directory` edited, as recorded, where the directory holds a campaign
    /// and that file exists; nil otherwise (a new state, or a model moved since: the caller's own choice
    /// then stands, and `checkModel` says which file the state wants).
    public static func recordedModel(directory: String) -> (path: String, exists: Bool)? {
        guard FileManager.default.fileExists(atPath: directory + "/" + JobStore.fileName),
              let model = try? load(directory: directory).campaign.settings.model else { return nil }
        return (model, FileManager.default.fileExists(atPath: model))
    }

    /// The FNV-1a-64 of an input file (a model, a corpus, snippets): one that cannot be read is an error
    /// saying why, not the "state database references it" of a missing artifact.
    public static func fileChecksum(_ path: String) throws -> String {
        if let why = FileIO.whyUnreadable(path) { throw FileIOError(path: path, reason: why) }
        return try ArtifactFile.checksum(of: path).0
    }

    public func url(_ rel: String) -> String { ArtifactFile.absolute(rel, in: directory) }

    /// A file's path after its checksum is checked against the database.
    public func verified(_ file: ArtifactFile) throws -> String { try store.verified(file) }

    /// Checks that `path` (loaded as `gguf`) is the model file this campaign edited: its FNV-1a-64 equals
    /// the recorded one. An export of this campaign (its metadata names the original's checksum and
    /// the facts) is refused as already edited; any other file as another model.
    public func checkModel(path: String, gguf: GGUFFile) throws {
        let s = campaign.settings
        let sum = try Self.fileChecksum(path)
        guard sum != s.modelChecksum else { return }
        // An export made before the campaign was extended carries an earlier facts checksum.
        if gguf.metadata[GGUFNames.editedFromChecksum] == .string(s.modelChecksum),
           s.allFactsChecksums.contains(where: { gguf.metadata[GGUFNames.editedFactsChecksum] == .string($0) }) {
            // An export of 0 batches (after `rollback --to-batch 0`) holds the model's own weights: the state applies.
            let n = gguf.metadata[GGUFNames.editedBatches]?.intValue ?? 0
            if n == 0 { return }
            throw EditStateError.alreadyEdited(model: path, checksum: sum, state: directory,
                                               batches: gguf.metadata[GGUFNames.editedBatches]?.intValue ?? 0)
        }
        throw EditStateError.otherModel(model: path, checksum: sum, state: directory, stateModel: s.model,
                                        stateChecksum: s.modelChecksum)
    }

    /// Metadata an export of this state carries (read back by `checkModel`).
    public var exportMetadata: [(String, GGUFValue)] {
        [(GGUFNames.editedFromChecksum, .string(campaign.settings.modelChecksum)),
         (GGUFNames.editedFactsChecksum, .string(campaign.settings.factsChecksum)),
         (GGUFNames.editedBatches, .uint32(UInt32(manifest.batches.count)))]
    }

    /// Applies every committed batch's deltas to `model`, in order, after checking each file.
    public func apply(to model: LlamaModel) throws {
        for b in manifest.batches {
            let d = try BatchDeltas.read(from: try verified(b.deltas))
            for (l, delta) in d.deltas.sorted(by: { $0.key < $1.key }) { try model.applyDelta(layer: l, delta: delta) }
        }
    }

    // MARK: writing (the coordinator)

    public static func deltasPath(batch: Int) -> String { String(format: "deltas/batch-%05d.bin", batch) }
    public static func cpPath(batch: Int) -> String { String(format: "cp/batch-%05d.bin", batch) }
    public static func keysPath(batch: Int) -> String { JobStore.keysPath(batch: batch) }
    /// The folders of per-batch files (what `removeUnreferencedFiles` sweeps).
    public static let batchFolders = ["deltas", "cp", "keys"]

    /// The files of a state (a base, batch files) in `directory` when it has no database to own them, or
    /// an empty one: a `cov --out` folder, or a state whose state.sqlite was lost. A new campaign there
    /// would write over that base and sweep those batch files, so `edit` refuses it. Empty: none.
    public static func unownedFiles(directory: String) -> [String] {
        let db = ArtifactFile.absolute(JobStore.fileName, in: directory)
        if let size = (try? FileManager.default.attributesOfItem(atPath: db))?[.size] as? NSNumber, size.intValue > 0 { return [] }
        var found = ["projector.bin", "statistics.bin", "k0-shards"].filter { FileManager.default.fileExists(atPath: ArtifactFile.absolute($0, in: directory)) }
        for folder in batchFolders {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: ArtifactFile.absolute(folder, in: directory))) ?? []
            found += names.filter(JobStore.isBatchFileName).sorted().prefix(3).map { folder + "/" + $0 }
        }
        return found
    }

    /// Writes AlphaEdit's projectors and records them as the campaign's base.
    public static func recordBase(_ store: JobStore, campaign: Int64, projectors: NullSpaceProjectorSet) throws -> ArtifactFile {
        try projectors.write(to: ArtifactFile.absolute("projector.bin", in: store.directory))
        return try store.setBase(campaign: campaign, try ArtifactFile.describe(kind: .projector, path: "projector.bin", in: store.directory))
    }

    /// Writes MEMIT's K0 statistics and records them as the campaign's base.
    public static func recordBase(_ store: JobStore, campaign: Int64, statistics: KeyStatistics) throws -> ArtifactFile {
        try statistics.write(to: ArtifactFile.absolute("statistics.bin", in: store.directory))
        return try store.setBase(campaign: campaign, try ArtifactFile.describe(kind: .covariance, path: "statistics.bin", in: store.directory))
    }

    /// Commits one batch: its ΔW, the Cp after it and the keys it added to Cp are written (and flushed)
    /// first, then one transaction records them and marks the batch and its requests done. A process
    /// that dies before the transaction leaves files no record references; the next run overwrites or
    /// removes them.
    public static func commit(_ store: JobStore, campaign: Int64, batch: Int, deltas: BatchDeltas,
                              cp: SequentialState, keys: BatchKeys? = nil, seconds: Double) throws {
        for dir in batchFolders {
            try FileManager.default.createDirectory(atPath: ArtifactFile.absolute(dir, in: store.directory),
                                                    withIntermediateDirectories: true)
        }
        let d = deltasPath(batch: batch), c = cpPath(batch: batch), k = keysPath(batch: batch)
        // Committed files are never rewritten: a batch already in the commit record stops here, before
        // its files are touched (StateLock keeps a second coordinator out; this guards any caller).
        for path in [d, c, k] where try store.isRecorded(path: path) {
            throw StoreError.batchOutOfOrder(campaign: campaign, index: batch,
                                             reason: "it is already committed (\(path) is in the commit record and is never rewritten)")
        }
        try deltas.write(to: ArtifactFile.absolute(d, in: store.directory))
        try cp.write(to: ArtifactFile.absolute(c, in: store.directory))
        try keys?.write(to: ArtifactFile.absolute(k, in: store.directory))
        try store.commitBatch(campaign: campaign, index: batch,
                              deltas: try ArtifactFile.describe(kind: .deltas, path: d, in: store.directory),
                              cp: try ArtifactFile.describe(kind: .cp, path: c, in: store.directory),
                              keys: try keys.map { _ in try ArtifactFile.describe(kind: .keys, path: k, in: store.directory) },
                              seconds: seconds)
    }
}
