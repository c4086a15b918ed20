// The resumable edit campaign, the product's main job (`alphaedit edit` is its wiring): in one state
// directory, under its lock, the settings recorded or matched, every record checked before any work;
// then K₀ statistics and the projector (or MEMIT's statistics) as the campaign's base, and batch after
// batch v* (on the cluster's workers or here) → the projected update → the commit → the workers told.
// Running it again on the same directory continues after the last committed batch; other settings
// are refused with their differences listed.
import Support
import Corpus
import Model
import Tokenization
import Editing
import Store
import Evaluation
import Config
import Cluster
import Foundation
import Logging

/// What a campaign is asked to do.
public struct EditCampaignRequest: Sendable {
    public var facts: String
    public var factsOptions: FactsOptions
    public var limit: Int?
    public var method: EditMethod = .alphaedit
    public var batchSize = 100
    public var state: String
    public var corpus: String
    public var covSentences: Int
    public var hyperparameters: EditHyperparameters
    public var templateSeed: UInt64 = 0
    /// Threads of this process (K₀ forwards and v* chunks side by side when in-process).
    public var threads: Int
    /// Sentences per distributed covariance job.
    public var shardSentences: Int
    /// Commit at most this many batches in this run, then return (a time-boxed run; the next resumes).
    public var maxBatches: Int?
    /// K₀ statistics built earlier (by `alphaedit cov`): used instead of building them when they record
    /// this campaign's model, corpus, sentences 0..<covSentences and layers (K0Source.swift).
    public var statistics: String?
    /// true: a `statistics` file that is not this campaign's is an error (the user named it);
    /// false: it is passed over with a log line (a default location that may hold another build).
    public var statisticsRequired = false
    /// true: a campaign whose requests are the first of these (records appended to the facts file, or a
    /// larger limit) grows by the new ones as further batches; false: that is refused, saying so.
    public var extend = false

    public init(facts: String, factsOptions: FactsOptions = FactsOptions(), limit: Int? = nil, method: EditMethod = .alphaedit,
                batchSize: Int = 100, state: String, corpus: String, covSentences: Int, hyperparameters: EditHyperparameters,
                templateSeed: UInt64 = 0, threads: Int, shardSentences: Int = 500) {
        self.facts = facts; self.factsOptions = factsOptions; self.limit = limit; self.method = method; self.batchSize = batchSize; self.state = state
        self.corpus = corpus; self.covSentences = covSentences; self.hyperparameters = hyperparameters
        self.templateSeed = templateSeed; self.threads = threads; self.shardSentences = shardSentences
    }
}

/// Where the campaign reports: a line for people, and progress (what, done, total, rate, unit, ETA).
public struct EditCampaignEvents {
    public var log: (String) -> Void
    public var progress: (_ what: String, _ done: Int, _ total: Int, _ rate: Double, _ unit: String, _ eta: Double?) -> Void
    public var finishProgress: () -> Void
    public init(log: @escaping (String) -> Void = { _ in },
                progress: @escaping (String, Int, Int, Double, String, Double?) -> Void = { _, _, _, _, _, _ in },
                finishProgress: @escaping () -> Void = {}) {
        self.log = log; self.progress = progress; self.finishProgress = finishProgress
    }
}

public struct EditCampaignSummary: Sendable {
    public var batchesCommitted: Int
    public var edits: Int
    /// Batches this run committed (the rest were committed by earlier runs).
    public var batchesThisRun: Int
}

public enum EditCampaign {
    /// Where a distributed K₀ build keeps its waiting shards and checkpoints (ShardReduction).
    public static let k0ShardsFolder = "k0-shards"

