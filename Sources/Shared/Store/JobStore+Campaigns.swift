// Campaigns, their batches and requests, and the batch commit. A state directory holds one campaign:
// running the same `alphaedit edit` again finds it (and refuses other settings), then continues
// after the last committed batch.
import Support
import GGUF
import Model
import Editing
import Foundation

/// What identifies a campaign: resuming with different values would mix two experiments.
public struct CampaignSettings: Codable, Equatable, Sendable {
    public var method: EditMethod
    public var model: String
    public var modelChecksum: String
    public var facts: String
    public var factsChecksum: String
    public var requestCount: Int
    public var batchSize: Int
    public var hyperparameters: EditHyperparameters
    public var templateSeed: UInt64
    public var corpus: String
    public var covSentences: Int
    /// FNV-1a-64 of the K0 corpus file (nil in campaigns recorded before it was kept: not compared).
    public var corpusChecksum: String?
    /// How the facts file was read (nil in campaigns recorded before it was kept: the defaults).
    public var factsOptions: FactsOptions?
    /// The checksums of the facts files the campaign was extended from (`extendCampaign`), oldest first;
    /// nil when it never was. An export made before an extension carries one of them.
    public var earlierFactsChecksums: [String]?

    public init(method: EditMethod, model: String, modelChecksum: String, facts: String, factsChecksum: String,
                requestCount: Int, batchSize: Int, hyperparameters: EditHyperparameters, templateSeed: UInt64,
                corpus: String, covSentences: Int, corpusChecksum: String? = nil, factsOptions: FactsOptions? = nil) {
        self.method = method; self.model = model; self.modelChecksum = modelChecksum; self.facts = facts
        self.factsChecksum = factsChecksum; self.requestCount = requestCount; self.batchSize = batchSize
        self.hyperparameters = hyperparameters; self.templateSeed = templateSeed; self.corpus = corpus
        self.covSentences = covSentences; self.corpusChecksum = corpusChecksum; self.factsOptions = factsOptions
    }

    /// "key: stored X, requested Y" for each setting that differs, sorted by key (hyperparameters field by
    /// field). Paths may differ between runs (another working directory); their contents' checksums may
    /// not. Compared as typed values: two settings are equal exactly when this is empty.
    public func differences(from requested: CampaignSettings) -> [SettingDifference] {
        var out: [SettingDifference] = []
        func check<T: Equatable>(_ key: String, _ a: T, _ b: T) {
            if a != b { out.append(SettingDifference(key: key, stored: "\(a)", requested: "\(b)")) }
        }
        check("method", method.rawValue, requested.method.rawValue)
        check("modelChecksum", modelChecksum, requested.modelChecksum)
        check("factsChecksum", factsChecksum, requested.factsChecksum)
        check("requestCount", requestCount, requested.requestCount)
        check("batchSize", batchSize, requested.batchSize)
        check("templateSeed", templateSeed, requested.templateSeed)
        check("covSentences", covSentences, requested.covSentences)
        let readAs = factsOptions ?? FactsOptions(), askedAs = requested.factsOptions ?? FactsOptions()
        check("factsFormat", readAs.format.rawValue, askedAs.format.rawValue)
        check("zsreTarget", readAs.zsreTarget.rawValue, askedAs.zsreTarget.rawValue)
        if let stored = corpusChecksum {  // nil: recorded before it was kept, not compared
            let asked = requested.corpusChecksum
            if stored != asked {  // say which files, not only their checksums
                out.append(SettingDifference(key: "corpusChecksum", stored: "\(stored) (\(corpus))",
                                             requested: asked.map { "\($0) (\(requested.corpus))" } ?? "none"))
            }
        }
        let h = hyperparameters, r = requested.hyperparameters
        let before = out.count
        check("hyperparameters.layers", h.layers, r.layers)
        check("hyperparameters.vLR", h.vLR, r.vLR)
        check("hyperparameters.vSteps", h.vSteps, r.vSteps)
        check("hyperparameters.clampFactor", h.clampFactor, r.clampFactor)
        check("hyperparameters.klFactor", h.klFactor, r.klFactor)
        check("hyperparameters.weightDecay", h.weightDecay, r.weightDecay)
        check("hyperparameters.earlyStopLoss", h.earlyStopLoss, r.earlyStopLoss)
        check("hyperparameters.nullSpaceThreshold", h.nullSpaceThreshold, r.nullSpaceThreshold)
        check("hyperparameters.nullSpaceRelative", h.nullSpaceRelative.map { "\($0)" } ?? "none", r.nullSpaceRelative.map { "\($0)" } ?? "none")
        check("hyperparameters.nullSpaceTraceShare", h.nullSpaceTraceShare.map { "\($0)" } ?? "none", r.nullSpaceTraceShare.map { "\($0)" } ?? "none")
        check("hyperparameters.lambda", h.lambda, r.lambda)
        check("hyperparameters.memitLambda", h.memitLambda, r.memitLambda)
        check("hyperparameters.keptC0Weight", h.keptC0Weight.map { "\($0)" } ?? "none", r.keptC0Weight.map { "\($0)" } ?? "none")
        check("hyperparameters.stages", h.effectiveStages.description, r.effectiveStages.description)
        check("hyperparameters.stages.encoreProbability", h.effectiveStages.encoreProbability, r.effectiveStages.encoreProbability)
        check("hyperparameters.stages.rectFraction", h.effectiveStages.rectFraction, r.effectiveStages.rectFraction)
        // A field added to EditHyperparameters without a line above still counts as a difference.
        if out.count == before && h != r {
            out.append(SettingDifference(key: "hyperparameters", stored: "\(h)", requested: "\(r)"))
        }
        return out.sorted { $0.key < $1.key }
    }

