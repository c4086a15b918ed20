import ArgumentParser
import Foundation
import Shared

/// `alphaedit cov`: the preserved-knowledge statistics K0 and the null-space projectors of
/// docs/algorithm.md §1, computed once per model and layer set and stored for `edit` and the workers.
struct Cov: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build the K0 key statistics and the null-space projectors (docs/algorithm.md §1).")

    static let statisticsFile = "statistics.bin"
    static let projectorFile = "projector.bin"
    /// A distributed build's waiting shards and checkpoints (ShardReduction), removed once both files are written.
    static let shardsFolder = "k0-shards"

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var clusterOptions: ClusterOptions
    @Option(help: "Edited layers: a range \"3-7\", a list \"3,5,7\", or both \"3-5,7\" (default: the config's `layers`).")
    var layers: String?
    @Option(help: "Sentences of the corpus to use (default: the config's `cov_sentences`, 2,000).") var sentences: Int?
    @Option(help: "Sentences to skip first (a shard of the corpus).") var offset = 0
    @Option(help: "Corpus: JSON lines with a \"sentence\" field, or one sentence a line (default: the config's `corpus`).")
    var corpus: String?
    @Option(help: "Directory for \(Cov.statisticsFile) and \(Cov.projectorFile) (default: the config's `artifacts`).")
    var out: String?
    @Option(help: "Null-space threshold τ: eigenvalues of C0 below it span the kept directions.")
    var threshold: Double?
    @Option(help: "Null-space threshold relative to each layer's largest eigenvalue (τ_l = ρ · λ_max); instead of --threshold.")
    var relative: Double?
    @Option(help: "Null space as a share s of C0's trace: per layer the smallest-eigenvalue directions whose eigenvalues sum to at most s · tr(C0); instead of --threshold and --relative.")
    var trace: Double?
    @Option(help: "Sentences per forward batch: batch b is corpus sentences b·N ..< (b+1)·N, the same in every shard.")
    var batchSentences = CovarianceBuilder.defaultBatchSentences
    @Option(help: "In-process only: forward passes in parallel, one BLAS thread each (default: --threads).") var workers: Int?
    @Option(help: "Sentences per distributed job (default: the config's `shard_sentences`).") var shardSentences: Int?
    @Option(help: "Distributed: seconds between checkpoints of the running sum in OUT/\(Cov.shardsFolder), from which `cov` run again after a crash resumes (0: after every shard).")
    var checkpointSeconds = 60.0
    @Option(help: "Distributed: MB of finished shards held in memory while they wait for an earlier one to be added (default: an eighth of this machine's memory); past it they wait on disk in OUT/\(Cov.shardsFolder).")
    var waitingMemoryMb: Int?
    @Flag(help: "Print one JSON object instead of the table.") var json = false

    struct LayerReport: Codable {
        var layer: Int
        var tokens: Int
        /// f, the key dimension.
        var dimension: Int
        var kept: Int
        var kept_fraction: Double
        /// Share of C0's trace (the preserved keys' energy) in the kept directions.
        var kept_trace_share: Double
        /// Share of the directions that together hold ≤ 1 % of the trace, whatever τ (NullSpaceProjector.room).
        var room_1_percent: Double
        /// The largest eigenvalue's share of the trace.
        var largest_share: Double
        var eigenvalue_min: Double
        var eigenvalue_median: Double
        var eigenvalue_max: Double
        /// The τ applied at this layer (ρ · λ_max with --relative).
        var threshold: Double
    }

    struct Report: Codable {
        var model: String
        var corpus: String
        var first_sentence: Int
        var sentences: Int
        var tokens: Int
        var seconds: Double
        var tokens_per_s: Double
        var threads: Int
        var workers: Int
        /// in-process, local N or remote.
        var cluster: String
        /// Distributed runs: the coordinator's decode and merge of the shard results.
        var reduction: ReductionTimings?
        /// The absolute τ, when that is the rule (nil with --relative or --trace).
        var threshold: Double?
        /// ρ when the threshold is relative to each layer's largest eigenvalue.
        var relative: Double?
        /// s when the null space is a share of each layer's trace.
        var trace_share: Double?
        var statistics: String
        var projector: String
        var layers: [LayerReport]
    }

    func validate() throws {
        if let sentences, sentences < 1 { throw ValidationError("--sentences must be at least 1") }
        guard offset >= 0, !offset.addingReportingOverflow(sentences ?? 0).overflow else {
            throw ValidationError("--offset must be a sentence index (0 or more)")
        }
        if let threshold, !(threshold.isFinite && threshold > 0) { throw ValidationError("--threshold must be a positive number") }
        if let relative, !(relative > 0 && relative < 1) { throw ValidationError("--relative must be in (0, 1)") }
        if let trace, !(trace > 0 && trace < 1) { throw ValidationError("--trace must be in (0, 1)") }
        if [threshold, relative, trace].compactMap({ $0 }).count > 1 { throw ValidationError("give one of --threshold, --relative and --trace") }
        guard batchSentences >= 1 else { throw ValidationError("--batch-sentences must be at least 1") }
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
        if let shardSentences, shardSentences < 1 { throw ValidationError("--shard-sentences must be at least 1") }
        if let waitingMemoryMb, !(0 ... 1 << 30).contains(waitingMemoryMb) { throw ValidationError("--waiting-memory-mb must be 0 … 2³⁰") }
        guard checkpointSeconds.isFinite, checkpointSeconds >= 0 else { throw ValidationError("--checkpoint-seconds must be 0 or more") }
        if let layers { _ = try LayerList.parse(layers) }  // syntax now; the model's layer count once it is loaded
    }

    func run() throws {
        var cfg = try modelOptions.resolved()
        try clusterOptions.apply(to: &cfg)
        // The coordinator of a distributed build needs the model's shape only (the workers load it).
        let modelConfig = try LlamaConfig(gguf: try GGUFFile(path: cfg.model))
        let chosen = try layers.map { try LayerList.parse($0, modelLayers: modelConfig.layers) } ?? cfg.hyperparameters.layers
        let out = self.out ?? cfg.artifacts, corpus = self.corpus ?? cfg.corpus
        let threshold = self.threshold ?? cfg.hyperparameters.nullSpaceThreshold
        // A threshold given here replaces the config's (or the model's default) rule.
        let asked = self.threshold != nil || self.relative != nil || self.trace != nil
        let relative = asked ? self.relative : cfg.hyperparameters.nullSpaceRelative
        let traceShare = asked ? self.trace : cfg.hyperparameters.nullSpaceTraceShare
        let rule: NullSpaceRule = traceShare.map { .traceShare($0) } ?? relative.map { .relative($0) } ?? .absolute(threshold)
        let sentences = self.sentences ?? cfg.covSentences
        // An edit campaign's state holds its own projector.bin / statistics.bin, recorded by checksum: a
        // cov there replaced them and broke the campaign for good.
        if FileManager.default.fileExists(atPath: out + "/" + JobStore.fileName) {
            throw ValidationError("\(out) is an edit campaign's state directory (it holds \(JobStore.fileName)): its projector.bin and "
                                  + "statistics.bin are the campaign's; choose another --out")
        }
        // One process per output folder, the state's lock (an in-process and a distributed cov on one
        // folder both ran, and both reported success).
        let lock: StateLock
        do { lock = try StateLock(directory: out) } catch StateLockError.inUse(_, let pid) {
            throw ValidationError("\(out) is in use by " + (pid.map { "pid \($0)" } ?? "another process") + ": one cov (or edit) per --out folder")
        }
        defer { lock.release() }

        let range = offset..<(offset + sentences)
        let name = URL(fileURLWithPath: corpus).lastPathComponent
        if let why = FileIO.whyUnreadable(corpus) {
            throw ValidationError("cannot read the K0 corpus \(corpus) (--corpus, or the config's `corpus`): \(why)")
        }
        // The range is checked before any work (a distributed build past the corpus's end failed after its shards ran).
        _ = try SentenceCorpus.read(path: corpus, range: range)
        // What `edit` and `eval` check before they reuse these statistics (K0Source.swift).
        let provenance = K0Source(modelChecksum: try EditState.fileChecksum(cfg.model), corpusChecksum: try EditState.fileChecksum(corpus),
                                  sentences: range, layers: chosen,
                                  note: "model \(URL(fileURLWithPath: cfg.model).lastPathComponent), corpus \(name)").provenance
        var printer = ProgressPrinter()
        let t0 = ProcessStats.now()
        let stats: KeyStatistics
        var reduction: ReductionTimings?
        var workers = 1
        if cfg.workers == .inProcess {
            let model = try LlamaModel(path: cfg.model)
            let tok = try BPETokenizer(gguf: model.gguf)
            workers = self.workers ?? cfg.threads
            let builder = try CovarianceBuilder(model: model, tokenizer: tok, layers: chosen, batchSentences: batchSentences,
                                                workers: workers)
            if let note = builder.memoryNote { log(note) }
            workers = min(workers, builder.memoryThreads)
            stats = try builder.build(corpus: corpus, range: range, provenance: provenance) { p in
                printer.show(String(format: "K0 statistics: %d/%d sentences, %d/%d tokens, %.0f tokens/s, ",
                                    p.sentencesDone, p.sentencesTotal, p.tokensDone, p.tokensTotal, p.tokensPerSecond)
                             + "ETA \(ProgressPrinter.clock(p.eta))")
            }
        } else {
            let plan = CovarianceJobPlan(corpus: AbsolutePath.of(corpus), range: range, layers: chosen,
                                         f: modelConfig.ffn, batchSentences: batchSentences,
                                         shardSentences: shardSentences ?? cfg.shardSentences)
            let cluster = try WorkerPool.start(cfg, directory: out, logLevel: clusterOptions.logLevel)
            defer { cluster.shutdown() }
            switch cfg.workers {
            case .remote: workers = 0
            case .slurm(let n): workers = n
            default: workers = cluster.childPIDs.count
            }
            // Waiting shards and checkpoints: `cov` run again with the same plan after a crash resumes.
            (stats, reduction) = try DistributedCovariance.build(pool: cluster, plan: plan, provenance: provenance,
                                                                 directory: out + "/" + Self.shardsFolder,
                                                                 memoryBudget: waitingMemoryMb.map { $0 << 20 } ?? ShardReduction.defaultMemoryBudget,
                                                                 checkpointInterval: checkpointSeconds) { p in
                printer.show(String(format: "K0 statistics: %d/%d shards, %d tokens, %.0f tokens/s, %d workers alive, ",
                                    p.shardsDone, p.shardsTotal, p.tokensDone, p.tokensPerSecond, cluster.aliveCount)
                             + "ETA \(ProgressPrinter.clock(p.eta))")
            }
            if case .remote = cfg.workers { workers = cluster.workerSnapshot.count }  // those that joined
        }
        let seconds = ProcessStats.now() - t0
        printer.finish()

        let statsPath = out + "/" + Self.statisticsFile, projPath = out + "/" + Self.projectorFile
        try stats.write(to: statsPath)
        let tokensOf = Dictionary(uniqueKeysWithValues: zip(stats.layers, stats.counts))
        // The sums' last use: each layer's are freed once its projector is made.
        let projectors = try NullSpaceProjectorSet(statistics: consume stats, rule: rule)
        try projectors.write(to: projPath)
        ShardReduction.discard(directory: out + "/" + Self.shardsFolder)

        let tokens = tokensOf[chosen[0]] ?? 0
        let rows = projectors.projectors.map { p in
            let s = p.spectrum
            return LayerReport(layer: p.layer, tokens: tokensOf[p.layer] ?? 0, dimension: p.f,
                               kept: p.keptDimension, kept_fraction: p.keptFraction, kept_trace_share: p.keptTraceShare,
                               room_1_percent: p.room(traceShare: 1e-2), largest_share: p.largestShare, eigenvalue_min: s.min, eigenvalue_median: s.median, eigenvalue_max: s.max, threshold: p.threshold)
        }
        let report = Report(model: cfg.model, corpus: corpus, first_sentence: offset, sentences: sentences, tokens: tokens,
                            seconds: seconds, tokens_per_s: Double(tokens) / seconds, threads: cfg.threads, workers: workers,
                            cluster: cfg.workers.description, reduction: reduction,
                            threshold: relative == nil && traceShare == nil ? threshold : nil,
                            relative: traceShare == nil ? relative : nil, trace_share: traceShare, statistics: statsPath, projector: projPath, layers: rows)
        if json {
            try printJSON(report)
        } else {
            printTable(report)
        }
    }

    private func printTable(_ r: Report) {
        let name = URL(fileURLWithPath: r.corpus).lastPathComponent
        print("K0 statistics: \(r.sentences) sentences of \(name) from #\(r.first_sentence), \(r.tokens) tokens, "
              + String(format: "%.1f s (%.0f tokens/s, %d threads, %d workers, %@)", r.seconds, r.tokens_per_s,
                            r.threads, r.workers, r.cluster))
        if let t = r.reduction, t.resumedShards + t.spilledShards + t.checkpoints > 0 {
            print("reduction: \(t.resumedShards) shards taken up from an earlier run, \(t.spilledShards) waited on disk (memory held at most "
                  + String(format: "%.0f MB), %d checkpoints (%.1f s)", Double(t.peakHeldBytes) / 1e6, t.checkpoints, t.checkpointSeconds))
        }
        print("null space: eigenvalues of C0 = E[kkᵀ] below " + (r.trace_share.map { "the τ that keeps at most \($0) of the layer's trace" }
              ?? r.relative.map { "τ = \($0) × the layer's largest" } ?? "τ = \(r.threshold ?? 0)"))
        print("layer    tokens   kept r   kept %  trace kept    min eig   median eig    max eig          τ   ≤1 % room  top")
        for l in r.layers {
            print(String(format: "%5d  %8d  %5d/%d  %6.1f%%  %10.2e  %9.3e  %11.3e  %9.3e  %9.3e  %8.1f%%  %3.0f%%", l.layer, l.tokens, l.kept, l.dimension,
                         100 * l.kept_fraction, l.kept_trace_share, l.eigenvalue_min, l.eigenvalue_median, l.eigenvalue_max, l.threshold,
                         100 * l.room_1_percent, 100 * l.largest_share))
        }
        print("≤1 % room: the share of the directions that together hold at most 1 % of the preserved keys' energy, whatever τ "
              + "(a null space in the strict sense; top: the largest eigenvalue's share of it)")
        print("wrote \(r.statistics) and \(r.projector)")
    }
}

/// The progress line on stderr, rewritten in place with \r at most 4 times a second.
struct ProgressPrinter {
    static let interval = 0.25
    private var last = -Double.infinity
    private var pending: String?

    mutating func show(_ line: String) {
        let now = ProcessStats.now()
        pending = line
        guard now - last >= Self.interval else { return }
        last = now
        write(line)
    }

    /// The last state (if not shown yet) and the line break that ends the progress line.
    mutating func finish() {
        if let pending { write(pending) }
        FileHandle.standardError.write(Data("\n".utf8))
    }

    private mutating func write(_ line: String) {
        pending = nil
        FileHandle.standardError.write(Data(("\r" + line + "   ").utf8))
    }

    static func clock(_ seconds: Double?) -> String {
        guard let seconds, seconds.isFinite else { return "–" }
        let t = Int(seconds.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }
}