    /// Runs (or resumes) the campaign of `request` on the model at `modelPath`. `cluster`: where K₀ and
    /// v* run (nil: in this process; else the config whose `workers` the pool starts or awaits).
    public static func run(_ request: EditCampaignRequest, modelPath: String, cluster clusterConfig: ClusterConfig? = nil,
                           logLevel: String = "info", events: EditCampaignEvents = EditCampaignEvents()) throws -> EditCampaignSummary {
        let r = request
        guard r.batchSize > 0 else { throw EditCampaignError.invalid("batch size \(r.batchSize) must be positive") }
        guard r.covSentences > 0 else { throw EditCampaignError.invalid("K0 sentences \(r.covSentences) must be positive") }
        // One coordinator per state directory, held until the campaign returns or the process exits.
        let lock = try StateLock(directory: r.state)
        defer { lock.release() }
        let requests = try FactsFile.read(path: r.facts, limit: r.limit, options: r.factsOptions)   // every record checked before any work
        if let why = FileIO.whyUnreadable(r.corpus) {
            throw EditCampaignError.invalid("cannot read the K0 corpus \(r.corpus) (--corpus, or the config's `corpus`): \(why)")
        }
        // Everything a run could be refused for later is checked before the campaign is recorded: a refusal
        // after it (an option the method cannot use, a corpus short of cov_sentences) used to leave a
        // state.sqlite holding those settings, which then refused the corrected command.
        if let p = r.hyperparameters.methodProblem(r.method) { throw EditCampaignError.invalid(p) }
        let unowned = EditState.unownedFiles(directory: r.state)
        if !unowned.isEmpty {
            throw EditCampaignError.invalid("\(r.state) holds \(unowned.joined(separator: ", ")) but no campaign database (\(JobStore.fileName) is "
                + "missing or empty): a `cov --out` folder, or a state whose database was lost. A campaign here would write over them: "
                + "use another --state directory (pass a cov's statistics with --statistics)")
        }
        for w in FactsFile.conflicts(requests, batchSize: r.batchSize) { events.log("warning: \(w)") }
        for (i, q) in requests.enumerated() where q.targetTrue == q.targetNew {
            events.log("warning: record \(i + 1) asks for \"\(q.targetNew)\", its true target: its edit changes nothing")
        }
        let settings = CampaignSettings(
            method: r.method, model: AbsolutePath.of(modelPath), modelChecksum: try EditState.fileChecksum(modelPath),
            facts: r.facts, factsChecksum: try EditState.fileChecksum(r.facts), requestCount: requests.count,
            batchSize: r.batchSize, hyperparameters: r.hyperparameters, templateSeed: r.templateSeed, corpus: r.corpus,
            covSentences: r.covSentences, corpusChecksum: try EditState.fileChecksum(r.corpus), factsOptions: r.factsOptions)
        let model = try LlamaModel(path: modelPath)
        let tok = try BPETokenizer(gguf: model.gguf)
        try FactsFile.checkLengths(requests, name: r.facts, tokenizer: tok, context: model.config.context,
                                   reserve: FactsFile.templateReserve)
        if let p = r.hyperparameters.layersProblem(modelLayers: model.config.layers) { throw EditCampaignError.invalid(p) }
        _ = try SentenceCorpus.read(path: r.corpus, range: 0..<r.covSentences)

        // The database is the commit record: a campaign with other settings is refused, a matching one
        // continues after its last committed batch. A v* job is leased by the coordinator of each run
        // that reaches it (workers hold their own leases in the pool), so attempts count coordinator
        // restarts too: allow more than the default.
        let store = try JobStore(directory: r.state, create: true, maxAttempts: 10)
        var campaign: Campaign
        let existing = try matchOrExtend(store, settings: settings, requests: requests, extend: r.extend, events: events)
        // A named statistics file is checked before anything is recorded: a refused run leaves no campaign behind.
        let prebuiltStats = existing?.base == nil ? try prebuilt(r, settings: settings, events: events) : nil
        if let c = existing {
            campaign = c
        } else {
            let templates = try ContextTemplates.generate(model: model, tokenizer: tok, seed: r.templateSeed)
            campaign = try store.createCampaign(settings: settings, templates: templates, requests: requests)
        }
        // The cluster (none in-process): its endpoint defaults to an ipc socket in the state directory.
        let cluster: CampaignCluster? = try clusterConfig.flatMap { cfg in
            cfg.workers == .inProcess ? nil
                : CampaignCluster(store: store, pool: try WorkerPool.start(cfg, directory: r.state, logLevel: logLevel),
                                  logger: Logger(label: "coordinator"))
        }
        defer {
            cluster?.finish()
            cluster?.pool.shutdown()
        }
        try cluster?.startWorkerMirror()
        if campaign.base == nil {
            let stats = try prebuiltStats
                ?? statistics(r, settings: campaign.settings, model: model, tokenizer: tok, pool: cluster?.pool, events: events)
            campaign.base = try recordBase(store, campaign, consume stats, events: events)
            ShardReduction.discard(directory: r.state + "/" + Self.k0ShardsFolder)  // recorded: nothing left to resume
        }
        try store.removeUnreferencedFiles(in: EditState.batchFolders)
        let st = try EditState(store: store)
        if !st.manifest.batches.isEmpty {
            try st.apply(to: model)
            events.log("resuming \(r.state): \(st.manifest.batches.count) batches already committed")
        }
        // Workers get every committed batch's deltas (checked against the database) before their first job.
        try cluster?.announceCommitted(st.manifest.batches.map(\.deltas))

        guard let base = st.manifest.base else { throw StoreError.noCampaign(path: store.path) }
        let basePath = try st.verified(base)
        let hp = campaign.settings.hyperparameters
        let stats = r.method == .memit ? try KeyStatistics.read(from: basePath) : nil
        // AlphaEdit reads its projectors a layer at a time as the solve reaches them (NullSpaceProjectorFile).
        // MEMIT+P (EditStages.swift) takes its projectors from MEMIT's base, the statistics.
        let projFile = r.method == .alphaedit ? try NullSpaceProjectorFile(path: basePath) : nil
        let proj = try stats.flatMap { hp.effectiveStages.projects(r.method) ? try NullSpaceProjectorSet(statistics: $0, hyperparameters: hp) : nil }
        let cp = try st.manifest.cp.map { try SequentialState.read(from: try st.verified($0)) }
        let editor = try Editor(model: model, tokenizer: tok, hp: hp, method: r.method, templates: campaign.templates,
                                projectors: proj, statistics: stats, state: cp, projectorFile: projFile)

        let batches = try store.batches(campaign: campaign.id)
        var doneRequests = st.manifest.batches.reduce(0) { $0 + $1.requests }
        var committedNow = 0
        let scorer = TargetScorer(model: model, tokenizer: tok)
        // The rate counts what this run computed after its first report: requests of earlier runs
        // (committed batches, v* chunks a resumed batch already holds) arrive with that first report, so
        // they are in `done` but not in the rate (until a second report, the rate shows "–").
        var rateBase: (done: Int, time: Double)?
        for b in batches where b.state == .pending {
            if let max = r.maxBatches, committedNow >= max { break }
            let batch = try store.requests(campaign: campaign.id, batch: b.index)
            let pre = try scorer.efficacy(batch)
            func show(_ n: Int) {
                let now = ProcessStats.now(), done = doneRequests + n
                let base = rateBase ?? (done, now)
                rateBase = base
                let rate = Double(done - base.done) / max(now - base.time, 1e-9)
                events.progress("batch \(b.index)/\(batches.count) v*", done, requests.count, rate * 60, "requests/min",
                                rate > 0 ? Double(requests.count - done) / rate : nil)
            }
            // v* on the workers as `vstar` jobs (or here, in-process); the solve always here.
            let remote = cluster.map { cluster in { (report: (Int) -> Void) in
                try cluster.targets(campaign: campaign, batch: b, requests: batch) { done, _ in
                    report(min(batch.count, done * DistributedTargets.chunkSize))
                }
            } }
            let out = try editor.editBatch(batch, remoteTargets: remote, progress: show) { deltas, out in
                events.finishProgress()
                try EditState.commit(store, campaign: campaign.id, batch: b.index, deltas: deltas, cp: editor.state,
                                     keys: try BatchKeys(keys: out.keys), seconds: out.totalSeconds)  // the commit point of the batch
                if let cluster {
                    let committed = try EditState(store: store).manifest.batches
                    try cluster.announceCommitted(committed.map(\.deltas))  // the workers follow the new weights
                    cluster.syncWorkersNow()  // `status` shows the workers as of this commit
                }
            }
            committedNow += 1
            doneRequests += batch.count
            let post = try scorer.efficacy(batch)
            // Efficacy needs each record's true target (CounterFact records have it; simple lists do not).
            let scored = batch.filter { $0.targetTrue != nil }.count
            let eff = pre.isNaN ? "" : String(format: "; efficacy on its rewrite prompts %.1f → %.1f", pre, post)
                + (scored < batch.count ? " (the \(scored) of \(batch.count) records with a true target)" : "")
            events.log(String(format: "batch %d/%d committed: %d edit%@, v* %.1f s, solve %.2f s, total %.1f s",
                              b.index, batches.count, batch.count, batch.count == 1 ? "" : "s", out.zSeconds, out.solveSeconds, out.totalSeconds) + eff)
            for n in out.filterNotes { events.log("  " + n) }
            if let r = out.reachedSummary(layer: hp.zLayer, firstRequest: b.requests.lowerBound + 1) { events.log("  " + r) }
        }
        let done = try EditState(store: store).manifest.batches
        return EditCampaignSummary(batchesCommitted: done.count, edits: done.reduce(0) { $0 + $1.requests },
                                   batchesThisRun: committedNow)
    }

