// `alphaedit rollback`: a campaign back to its first k batches, as if it had been created with their
// requests only, so that a wrong or unwanted edit can be taken out without editing everything before it
// again (on Qwen2.5-0.5B a batch of 100 costs ≈ 25 min of v*, and K₀ ≈ 14 min). The model of the state
// is then the unedited model plus batches 1…k, and Cp (SequentialState) is what it was after batch k:
// rebuilt from the keys each batch added (BatchKeys, keys/batch-NNNNN.bin), in the order they were added,
// so it is that Cp bit for bit, and an `edit --extend` over the same facts ends with the weights of the
// campaign that was never rolled back (EditRollbackTests). Before anything changes, the keys of every
// committed batch, added up, must give the recorded Cp of the last one: a state whose files disagree is
// refused, not cut. Batches committed before the keys were kept (before 2026-12-07) have no keys file:
// where every batch after the one asked for kept its keys, Cp is the recorded Cp less theirs; otherwise
// the missing keys are read again from the model the campaign edited (`recomputeKeys`), as the batch read
// them, and the same check against the recorded Cp holds them to 1e-12.
import Support
import Model
import Tokenization
import Editing
import Store
import Foundation

public struct EditRollbackSummary: Encodable, Sendable {
    public var state: String
    public var committedBefore: Int
    public var committedAfter: Int
    public var removedBatches: [Int]
    public var removedRequests: Int
    /// Requests the campaign holds now.
    public var requestCount: Int
    public var removedFiles: Int
    /// How the recorded Cp of the last committed batch compared with the sum of the batches' keys:
    /// "equal", "within 1e-12 relative (max …)", or why it was not checked.
    public var cpCheck: String
    /// Nothing was changed (`--dry-run`).
    public var dryRun: Bool

    enum CodingKeys: String, CodingKey {
        case state, committedBefore = "committed_before", committedAfter = "committed_after", removedBatches = "removed_batches"
        case removedRequests = "removed_requests", requestCount = "request_count", removedFiles = "removed_files", cpCheck = "cp_check", dryRun = "dry_run"
    }
}