    /// Whether `requested` asks only for more requests of this campaign: every setting the same but the
    /// facts file's checksum and a larger request count (records appended to the file, or a larger limit).
    public func isExtension(to requested: CampaignSettings) -> Bool {
        requested.requestCount > requestCount
            && differences(from: requested).allSatisfy { $0.key == "factsChecksum" || $0.key == "requestCount" }
    }

    /// Every facts checksum an export of this campaign may carry: the current one and those before extensions.
    public var allFactsChecksums: [String] { [factsChecksum] + (earlierFactsChecksums ?? []) }
}

/// One setting of a stored campaign that a resume asks to change.
public struct SettingDifference: Equatable, Sendable, CustomStringConvertible {
    public let key: String
    public let stored: String
    public let requested: String
    public var description: String { "\(key): stored \(stored), requested \(requested)" }
}

public struct Campaign: Sendable {
    public var id: Int64
    public var settings: CampaignSettings
    public var templates: ContextTemplates
    /// The projector (AlphaEdit) or K0 statistics (MEMIT), once computed.
    public var base: ArtifactFile?
}

public enum BatchState: String, Codable, Sendable { case pending, committed }

public struct BatchRecord: Sendable {
    public var campaign: Int64
    public var index: Int                 // 1-based
    public var requests: Range<Int>       // indices into the campaign's requests
    public var state: BatchState
    public var deltas: ArtifactFile?
    public var cp: ArtifactFile?
    public var seconds: Double?
    public var committedAt: Double?
}

extension JobStore {
    /// The campaign of this state directory, if one was created.
    public func campaign() throws -> Campaign? {
        try read { try campaignRow() }
    }

    /// Removes the campaign when it never got as far as its base (no projector or K₀ statistics recorded,
    /// no batch committed): only its settings and pending rows are there. True when it was removed.
    public func discardUnstartedCampaign() throws -> Bool {
        try write {
            guard let c = try campaignRow(), c.base == nil,
                  try db.queryOne("SELECT 1 AS n FROM batches WHERE campaign = ? AND state = 'committed'", [.int(c.id)]) == nil else { return false }
            for table in ["jobs", "requests", "batches"] { try db.run("DELETE FROM \(table) WHERE campaign = ?", [.int(c.id)]) }
            try db.run("DELETE FROM campaigns WHERE id = ?", [.int(c.id)])
            return true
        }
    }

    /// The existing campaign when its settings equal `settings`, nil when there is none; a campaign
    /// with other settings is an error listing the differences.
    public func campaign(matching settings: CampaignSettings) throws -> Campaign? {
        guard let c = try campaign() else { return nil }
        let diffs = c.settings.differences(from: settings)
        guard diffs.isEmpty else { throw StoreError.campaignMismatch(path: path, differences: diffs) }
        return c
    }

