// `alphaedit rollback`: a campaign back to its first k batches, as if it had been created with their
// requests only, so that a wrong or unwanted edit can be taken out without editing everything before it
// again (on Qwen2.5-0.5B a batch of 100 costs ≈ 25 min of v*, and K₀ ≈ 14 min). The model of the state
// is then the unedited model plus batches 1…k, and Cp (SequentialState) is what it was after batch k:
// rebuilt from the keys each batch added (BatchKeys, keys/batch-NNNNN.bin), in the order they were added,
// so it is that Cp bit for bit, and an `edit --extend` over the same facts ends with the weights of the
// campaign that was never rolled back (EditRollbackTests). Before anything changes, the keys of every
// committed batch, added up, must give the recorded Cp of the last one: a state whose files disagree is
// refused, not cut. Batches committed before the keys were kept (before 2026-12-07) cannot be rebuilt
// past: such a campaign rolls back only to 0 (its base, the projector or K₀ statistics, is kept).
import Support
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
    /// state's lock: a running `edit` on it makes this an error at once.
    /// `dryRun`: every check made (the keys' checksums and sum), nothing written: what it would do.
    public static func run(directory: String, to k: Int, dryRun: Bool = false, log: (String) -> Void = { _ in }) throws -> EditRollbackSummary {
        guard FileManager.default.fileExists(atPath: directory + "/" + JobStore.fileName) else {
            throw StoreError.noDatabase(directory: directory)
        }
        let lock = try StateLock(directory: directory)
        defer { lock.release() }
        let store = try JobStore(directory: directory, create: false)
        let st = try EditState(store: store)
        let n = st.manifest.batches.count
        guard k >= 0, k <= n else {
            throw StoreError.cannotRollBack(path: directory, reason: "it has \(n) committed batch\(n == 1 ? "" : "es"); roll back to 0…\(n)")
        }
        var cpFile: ArtifactFile?
        var check = "not needed"
        if k > 0, k < n {
            var keys: [Int: ArtifactFile] = [:]
            for b in st.manifest.batches {
                if let f = try store.keysFile(batch: b.index) { keys[b.index] = f }
            }
            if let missing = st.manifest.batches.prefix(k).first(where: { keys[$0.index] == nil }) {
                throw StoreError.cannotRollBack(path: directory, reason:
                    "batch \(missing.index) was committed without its keys (by a version before 2026-12-07), so Cp after batch \(k) "
                    + "cannot be rebuilt; only a rollback to 0 is possible (the K0 base stays)")
            }
            let hp = st.manifest.hyperparameters
            // A failure after Cp of batch k is written removes it again: nothing refers to it.
            do {
                var rebuilt: SequentialState?
                for (i, b) in st.manifest.batches.enumerated() {
                    guard let file = keys[b.index] else {
                        check = "not checked: batch \(b.index) has no keys file"
                        break
                    }
                    let bk = try BatchKeys.read(from: try st.verified(file))
                    guard bk.layers == hp.layers, bk.keys.allSatisfy({ $0.keys.cols == b.requests }), let f = bk.keys.first?.keys.rows else {
                        throw StoreError.badRecord(path: store.path, what: "keys of batch \(b.index)",
                                                   reason: "layers \(bk.layers) or key counts \(bk.keys.map(\.keys.cols)) are not the batch's \(hp.layers), \(b.requests)")
                    }
                    if rebuilt == nil { rebuilt = try SequentialState(layers: hp.layers, f: f) }
                    try bk.add(to: &rebuilt!)  // in place: one Cp in memory
                    let cp = rebuilt!
                    if i + 1 == k, dryRun {
                        cpFile = ArtifactFile(kind: .cp, path: EditState.cpPath(batch: b.index), checksum: "", bytes: 0)  // not written
                    } else if i + 1 == k {
                        let path = EditState.cpPath(batch: b.index)
                        try FileManager.default.createDirectory(atPath: st.url("cp"), withIntermediateDirectories: true)
                        try cp.write(to: st.url(path))
                        cpFile = try ArtifactFile.describe(kind: .cp, path: path, in: directory)
                    }
                    if i + 1 == n {
                        guard let recorded = st.manifest.cp else {
                            throw StoreError.badRecord(path: store.path, what: "batch \(b.index)", reason: "committed without a Cp file")
                        }
                        let stored = try SequentialState.read(from: try st.verified(recorded))
                        check = try compare(cp, stored, directory: directory)
                    }
                }
            } catch {
                if let cpFile, !dryRun { try? FileManager.default.removeItem(atPath: st.url(cpFile.path)) }
                throw error
            }
        }
        let r: RollbackRecord
        do { r = try store.rollback(campaign: st.campaign.id, to: k, cp: cpFile, dryRun: dryRun) } catch {
            if let cpFile, !dryRun { try? FileManager.default.removeItem(atPath: st.url(cpFile.path)) }  // not recorded: nothing refers to it
            throw error
        }
        if !dryRun { try store.removeUnreferencedFiles(in: EditState.batchFolders) }  // what an earlier attempt cut short left
        log((dryRun ? "would roll back (--dry-run: nothing changed) " : "rolled back ") + "\(directory): \(r.committedBefore) → \(r.committedAfter) committed batches, "
            + (r.removedBatches.isEmpty ? "nothing removed" : "removed " + batchList(r.removedBatches) + " (\(r.removedRequests) requests, \(r.removedFiles.count) files)")
            + (r.requestCount == 0 ? "; the campaign holds no requests" : "; the campaign holds requests 0…\(r.requestCount - 1)")
            + (check == "not needed" ? "" : "; Cp after batch \(k) rebuilt from the batches' keys (recorded Cp: \(check))"))
        if !r.removedBatches.isEmpty, !dryRun {
            log("edit the removed requests again (or as corrected in the facts file) with `alphaedit edit --facts FILE --state \(directory) --extend`")
        }
        return EditRollbackSummary(state: directory, committedBefore: r.committedBefore, committedAfter: r.committedAfter,
                                   removedBatches: r.removedBatches, removedRequests: r.removedRequests, requestCount: r.requestCount,
                                   removedFiles: r.removedFiles.count, cpCheck: check, dryRun: dryRun)
    }

    /// "batch 3", "batches 2–5".
    static func batchList(_ b: [Int]) -> String {
        guard let first = b.first, let last = b.last else { return "no batch" }
        return first == last ? "batch \(first)" : "batches \(first)–\(last)"
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