    /// The stored campaign when its settings are `settings` (nil when there is none). One that asks for
    /// more requests than it holds, its own first, is extended when `extend` is set and refused with a
    /// hint otherwise; any other difference is refused with the differences listed.
    static func matchOrExtend(_ store: JobStore, settings: CampaignSettings, requests: [EditRequest], extend: Bool,
                              events: EditCampaignEvents) throws -> Campaign? {
        guard let c = try store.campaign() else { return nil }
        var diffs = c.settings.differences(from: settings)
        // The facts file's bytes changed (CRLF line ends, a blank line, JSON lines made an array) but it holds
        // the campaign's requests, field for field: the same campaign.
        if diffs.contains(where: { $0.key == "factsChecksum" }), requests.count == c.settings.requestCount,
           try store.firstChangedRequest(requests) == nil {
            diffs.removeAll { $0.key == "factsChecksum" }
            if diffs.isEmpty {
                events.log("\(settings.facts): its bytes differ from the file the campaign was started with, its requests do not: resuming")
                return c
            }
        }
        if diffs.isEmpty { return c }
        // A campaign refused or stopped before its base (the K₀ build) holds nothing but its settings: a run
        // with other settings replaces it, unless K₀ shards of it wait to be resumed and the new settings
        // would build another K₀ (whose plan removes them).
        let shards = (try? FileManager.default.contentsOfDirectory(atPath: store.directory + "/" + k0ShardsFolder)) ?? []
        let o = c.settings, k0Kept = o.modelChecksum == settings.modelChecksum && o.corpusChecksum == settings.corpusChecksum
            && o.covSentences == settings.covSentences && o.hyperparameters.layers == settings.hyperparameters.layers
        if c.base == nil, shards.isEmpty || k0Kept, try store.discardUnstartedCampaign() {
            events.log("\(store.directory): its campaign stopped before K0 was built, nothing committed; replaced by this run's "
                       + "settings (\(diffs.map(\.description).joined(separator: "; ")))")
            return nil
        }
        guard c.settings.isExtension(to: settings) else {
            // Under --extend the grown count and facts are asked for: the differences shown are the others.
            let others = diffs.filter { !["requestCount", "factsChecksum"].contains($0.key) }
            throw StoreError.campaignMismatch(path: store.path, differences: extend && !others.isEmpty ? others : diffs)
        }
        guard extend else {
            if let (i, fields) = try store.firstChangedRequest(requests) {
                throw StoreError.requestChanged(path: store.path, index: i, fields: fields)
            }
            throw StoreError.extensionNotAsked(path: store.path, stored: c.settings.requestCount, requested: settings.requestCount)
        }
        let (grown, added) = try store.extendCampaign(settings: settings, requests: requests)
        events.log("extended \(store.directory): \(c.settings.requestCount) → \(settings.requestCount) requests, "
                   + "new batches \(added.lowerBound)–\(added.upperBound - 1)")
        return grown
    }