    /// Creates the campaign with its batches (of `settings.batchSize` requests, in order) and requests,
    /// all pending. If another process created one meanwhile, that one is returned when it matches.
    public func createCampaign(settings: CampaignSettings, templates: ContextTemplates,
                               requests: [EditRequest], now: Double = Date().timeIntervalSince1970) throws -> Campaign {
        guard requests.count == settings.requestCount, settings.batchSize > 0 else {
            throw StoreError.campaignMismatch(path: path, differences: [SettingDifference(
                key: "requestCount", stored: "\(settings.requestCount) (the settings)", requested: "\(requests.count) (the requests given)")])
        }
        return try write {
            if let c = try campaignRow() {
                let diffs = c.settings.differences(from: settings)
                guard diffs.isEmpty else { throw StoreError.campaignMismatch(path: path, differences: diffs) }
                return c
            }
            try db.run("INSERT INTO campaigns (method, settings, templates, created_at) VALUES (?, ?, ?, ?)",
                       [.text(settings.method.rawValue), .text(try json(settings)), .text(try json(templates)), .double(now)])
            let id = db.lastInsertRowID
            try insertBatches(campaign: id, requests: requests, from: 0, firstBatch: 1, batchSize: settings.batchSize)
            return Campaign(id: id, settings: settings, templates: templates, base: nil)
        }
    }

    /// Pending batches of `batchSize` (the last may be shorter) for `requests[from...]`, numbered from `firstBatch`.
    /// Returns the batch numbers added.
    @discardableResult
    func insertBatches(campaign id: Int64, requests: [EditRequest], from: Int, firstBatch: Int, batchSize: Int) throws -> Range<Int> {
        let addBatch = try db.prepare("INSERT INTO batches (campaign, idx, first_request, request_count, state) VALUES (?, ?, ?, ?, 'pending')")
        let addRequest = try db.prepare("INSERT INTO requests (campaign, idx, batch, request, state) VALUES (?, ?, ?, ?, 'pending')")
        let enc = JSONEncoder()
        var b = firstBatch
        for start in stride(from: from, to: requests.count, by: batchSize) {
            let end = min(start + batchSize, requests.count)
            try addBatch.bind([.int(id), .int(Int64(b)), .int(Int64(start)), .int(Int64(end - start))])
            while try addBatch.step() {}
            for i in start..<end {
                let r = String(decoding: try enc.encode(requests[i]), as: UTF8.self)
                try addRequest.bind([.int(id), .int(Int64(i)), .int(Int64(b)), .text(r)])
                while try addRequest.step() {}
            }
            b += 1
        }
        return firstBatch..<b
    }

    /// The first of the campaign's stored requests that is not the request of the same index in
    /// `requests`, with the fields that differ; nil when all of them are (the stored ones are a prefix).
    public func firstChangedRequest(_ requests: [EditRequest]) throws -> (index: Int, fields: [String])? {
        try read { try changedRequest(requests) }
    }

    func changedRequest(_ requests: [EditRequest]) throws -> (index: Int, fields: [String])? {
        guard let c = try campaignRow() else { throw StoreError.noCampaign(path: path) }
        for row in try db.query("SELECT idx, request FROM requests WHERE campaign = ? ORDER BY idx", [.int(c.id)]) {
            let i = Int(try row.int("idx"))
            let stored = try decode(EditRequest.self, row.string("request"), what: "request \(i)")
            guard i < requests.count else { return (i, ["(absent)"]) }
            if stored != requests[i] {
                let given = Mirror(reflecting: requests[i]).children
                let fields = zip(Mirror(reflecting: stored).children, given)
                    .filter { "\($0.0.value)" != "\($0.1.value)" }.compactMap { $0.0.label }
                return (i, fields)
            }
        }
        return nil
    }