public enum EditRollback {
    /// Rolls the campaign in `directory` back to its first `k` batches (see the file comment). Takes the
    /// state's lock: a running `edit` on it makes this an error at once (a dry run on read-only storage takes none).
    /// `dryRun`: every check made (the keys' checksums and sum), nothing written: what it would do.
    /// `modelPath`: the model file the campaign edited, where keys must be read again (default: the
    /// recorded path; its checksum must be the recorded one).
    public static func run(directory: String, to k: Int, dryRun: Bool = false, modelPath: String? = nil,
                           log: (String) -> Void = { _ in }) throws -> EditRollbackSummary {
        guard FileManager.default.fileExists(atPath: directory + "/" + JobStore.fileName) else {
            throw StoreError.noDatabase(directory: directory)
        }
        // A dry run reads only: on read-only storage (where no edit can run either) it takes no lock and
        // opens the database read-only, as `status` does.
        let readOnlyDryRun = dryRun && access(directory, W_OK) != 0
        let lock = readOnlyDryRun ? nil : try StateLock(directory: directory)
        defer { lock?.release() }
        let store = try JobStore(directory: directory, create: false, readOnly: dryRun)
        let st = try EditState(store: store)
        let n = st.manifest.batches.count
        guard k >= 0, k <= n else {
            throw StoreError.cannotRollBack(path: directory, reason: "it has \(n) committed batch\(n == 1 ? "" : "es"); roll back to 0…\(n)")
        }
        // Every file the rolled-back state keeps (its base, the first k batches' deltas) is checked before
        // anything changes: a rollback of a state whose projector was damaged removed good batches and left
        // a state no edit could resume. Files of the batches taken out may be damaged: removing them is a repair.
        for f in [st.manifest.base].compactMap({ $0 }) + st.manifest.batches.prefix(k).map(\.deltas) {
            do { _ = try st.verified(f) } catch {
                throw StoreError.cannotRollBack(path: directory, reason: "a file the rolled-back state would keep is damaged (\(error))")
            }
        }
        var cpFile: ArtifactFile?
        var check = "not needed"
        if k > 0, k < n {
            var keys: [Int: ArtifactFile] = [:]
            for b in st.manifest.batches {
                if let f = try store.keysFile(batch: b.index) { keys[b.index] = f }
            }
            let head = st.manifest.batches.prefix(k), tail = st.manifest.batches.dropFirst(k)
            if let missing = head.first(where: { keys[$0.index] == nil }) {
                // The keys before batch k are not all kept (batches committed before 2026-12-07): Cp after
                // batch k is the recorded Cp less the keys of the batches after it, when those are kept
                // (no model needed); else the missing keys are read again from the model, below.
                if tail.allSatisfy({ keys[$0.index] != nil }) {
                    guard let recorded = st.manifest.cp else {
                        throw StoreError.badRecord(path: store.path, what: "batch \(n)", reason: "committed without a Cp file")
                    }
                    var cp = try SequentialState.read(from: try st.verified(recorded))
                    for b in tail.reversed() {
                        let bk = try batchKeys(keys[b.index]!, of: b, layers: cp.layers, state: st)
                        guard bk.keys.allSatisfy({ $0.keys.rows == cp.f }) else {
                            throw StoreError.badRecord(path: store.path, what: "keys of batch \(b.index)", reason: "keys of \(bk.keys.map(\.keys.rows)) rows, f = \(cp.f)")
                        }
                        try bk.remove(from: &cp)
                    }
                    cpFile = try writeCp(cp, batch: k, state: st, dryRun: dryRun)
                    check = "subtracted: batch \(missing.index) has no keys file, so Cp after batch \(k) is the recorded Cp less the keys of batches \(k + 1)…\(n) (equal to rounding, not bit for bit)"
                    return try finish(store: store, st: st, k: k, cpFile: cpFile, check: check, dryRun: dryRun, log: log)
                }
            }
            // Keys missing before batch k and after it: those batches' keys read again from the model. Missing
            // only after k: Cp after k is rebuilt from the keys before it, and the sum is not checked.
            let absent = st.manifest.batches.map(\.index).filter { keys[$0] == nil }
            let recomputed = absent.isEmpty || absent.allSatisfy({ $0 > k }) ? [:]
                : try recomputeKeys(st, batches: Set(absent), modelPath: modelPath, log: log)
            let hp = st.manifest.hyperparameters
            // A failure after Cp of batch k is written removes it again: nothing refers to it.
            do {
                var rebuilt: SequentialState?
                for (i, b) in st.manifest.batches.enumerated() {
                    guard let bk = try keys[b.index].map({ try batchKeys($0, of: b, layers: hp.layers, state: st) }) ?? recomputed[b.index] else {
                        check = "not checked: batch \(b.index) has no keys file"
                        break
                    }
                    guard let f = bk.keys.first?.keys.rows else { throw StoreError.badRecord(path: store.path, what: "keys of batch \(b.index)", reason: "no layers") }
                    if rebuilt == nil { rebuilt = try SequentialState(layers: hp.layers, f: f) }
                    try bk.add(to: &rebuilt!)  // in place: one Cp in memory
                    let cp = rebuilt!
                    if i + 1 == k { cpFile = try writeCp(cp, batch: b.index, state: st, dryRun: dryRun) }
                    if i + 1 == n {
                        guard let recorded = st.manifest.cp else {
                            throw StoreError.badRecord(path: store.path, what: "batch \(b.index)", reason: "committed without a Cp file")
                        }
                        let stored = try SequentialState.read(from: try st.verified(recorded))
                        check = try compare(cp, stored, directory: directory)
                        if !recomputed.isEmpty {
                            check += "; the keys of \(batchList(recomputed.keys.sorted(), each: true)), committed without them, read again from the model"
                        }
                    }
                }
            } catch {
                if let cpFile, !dryRun { try? FileManager.default.removeItem(atPath: st.url(cpFile.path)) }
                throw error
            }
        }
        return try finish(store: store, st: st, k: k, cpFile: cpFile, check: check, dryRun: dryRun, log: log)
    }

    /// A batch's keys file, checked against the record (checksum) and against the batch (its layers, one key a request).
    static func batchKeys(_ file: ArtifactFile, of b: EditManifest.Batch, layers: [Int], state st: EditState) throws -> BatchKeys {
        let bk = try BatchKeys.read(from: try st.verified(file))
        guard bk.layers == layers, bk.keys.allSatisfy({ $0.keys.cols == b.requests }) else {
            throw StoreError.badRecord(path: st.store.path, what: "keys of batch \(b.index)",
                                       reason: "layers \(bk.layers) or key counts \(bk.keys.map(\.keys.cols)) are not the batch's \(layers), \(b.requests)")
        }
        return bk
    }

    /// Cp after batch `batch` into cp/batch-NNNNN.bin (not written on a dry run), described for the record.
    static func writeCp(_ cp: SequentialState, batch: Int, state st: EditState, dryRun: Bool) throws -> ArtifactFile {
        let path = EditState.cpPath(batch: batch)
        if dryRun { return ArtifactFile(kind: .cp, path: path, checksum: "", bytes: 0) }
        try FileManager.default.createDirectory(atPath: st.url("cp"), withIntermediateDirectories: true)
        try cp.write(to: st.url(path))
        return try ArtifactFile.describe(kind: .cp, path: path, in: st.directory)
    }