    /// What this campaign's K₀ statistics must be built from.
    static func source(_ r: EditCampaignRequest, settings: CampaignSettings) throws -> K0Source {
        K0Source(modelChecksum: settings.modelChecksum, corpusChecksum: try settings.corpusChecksum ?? EditState.fileChecksum(r.corpus),
                 sentences: 0..<settings.covSentences, layers: settings.hyperparameters.layers,
                 note: "model \(URL(fileURLWithPath: settings.model).lastPathComponent), corpus \(URL(fileURLWithPath: r.corpus).lastPathComponent)")
    }

    /// The request's `statistics` file when it holds this campaign's K₀ statistics (nil: build them).
    static func prebuilt(_ r: EditCampaignRequest, settings: CampaignSettings, events: EditCampaignEvents) throws -> KeyStatistics? {
        guard let path = r.statistics else { return nil }
        guard FileManager.default.fileExists(atPath: path) else {
            if r.statisticsRequired { throw EditCampaignError.invalid("K0 statistics \(path): no such file") }
            return nil
        }
        let stats: KeyStatistics
        do { stats = try KeyStatistics.read(from: path) } catch {
            if r.statisticsRequired { throw error }
            events.log("not using the K0 statistics in \(path) (\(error)); building them")
            return nil
        }
        let wanted = try source(r, settings: settings)
        if let why = stats.mismatch(wanted) {
            if r.statisticsRequired {
                throw EditCampaignError.invalid("K0 statistics \(path) are not this campaign's: \(why)")
            }
            events.log("not using the K0 statistics in \(path) (\(why)); building them")
            return nil
        }
        events.log("K0 statistics from \(path) (\(wanted.sentences.count) sentences, layers \(LayerList.format(wanted.layers)))")
        return stats
    }