    /// Extends the campaign to `settings` (its extension: `CampaignSettings.isExtension`) by the requests
    /// after its own, as new pending batches of its batch size after the last one, and records the new
    /// facts checksum and count (the old checksum kept in `earlierFactsChecksums`). Committed batches,
    /// their files and the templates stay as they are; the stored requests must be the first ones of
    /// `requests`, field for field. One transaction: on any error nothing changes.
    public func extendCampaign(settings: CampaignSettings, requests: [EditRequest]) throws -> (campaign: Campaign, batches: Range<Int>) {
        try write {
            guard var c = try campaignRow() else { throw StoreError.noCampaign(path: path) }
            let last = try db.queryOne("SELECT max(idx) AS last FROM batches WHERE campaign = ?", [.int(c.id)])?.optionalInt("last") ?? 0
            if c.settings.differences(from: settings).isEmpty { return (c, Int(last) + 1..<Int(last) + 1) }   // extended already
            guard c.settings.isExtension(to: settings), requests.count == settings.requestCount else {
                throw StoreError.campaignMismatch(path: path, differences: c.settings.differences(from: settings))
            }
            if let (i, fields) = try changedRequest(requests) {
                throw StoreError.requestChanged(path: path, index: i, fields: fields)
            }
            let added = try insertBatches(campaign: c.id, requests: requests, from: c.settings.requestCount,
                                          firstBatch: Int(last) + 1, batchSize: c.settings.batchSize)
            var s = settings
            let earlier = (c.settings.earlierFactsChecksums ?? [])
                + (c.settings.factsChecksum == settings.factsChecksum ? [] : [c.settings.factsChecksum])
            s.earlierFactsChecksums = earlier.isEmpty ? nil : earlier
            try db.run("UPDATE campaigns SET settings = ? WHERE id = ?", [.text(try json(s)), .int(c.id)])
            c.settings = s
            return (c, added)
        }
    }

    /// Records the projector or K0 statistics file of a campaign.
    public func setBase(campaign: Int64, _ file: ArtifactFile, now: Double = Date().timeIntervalSince1970) throws -> ArtifactFile {
        try write {
            let a = try insertArtifact(file, now: now)
            try db.run("UPDATE campaigns SET base_artifact = ? WHERE id = ?", [.int(a.id ?? 0), .int(campaign)])
            return a
        }
    }

    public func batches(campaign: Int64) throws -> [BatchRecord] {
        try read {
            try db.query("SELECT * FROM batches WHERE campaign = ? ORDER BY idx", [.int(campaign)]).map(batchRecord)
        }
    }

    /// The requests of one batch, in order.
    public func requests(campaign: Int64, batch: Int) throws -> [EditRequest] {
        try read {
            try db.query("SELECT idx, request FROM requests WHERE campaign = ? AND batch = ? ORDER BY idx",
                         [.int(campaign), .int(Int64(batch))]).map { row in
                try decode(EditRequest.self, row.string("request"), what: "request \(try row.int("idx"))")
            }
        }
    }

    /// Commits a batch: records its deltas and cp files, marks it and its requests done, and drops the
    /// previous batch's cp record (only the latest cp is needed to continue) — one transaction, the
    /// commit point of the batch. The files must already be written (`ArtifactFile.describe`).
    /// After the commit the superseded cp file is deleted; if that is interrupted, the file is merely
    /// left over (see `removeUnreferencedFiles`).
    /// `keys` (BatchKeys) is recorded by its path, keys/batch-NNNNN.bin, which rollback looks up.
    public func commitBatch(campaign: Int64, index: Int, deltas: ArtifactFile, cp: ArtifactFile?, keys: ArtifactFile? = nil,
                            seconds: Double, now: Double = Date().timeIntervalSince1970) throws {
        let superseded: [String] = try write {
            guard let b = try db.queryOne("SELECT * FROM batches WHERE campaign = ? AND idx = ?",
                                          [.int(campaign), .int(Int64(index))]).map(batchRecord) else {
                throw StoreError.unknownBatch(campaign: campaign, index: index)
            }
            guard b.state == .pending else {
                throw StoreError.batchOutOfOrder(campaign: campaign, index: index, reason: "it is already committed")
            }
            let waiting = try db.queryOne("SELECT min(idx) AS first FROM batches WHERE campaign = ? AND idx < ? AND state = 'pending'",
                                          [.int(campaign), .int(Int64(index))])?.optionalInt("first")
            if let waiting {
                throw StoreError.batchOutOfOrder(campaign: campaign, index: index, reason: "batch \(waiting) is not committed yet")
            }
            var old: [String] = []
            for row in try db.query("""
                SELECT b.idx, a.id, a.path FROM batches b JOIN artifacts a ON a.id = b.cp_artifact WHERE b.campaign = ?
                """, [.int(campaign)]) where cp != nil {
                try db.run("UPDATE batches SET cp_artifact = NULL WHERE campaign = ? AND idx = ?", [.int(campaign), .int(try row.int("idx"))])
                try db.run("DELETE FROM artifacts WHERE id = ?", [.int(try row.int("id"))])
                old.append(try row.string("path"))
            }
            let d = try insertArtifact(deltas, now: now)
            let c = try cp.map { try insertArtifact($0, now: now) }
            if let keys { _ = try insertArtifact(keys, now: now) }
            try db.run("""
                UPDATE batches SET state = 'committed', deltas_artifact = ?, cp_artifact = ?, seconds = ?, committed_at = ?
                WHERE campaign = ? AND idx = ?
                """, [.int(d.id ?? 0), c.map { .int($0.id ?? 0) } ?? .null, .double(seconds), .double(now),
                      .int(campaign), .int(Int64(index))])
            try db.run("UPDATE requests SET state = 'done' WHERE campaign = ? AND batch = ?", [.int(campaign), .int(Int64(index))])
            return old.filter { $0 != cp?.path }
        }
        for p in superseded { try? FileManager.default.removeItem(atPath: ArtifactFile.absolute(p, in: directory)) }
    }

