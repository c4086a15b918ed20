import ArgumentParser
import Foundation
import Logging
import Shared

/// `alphaedit edit`: a resumable edit campaign. With `workers = local N` (the default) or `remote`,
/// K0 statistics and v* run on the workers (Shared/Cluster/CampaignCluster.swift) and the projected
/// update on this process; `in-process` does everything here. Running the same command again on the
/// same state directory continues after the last committed batch.
struct Edit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Edit facts (AlphaEdit or MEMIT); resumable via --state.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var clusterOptions: ClusterOptions
    @Option(help: "Facts: CounterFact JSON lines or a list of {prompt, subject, target}.") var facts: String
    @Option(help: "alphaedit or memit.") var method: String = "alphaedit"
    @Option(help: "Edits per batch.") var batchSize = 100
    @Option(help: "Use only the first N facts.") var limit: Int?
    @Option(help: "State directory (created, or resumed; default: the config's `state`).") var state: String?
    @Option(help: "Corpus for the K0 statistics (default: the config's `corpus`).") var corpus: String?
    @Option(help: "Sentences of the corpus for K0 (default: the config's `cov_sentences`).") var covSentences: Int?
    @Option(help: "Learning rate of v*.") var vLr: Float?
    @Option(help: "Seed of the context templates.") var seed: UInt64 = 0

    func run() throws {
        guard let m = EditMethod(rawValue: method) else { throw ValidationError("--method must be alphaedit or memit") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        var cfg = try modelOptions.resolved()
        try clusterOptions.apply(to: &cfg)
        let state = self.state ?? cfg.state, corpus = self.corpus ?? cfg.corpus
        let covSentences = self.covSentences ?? cfg.covSentences
        guard covSentences > 0 else { throw ValidationError("--cov-sentences must be positive") }
        // One coordinator per state directory, held until this process exits (Store/StateLock.swift).
        let lock = try StateLock(directory: state)
        defer { lock.release() }
        let requests = try FactsFile.read(path: facts, limit: limit)   // every record checked before any work
        guard FileManager.default.isReadableFile(atPath: corpus) else {
            throw ValidationError("cannot read the K0 corpus \(corpus) (--corpus, or the config's `corpus`)")
        }
        var hp = cfg.hyperparameters
        if let vLr { hp.vLR = vLr }
        let settings = CampaignSettings(
            method: m, model: cfg.model, modelChecksum: try EditState.fileChecksum(cfg.model),
            facts: facts, factsChecksum: try EditState.fileChecksum(facts), requestCount: requests.count,
            batchSize: batchSize, hyperparameters: hp, templateSeed: seed, corpus: corpus, covSentences: covSentences,
            corpusChecksum: try EditState.fileChecksum(corpus))
        let model = try LlamaModel(path: cfg.model)
        let tok = try BPETokenizer(gguf: model.gguf)
        try FactsFile.checkLengths(requests, name: facts, tokenizer: tok, context: model.config.context,
                                   reserve: FactsFile.templateReserve)

        // The database is the commit record: a campaign with other settings is refused, a matching one
        // continues after its last committed batch.
        // A v* job is leased by the coordinator of each run that reaches it (workers hold their own leases
        // in the pool), so attempts count coordinator restarts too: allow more than the default.
        let store = try JobStore(directory: state, create: true, maxAttempts: 10)
        var campaign: Campaign
        if let c = try store.campaign(matching: settings) {
            campaign = c
        } else {
            let templates = try ContextTemplates.generate(model: model, tokenizer: tok, seed: seed)
            campaign = try store.createCampaign(settings: settings, templates: templates, requests: requests)
        }
        // The cluster (none for `in-process`): its endpoint defaults to an ipc socket in the state directory.
        let cluster: CampaignCluster? = cfg.workers == .inProcess ? nil
            : CampaignCluster(store: store, pool: try WorkerPool.start(cfg, directory: state, logLevel: clusterOptions.logLevel),
                              logger: Logger(label: "coordinator"))
        defer {
            cluster?.finish()
            cluster?.pool.shutdown()
        }
        try cluster?.releaseAbandonedLeases()
        try cluster?.startWorkerMirror()
        if campaign.base == nil {
            campaign.base = try buildBase(store, campaign, model, tok, cfg.threads, corpus: corpus, cluster: cluster?.pool,
                                          shardSentences: cfg.shardSentences)
        }
        try store.removeUnreferencedFiles(in: ["deltas", "cp"])
        let st = try EditState(store: store)
        if !st.manifest.batches.isEmpty {
            try st.apply(to: model)
            log("resuming \(state): \(st.manifest.batches.count) batches already committed")
        }
        // Workers get every committed batch's deltas (checked against the database) before their first job.
        try cluster?.announceCommitted(st.manifest.batches.map(\.deltas))

        guard let base = st.manifest.base else { throw StoreError.noCampaign(path: store.path) }
        let basePath = try st.verified(base)
        let proj = m == .alphaedit ? try NullSpaceProjectorSet.read(from: basePath) : nil
        let stats = m == .memit ? try KeyStatistics.read(from: basePath) : nil
        let cp = try st.manifest.cp.map { try SequentialState.read(from: try st.verified($0)) }
        let editor = try Editor(model: model, tokenizer: tok, hp: hp, method: m, templates: campaign.templates,
                                projectors: proj, statistics: stats, state: cp)

        let batches = try store.batches(campaign: campaign.id)
        let start = ProcessStats.now()
        var doneRequests = st.manifest.batches.reduce(0) { $0 + $1.requests }
        let scorer = TargetScorer(model: model, tokenizer: tok)
        for b in batches where b.state == .pending {
            let batch = try store.requests(campaign: campaign.id, batch: b.index)
            let pre = try scorer.efficacy(batch)
            func show(_ n: Int) {
                let el = ProcessStats.now() - start
                let rate = Double(doneRequests + n) / max(el, 1e-9)
                progressLine("batch \(b.index)/\(batches.count) v*", done: doneRequests + n, total: requests.count,
                             rate: rate * 60, unit: "requests/min", eta: Double(requests.count - doneRequests - n) / max(rate, 1e-9))
            }
            // v* on the workers as `vstar` jobs (or here, in-process); the solve always here.
            let tz = ProcessStats.now()
            let zs = try cluster?.targets(campaign: campaign, batch: b, requests: batch) { done, total in
                show(min(batch.count, done * DistributedTargets.chunkSize))
            }
            var out = try editor.apply(batch, zs: zs) { show($0) }
            if zs != nil {  // v* ran on the workers: its time is the wait for them
                out.zSeconds = ProcessStats.now() - tz - out.totalSeconds
                out.totalSeconds += out.zSeconds
            }
            finishProgress()
            try EditState.commit(store, campaign: campaign.id, batch: b.index,
                                 deltas: BatchDeltas(rows: model.config.hidden, cols: model.config.ffn, deltas: out.deltas),
                                 cp: editor.state, seconds: out.totalSeconds)  // the commit point of the batch
            if let cluster {
                let committed = try EditState(store: store).manifest.batches
                try cluster.announceCommitted(committed.map(\.deltas))  // the workers follow the new weights
            }
            doneRequests += batch.count
            let post = try scorer.efficacy(batch)
            // Efficacy needs each record's true target (CounterFact records have it; simple lists do not).
            let eff = pre.isNaN ? "" : String(format: "; efficacy on its rewrite prompts %.1f → %.1f", pre, post)
            log(String(format: "batch %d/%d committed: %d edits, v* %.1f s, solve %.2f s, total %.1f s",
                       b.index, batches.count, batch.count, out.zSeconds, out.solveSeconds, out.totalSeconds) + eff)
        }
        let done = try EditState(store: store).manifest.batches
        print("state: \(state) (\(done.count) batches, \(done.reduce(0) { $0 + $1.requests }) edits)")
    }

    /// K0 statistics over the corpus, then the projectors (AlphaEdit) or the statistics themselves
    /// (MEMIT), recorded as the campaign's base.
    func buildBase(_ store: JobStore, _ campaign: Campaign, _ model: LlamaModel, _ tok: BPETokenizer,
                   _ threads: Int, corpus: String, cluster: WorkerPool?, shardSentences: Int) throws -> ArtifactFile {
        let hp = campaign.settings.hyperparameters, covSentences = campaign.settings.covSentences
        let stats: KeyStatistics
        if let cluster {
            let plan = CovarianceJobPlan(corpus: AbsolutePath.of(corpus), range: 0..<covSentences, layers: hp.layers,
                                         f: model.config.ffn, shardSentences: shardSentences)
            stats = try DistributedCovariance.build(pool: cluster, plan: plan, provenance: "corpus \(corpus) 0..<\(covSentences)") { p in
                progressLine("K0 statistics (shards)", done: p.shardsDone, total: p.shardsTotal, rate: p.tokensPerSecond,
                             unit: "tokens/s", eta: p.eta)
            }.0
        } else {
            stats = try buildLocally(hp, model, tok, threads, corpus: corpus, sentences: covSentences)
        }
        finishProgress()
        return try recordBase(store, campaign, stats)
    }

    func buildLocally(_ hp: EditHyperparameters, _ model: LlamaModel, _ tok: BPETokenizer, _ threads: Int,
                      corpus: String, sentences: Int) throws -> KeyStatistics {
        // One forward pass per thread, one BLAS thread each (see CovarianceBuilder.workers).
        let builder = try CovarianceBuilder(model: model, tokenizer: tok, layers: hp.layers, workers: threads)
        return try builder.build(corpus: corpus, range: 0..<sentences) { p in
            progressLine("K0 statistics", done: p.sentencesDone, total: p.sentencesTotal, rate: p.tokensPerSecond, unit: "tokens/s", eta: p.eta)
        }
    }

    func recordBase(_ store: JobStore, _ campaign: Campaign, _ stats: KeyStatistics) throws -> ArtifactFile {
        let hp = campaign.settings.hyperparameters
        switch campaign.settings.method {
        case .alphaedit:
            let proj = try NullSpaceProjectorSet(statistics: stats, threshold: hp.nullSpaceThreshold)
            for p in proj.projectors {
                log("layer \(p.layer): null space keeps \(p.keptDimension)/\(p.f) directions (\(String(format: "%.1f", 100 * p.keptFraction))%), \(p.spectrum)")
            }
            return try EditState.recordBase(store, campaign: campaign.id, projectors: proj)
        case .memit:
            return try EditState.recordBase(store, campaign: campaign.id, statistics: stats)
        }
    }
}

func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// One progress line on stderr, rewritten in place.
func progressLine(_ what: String, done: Int, total: Int, rate: Double, unit: String, eta: Double?) {
    let etaText = eta.map { String(format: "ETA %.0fs", $0) } ?? "ETA –"
    let line = String(format: "\r%@: %d/%d  %.1f %@  %@   ", what, done, total, rate, unit, etaText)
    FileHandle.standardError.write(Data(line.utf8))
}

func finishProgress() { FileHandle.standardError.write(Data("\n".utf8)) }

/// One JSON object on stdout, keys sorted (the `--json` output of every command).
func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys]
    print(String(decoding: try enc.encode(value), as: UTF8.self))
}