    /// The record's transaction, then the log lines and the summary.
    static func finish(store: JobStore, st: EditState, k: Int, cpFile: ArtifactFile?, check: String, dryRun: Bool,
                       log: (String) -> Void) throws -> EditRollbackSummary {
        let directory = st.directory
        let r: RollbackRecord
        do { r = try store.rollback(campaign: st.campaign.id, to: k, cp: cpFile, dryRun: dryRun) } catch {
            if let cpFile, !dryRun { try? FileManager.default.removeItem(atPath: st.url(cpFile.path)) }  // not recorded: nothing refers to it
            throw error
        }
        if !dryRun { try store.removeUnreferencedFiles(in: EditState.batchFolders) }  // what an earlier attempt cut short left
        let verb = dryRun ? "would roll back (--dry-run: nothing changed) " : "rolled back "
        let removed = r.removedBatches.isEmpty ? "nothing removed"
            : "removed " + batchList(r.removedBatches) + " (\(r.removedRequests) requests, \(r.removedFiles.count) files)"
        let holds = r.requestCount == 0 ? "the campaign holds no requests" : "the campaign holds requests 0…\(r.requestCount - 1)"
        let how: String
        if check == "not needed" { how = "" }
        else if check.hasPrefix("subtracted: ") { how = "; " + String(check.dropFirst(12)) }
        else { how = "; Cp after batch \(k) rebuilt from the batches' keys (recorded Cp: \(check))" }
        log(verb + "\(directory): \(r.committedBefore) → \(r.committedAfter) committed batches, " + removed + "; " + holds + how)
        if !r.removedBatches.isEmpty, !dryRun {
            log("edit the removed requests again (or as corrected in the facts file) with `alphaedit edit --facts FILE --state \(directory) --extend`")
        }
        return EditRollbackSummary(state: directory, committedBefore: r.committedBefore, committedAfter: r.committedAfter,
                                   removedBatches: r.removedBatches, removedRequests: r.removedRequests, requestCount: r.requestCount,
                                   removedFiles: r.removedFiles.count, cpCheck: check, dryRun: dryRun)
    }

    /// "batch 3", "batches 2–5" (a consecutive run), or with `each` "batches 1, 3".
    static func batchList(_ b: [Int], each: Bool = false) -> String {
        guard let first = b.first, let last = b.last else { return "no batch" }
        if first == last { return "batch \(first)" }
        return each ? "batches " + b.map(String.init).joined(separator: ", ") : "batches \(first)–\(last)"
    }

    /// The keys of `batches` (committed without a keys file, before 2026-12-07), read again as the campaign
    /// read them (Editor.apply): on the model it edited with every batch up to and including each one
    /// applied, at the edited layers in their order, with the campaign's templates. A key at layer l
    /// depends only on the blocks below l and on l's attention and gate/up, which this batch's ΔW does not
    /// change. The sum of all the batches' keys is then checked against the recorded Cp (`compare`).
    static func recomputeKeys(_ st: EditState, batches: Set<Int>, modelPath: String?,
                              log: (String) -> Void) throws -> [Int: BatchKeys] {
        let list = batchList(batches.sorted(), each: true)
        let path = modelPath ?? st.campaign.settings.model
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError.cannotRollBack(path: st.directory, reason:
                "\(list) were committed without their keys (by a version before 2026-12-07); they can be read again from the model "
                + "the campaign edited, but \(path) is not there: pass that file with --model, or roll back to 0 (the K0 base stays)")
        }
        log("\(list) were committed without their keys: reading them again from \(path)")
        let model = try LlamaModel(path: path)
        try st.checkModel(path: path, gguf: model.gguf)
        let reader = KeyReader(model: model, tokenizer: try BPETokenizer(gguf: model.gguf))
        let layers = st.manifest.hyperparameters.layers
        var out: [Int: BatchKeys] = [:]
        for b in st.manifest.batches where b.index <= batches.max() ?? 0 {
            let d = try BatchDeltas.read(from: try st.verified(b.deltas))
            for (l, delta) in d.deltas.sorted(by: { $0.key < $1.key }) { try model.applyDelta(layer: l, delta: delta) }
            guard batches.contains(b.index) else { continue }
            let requests = try st.store.requests(campaign: st.campaign.id, batch: b.index)
            guard requests.count == b.requests else {
                throw StoreError.badRecord(path: st.store.path, what: "batch \(b.index)", reason: "\(requests.count) requests recorded, \(b.requests) committed")
            }
            out[b.index] = try BatchKeys(keys: layers.map { l in (l, try reader.read(requests, layer: l, templates: st.manifest.templates).keys) })
        }
        return out
    }

    /// The sum of the keys against the recorded Cp: equal, or within 1e-12 of its largest entry (another
    /// BLAS thread count may round the sums differently); else the state is refused.
    static func compare(_ rebuilt: SequentialState, _ stored: SequentialState, directory: String) throws -> String {
        guard rebuilt.layers == stored.layers, rebuilt.f == stored.f else {
            throw StoreError.cannotRollBack(path: directory, reason: "the recorded Cp is of layers \(stored.layers), f \(stored.f); the keys of layers \(rebuilt.layers), f \(rebuilt.f)")
        }
        if rebuilt == stored { return "equal" }
        guard let worst = rebuilt.relativeDifference(to: stored) else {
            throw StoreError.cannotRollBack(path: directory, reason: "the recorded Cp and the batches' keys count different keys per layer")
        }
        guard worst <= 1e-12 else {
            throw StoreError.cannotRollBack(path: directory, reason: String(format:
                "the batches' keys added up differ from the recorded Cp of the last batch by %.3g of its largest entry: the state's files disagree", worst))
        }
        return String(format: "within %.2g of its largest entry", worst)
    }
}