    /// Deletes the files under `subdirectories` that no artifact record references: what a process
    /// wrote for a batch it did not commit. Returns their relative paths. Only plain files named as the
    /// state names its own (`batch-NNNNN.bin`, or its `.tmp` while written): a state made in a folder
    /// that already had a `keys/` or `cp/` of someone else's keeps those files (they were deleted
    /// before 2026-12-07).
    @discardableResult
    public func removeUnreferencedFiles(in subdirectories: [String]) throws -> [String] {
        let known = Set(try read { try db.query("SELECT path FROM artifacts").map { try $0.string("path") } })
        var removed: [String] = []
        for sub in subdirectories {
            let dir = ArtifactFile.absolute(sub, in: directory)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            where Self.isBatchFileName(name) && !FileIO.isDirectory(dir + "/" + name) {
                let rel = sub + "/" + name
                if !known.contains(rel) {
                    try? FileManager.default.removeItem(atPath: dir + "/" + name)
                    removed.append(rel)
                }
            }
        }
        return removed.sorted()
    }

    /// "batch-00012.bin" or "batch-00012.bin.tmp": the names a state gives its per-batch files.
    public static func isBatchFileName(_ name: String) -> Bool {
        var n = Substring(name)
        if n.hasSuffix(".tmp") { n = n.dropLast(4) }
        guard n.hasPrefix("batch-"), n.hasSuffix(".bin") else { return false }
        let digits = n.dropFirst(6).dropLast(4)
        return digits.count >= 5 && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    // MARK: rows

    func campaignRow() throws -> Campaign? {
        guard let row = try db.queryOne("""
            SELECT c.id, c.settings, c.templates, a.id AS aid, a.kind, a.path, a.checksum, a.bytes
            FROM campaigns c LEFT JOIN artifacts a ON a.id = c.base_artifact ORDER BY c.id LIMIT 1
            """) else { return nil }
        let id = try row.int("id")
        return Campaign(id: id,
                        settings: try decode(CampaignSettings.self, row.string("settings"), what: "campaign \(id) settings"),
                        templates: try decode(ContextTemplates.self, row.string("templates"), what: "campaign \(id) templates"),
                        base: try artifact(row, idColumn: "aid"))
    }

    func batchRecord(_ row: SQLiteRow) throws -> BatchRecord {
        let campaign = try row.int("campaign"), index = Int(try row.int("idx"))
        let first = Int(try row.int("first_request")), count = Int(try row.int("request_count"))
        guard let state = BatchState(rawValue: try row.string("state")), first >= 0, count >= 0 else {
            throw StoreError.badRecord(path: path, what: "batch \(index)", reason: "state or request range invalid")
        }
        return BatchRecord(campaign: campaign, index: index, requests: first..<(first + count), state: state,
                           deltas: try artifact(id: row.optionalInt("deltas_artifact")),
                           cp: try artifact(id: row.optionalInt("cp_artifact")),
                           seconds: try row.optionalDouble("seconds"), committedAt: try row.optionalDouble("committed_at"))
    }
}