    /// K₀ statistics over the corpus: sharded over the workers, or here with one forward per thread.
    static func statistics(_ r: EditCampaignRequest, settings: CampaignSettings, model: LlamaModel, tokenizer: BPETokenizer,
                           pool: WorkerPool?, events: EditCampaignEvents) throws -> KeyStatistics {
        let hp = settings.hyperparameters, n = settings.covSentences
        let provenance = try source(r, settings: settings).provenance
        defer { events.finishProgress() }
        if let pool {
            let plan = CovarianceJobPlan(corpus: AbsolutePath.of(r.corpus), range: 0..<n, layers: hp.layers,
                                         f: model.config.ffn, shardSentences: r.shardSentences)
            // A campaign killed during a long K₀ build resumes it from the shards already summed.
            return try DistributedCovariance.build(pool: pool, plan: plan, provenance: provenance,
                                                   directory: r.state + "/" + k0ShardsFolder) { p in
                events.progress("K0 statistics (shards)", p.shardsDone, p.shardsTotal, p.tokensPerSecond, "tokens/s", p.eta)
            }.0
        }
        let builder = try CovarianceBuilder(model: model, tokenizer: tokenizer, layers: hp.layers, workers: r.threads)
        if let note = builder.memoryNote { events.log(note) }
        return try builder.build(corpus: r.corpus, range: 0..<n, provenance: provenance) { p in
            events.progress("K0 statistics", p.sentencesDone, p.sentencesTotal, p.tokensPerSecond, "tokens/s", p.eta)
        }
    }

    /// The projectors (AlphaEdit) or the statistics themselves (MEMIT), recorded as the campaign's base.
    /// AlphaEdit's projectors take the statistics over, each layer's sums freed once its projector is made.
    static func recordBase(_ store: JobStore, _ campaign: Campaign, _ stats: consuming KeyStatistics,
                           events: EditCampaignEvents) throws -> ArtifactFile {
        let hp = campaign.settings.hyperparameters
        switch campaign.settings.method {
        case .alphaedit:
            let proj = try NullSpaceProjectorSet(statistics: consume stats, rule: hp.nullSpaceRule)
            for p in proj.projectors {
                events.log("layer \(p.layer): null space keeps \(p.keptDimension)/\(p.f) directions "
                           + "(\(String(format: "%.1f%%; %.2g of C0's trace", 100 * p.keptFraction, p.keptTraceShare))), \(p.spectrum)")
            }
            // An empty null space makes the projected update ΔW = 0 there: at every layer, the campaign would
            // commit edits that change nothing (reported as done). Refused before the base is recorded, so a
            // run with another threshold replaces these settings.
            let empty = proj.projectors.filter { $0.keptDimension == 0 }.map(\.layer)
            if hp.effectiveStages.projects(.alphaedit), !empty.isEmpty {
                let why = "the null space keeps 0 directions at layer\(empty.count == 1 ? "" : "s") \(LayerList.format(empty)) "
                    + "(threshold \(hp.nullSpaceRule)): the projected update there is ΔW = 0"
                guard empty.count < proj.projectors.count else {
                    throw EditCampaignError.invalid(why + " at every edited layer, so no edit could change the model: raise the "
                        + "threshold (--null-space-threshold, --null-space-relative or --null-space-trace)")
                }
                events.log("warning: " + why + "; the other layers carry the edits")
            }
            return try EditState.recordBase(store, campaign: campaign.id, projectors: proj)
        case .memit:
            return try EditState.recordBase(store, campaign: campaign.id, statistics: stats)
        }
    }
}

public enum EditCampaignError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self {
        case .invalid(let s): s
        }
    }
}
