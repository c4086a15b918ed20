import ArgumentParser
import Foundation
import Shared

/// `alphaedit eval`: docs/algorithm.md §6's sequential protocol on CounterFact records — the unedited row, N
/// edits in batches of B, every edited record evaluated after the last batch; general capability
/// every K edits; hidden shift; JSON + Markdown (+ SVG with --plot). With workers (`--cluster`, or the
/// config's `workers`: local 2 by default) the CounterFact evaluations (record shards) and v* run on
/// them (Shared/Cluster/ClusterEvaluation.swift); `--cluster in-process` runs everything here.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate editing (efficacy, generalization, specificity, fluency, consistency, general capability).")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var clusterOptions: ClusterOptions
    @Option(help: "Records per evaluation job on the workers.") var shardRecords = 10
    @Option(help: "Records: CounterFact (nested or flat) or zsRE, JSON lines or one array.") var records = "../shared/data/pararel-cf/dev.jsonl"
    @OptionGroup var factsFormat: FactsFormatOptions
    @Option(help: "Skip the first N records.") var offset = 0
    @Option(help: "Use N records (= the number of edits).") var limit: Int?
    @Option(help: "Edits per batch.") var batchSize = 100
    @Option(help: "alphaedit, memit or none (the unedited model only).") var method = "alphaedit"
    @OptionGroup var stageOptions: StageOptions
    @Flag(help: "Skip generation (no fluency / consistency).") var noGeneration = false
    @Flag(help: "Print the headline JSON object as the last line.") var json = false
    @Option(help: "Learning rate of v*.") var vLr: Float?
    @Option(help: "MEMIT's λm.") var memitLambda: Double?
    @Option(help: "AlphaEdit's λ: the weight of ‖ΔW‖² in the solve (default: the config's `lambda`, else the model's own).") var lambda: Double?
    @Option(help: "Edited layers, e.g. 3-7.") var layers: String?
    @Option(help: "Corpus for the K0 statistics (default: the config's `corpus`).") var corpus: String?
    @Option(help: "Sentences of the corpus for K0 (default: the config's `cov_sentences`).") var covSentences: Int?
    @Option(help: ArgumentHelp("K0 statistics cache file (default state/k0-[<model>-]<corpus>-<N>-<layers>.bin; 'none' to never store).",
                               discussion: "Reused only when it records this model, corpus, sentences 0..<N and layers; else the config's `artifacts`/statistics.bin (`alphaedit cov`'s) when it does; else built and written there."))
    var covCache: String?
    @Option(help: "Seed of the context templates and of the generations.") var seed: UInt64 = 0
    @Option(help: "New tokens per generation prompt.") var genTokens = 100
    @Option(help: "Generate (fluency, consistency) for the first N records only (default: all).") var genRecords: Int?
    @Option(help: "Attribute snippets for consistency.") var snippets = "../shared/data/pararel-cf/attribute_snippets.json"
    @Option(help: "General capability every K edits (and before and after).") var generalEvery = 500
    @Option(help: "General-capability items per task (0: skip general capability).") var generalItems = 100
    @Option(help: "Wikitext sentences for perplexity.") var pplSentences = 200
    @Option(help: "Factual prompts for the hidden-representation shift (0: skip).") var hiddenPrompts = 1000
    @Option(help: "Evaluate an existing edit state (its batches) instead of editing.") var state: String?
    @Option(help: "Reuse the pre-edit row (per-record results, general capability at 0 edits) of an earlier report.json of the same model, records and evaluation settings.")
    var preFrom: String?
    @Option(help: "Report directory (report.json, report.md, shards).") var out: String?
    @Option(parsing: .upToNextOption, help: "Only draw: eval report.json files → <out>/plot.svg and a combined table.") var plot: [String] = []
    @Option(help: "Only sweep MEMIT λm on the first batch, e.g. 15000,5000,1000.") var tuneMemitLambda: String?

    func run() throws {
        if !plot.isEmpty { return try drawPlot() }
        let m: EditMethod?
        switch method {
        case "none": m = nil
        default:
            guard let e = EditMethod(rawValue: method) else { throw ValidationError("--method must be alphaedit, memit or none") }
            m = e
        }
        guard batchSize > 0, generalEvery > 0, shardRecords > 0 else {
            throw ValidationError("--batch-size, --general-every and --shard-records must be positive")
        }
        for (name, n) in [("--gen-tokens", genTokens), ("--general-items", generalItems), ("--ppl-sentences", pplSentences),
                          ("--hidden-prompts", hiddenPrompts), ("--gen-records", genRecords ?? 0), ("--limit", limit ?? 1)] where n < 0 {
            throw ValidationError("\(name) must be ≥ 0")
        }
        if let covSentences, covSentences < 1 { throw ValidationError("--cov-sentences must be at least 1") }
        if !noGeneration && genTokens < 1 { throw ValidationError("--gen-tokens must be at least 1 (or --no-generation)") }
        if let list = tuneMemitLambda, try Self.lambdas(list).isEmpty { throw ValidationError("--tune-memit-lambda lists no λm") }
        if let vLr, !(vLr.isFinite && vLr > 0) { throw ValidationError("--v-lr must be a positive number") }
        if let memitLambda, !(memitLambda.isFinite && memitLambda > 0) { throw ValidationError("--memit-lambda must be a positive number") }
        if let lambda, !(lambda.isFinite && lambda > 0) { throw ValidationError("--lambda must be a positive number") }
        var cfg = try modelOptions.resolved(state: state)
        try clusterOptions.apply(to: &cfg)
        let corpus = corpus ?? cfg.corpus, covSentences = covSentences ?? cfg.covSentences
        // Every input file is checked before the pre-edit evaluation (minutes), naming the option it came from.
        var inputs = [("--records", records)]
        if m != nil && state == nil { inputs.append(("--corpus", corpus)) }
        if !noGeneration { inputs.append(("--snippets", snippets)) }
        if let preFrom { inputs.append(("--pre-from", preFrom)) }
        for (name, path) in inputs {
            if let problem = inputProblem(option: name, path: path) { throw EvalError.badOption(problem) }
        }
        // One run per report directory (and per default workers' directory): two would share its checkpoints
        // and its workers' endpoint, and the last report would replace the first without a word.
        let owned = out ?? (cfg.workers != .inProcess ? "state/eval" : nil)
        let lock = try owned.map { dir in
            do { return try StateLock(directory: dir) } catch StateLockError.inUse(_, let pid) {
                throw EvalError.badOption("report directory \(dir) is in use by " + (pid.map { "pid \($0)" } ?? "another process")
                    + ": one eval per --out directory (wait for it to finish, or choose another --out)")
            } catch StateLockError.unavailable(_, let reason) {
                throw EvalError.badOption("report directory \(dir): \(reason)")
            }
        }
        defer { lock?.release() }
        let recs = try FactsFile.read(path: records, offset: offset, limit: limit, options: factsFormat.options)
        var stateBatchSize: Int?
        var stateToCheck: EditState?
        if let state {
            // The records are scored as the state's edits: they must be them (before 2026-12-07 any records
            // were, and records the state never edited came out "edited", at the report's default batch size).
            let st = try EditState.load(directory: state)
            var edited: [EditRequest] = []
            for b in st.manifest.batches { edited += try st.store.requests(campaign: st.campaign.id, batch: b.index) }
            guard !edited.isEmpty else { throw EvalError.badOption("state \(state) has no committed batch: no record was edited yet") }
            guard offset + recs.count <= edited.count else {
                throw EvalError.badOption("--records \(records): records \(offset + 1)…\(offset + recs.count) are evaluated as edited, but state "
                    + "\(state) committed \(edited.count) edit\(edited.count == 1 ? "" : "s"): give at most its first \(edited.count) (--limit)")
            }
            for (i, r) in recs.enumerated() {
                let e = edited[offset + i]
                guard r.prompt == e.prompt, r.subject == e.subject, r.targetNew == e.targetNew else {
                    throw EvalError.badOption("--records \(records) record \(offset + i + 1) (\"\(r.filledPrompt)\" → \(r.targetNew)) is not the edit "
                        + "\(offset + i + 1) of state \(state) (\"\(e.filledPrompt)\" → \(e.targetNew)): give the facts file the campaign edited")
                }
            }
            stateBatchSize = st.campaign.settings.batchSize
            stateToCheck = st
            let ignored = [("--method", method != "alphaedit"), ("--layers", layers != nil), ("--v-lr", vLr != nil),
                           ("--memit-lambda", memitLambda != nil), ("--lambda", lambda != nil), ("--batch-size", batchSize != 100)].filter(\.1).map(\.0)
            if !ignored.isEmpty {
                log("note: \(ignored.joined(separator: ", ")) \(ignored.count == 1 ? "is" : "are") ignored with --state: the state's own settings apply")
            }
        }
        let model = try LlamaModel(path: cfg.model)
        // Before the pre-edit evaluation, everything that would stop the run after it: the state's model,
        // the method's options, the K0 corpus's size and lines.
        if let st = stateToCheck { try st.checkModel(path: cfg.model, gguf: model.gguf) }
        if let m, state == nil {
            var hp = cfg.hyperparameters
            stageOptions.apply(to: &hp)
            if let p = hp.methodProblem(m) { throw EvalError.badOption(p) }
            _ = try SentenceCorpus.read(path: corpus, range: 0..<covSentences)
        }
        let tok = try BPETokenizer(gguf: model.gguf)
        if !noGeneration && FactsFile.templateReserve + genTokens >= model.config.context {
            throw EvalError.badOption("--gen-tokens \(genTokens) leaves no room for a prompt in the model's context of \(model.config.context) tokens")
        }
        try FactsFile.checkLengths(recs, name: records, firstRecord: offset + 1, tokenizer: tok, context: model.config.context,
                                   reserve: FactsFile.templateReserve + (noGeneration ? 0 : genTokens))

        var s = EvalCampaignSettings()
        s.hp = cfg.hyperparameters  // the model's defaults (ModelCatalog) and cluster.conf's values
        stageOptions.apply(to: &s.hp)
        if state == nil { for o in stageOptions.ineffective(s.hp, method: m) { log("note: \(o) has no effect") } }
        if state == nil, lambda != nil, m == .memit { log("note: --lambda has no effect: it is AlphaEdit's λ (MEMIT's is --memit-lambda)") }
        s.method = m; s.batchSize = stateBatchSize ?? batchSize; s.corpus = corpus; s.covSentences = covSentences
        s.templateSeed = seed; s.state = state; s.generalEvery = generalEvery; s.generalItems = generalItems
        s.perplexitySentences = pplSentences; s.threads = cfg.threads
        s.checkpointDirectory = out   // a run started again with the same inputs goes on from the records done
        if !noGeneration {
            let sum = try EditState.fileChecksum(snippets)
            s.checkpointInputs = ["snippets \(AbsolutePath.of(snippets)) \(sum)"]
            s.evaluationInputs = "snippets \(sum)"
        }
        s.modelIdentity = "\(URL(fileURLWithPath: cfg.model).lastPathComponent) \(try EditState.fileChecksum(cfg.model))"
        if let preFrom { s.preFrom = (preFrom, try EvalReport.read(path: preFrom)) }
        if let vLr { s.hp.vLR = vLr }
        if let memitLambda { s.hp.memitLambda = memitLambda }
        if let lambda { s.hp.lambda = lambda }
        if let layers { s.hp.layers = try LayerList.parse(layers) }
        // Checked before the pre-edit evaluation, not after it (a --state brings its own layers).
        if m != nil, state == nil, let p = s.hp.layersProblem(modelLayers: model.config.layers) { throw EvalError.badOption(p) }
        let layerTag = s.hp.layers.map(String.init).joined(separator: "_")
        let corpusTag = URL(fileURLWithPath: corpus).deletingPathExtension().lastPathComponent
        let modelTag = ModelCatalog.matching(path: cfg.model).map { $0.name == ModelCatalog.models[0].name ? "" : "\($0.name)-" }
            ?? "\(URL(fileURLWithPath: cfg.model).deletingPathExtension().lastPathComponent)-"
        s.covCache = covCache == "none" ? nil : (covCache ?? "state/k0-\(modelTag)\(corpusTag)-\(covSentences)-\(layerTag).bin")
        s.covArtifact = cfg.artifacts + "/" + Cov.statisticsFile   // `alphaedit cov`'s, when it is this run's
        if let c = s.covCache { try FileIO.makeDirectory((c as NSString).deletingLastPathComponent.isEmpty ? "." : (c as NSString).deletingLastPathComponent) }
        if hiddenPrompts > 0 && (m != nil || state != nil) {
            s.hiddenPrompts = try FactsFile.read(path: records, limit: hiddenPrompts, options: factsFormat.options).map(\.filledPrompt)
        }
        let gen = noGeneration ? nil : GenerationSettings(maxTokens: genTokens, topK: 5, seed: seed)
        let snip = noGeneration ? nil : try AttributeSnippets.read(path: snippets)
        var evaluator = CounterFactEvaluator(model: model, tokenizer: tok, generation: gen, snippets: snip)
        if let genRecords {
            evaluator.generationRecords = offset..<(offset + min(genRecords, recs.count))
        }
        let campaign = EvalCampaign(model: model, tokenizer: tok, evaluator: evaluator, settings: s)
        campaign.log = { log($0) }
        campaign.progress = progressReporter()

        if let list = tuneMemitLambda { return try sweep(list, campaign: campaign, records: recs, evaluator: evaluator) }

        // The workers: their endpoint and the batches' deltas files live in the report directory.
        var pool: WorkerPool?
        if cfg.workers != .inProcess {
            let dir = (out ?? "state/eval") + "/cluster"
            try FileIO.makeDirectory(dir)
            let p = try WorkerPool.start(cfg, directory: dir, logLevel: clusterOptions.logLevel)
            pool = p
            let backend = try ClusterEvaluation(pool: p, records: AbsolutePath.of(records), options: factsFormat.options, generation: gen,
                                                generationRecords: evaluator.generationRecords,
                                                snippets: noGeneration ? nil : AbsolutePath.of(snippets), directory: dir + "/deltas")
            backend.shardRecords = shardRecords
            campaign.backend = backend
        }
        defer { pool?.shutdown() }

        let report = try campaign.run(records: recs, firstIndex: offset, name: (records as NSString).lastPathComponent)
        if let dir = out {
            try FileIO.makeDirectory(dir)
            try report.json().write(toFile: dir + "/report.json", atomically: true, encoding: .utf8)
            try report.markdown().write(toFile: dir + "/report.md", atomically: true, encoding: .utf8)
            try EvalPlot.svg([(report.method, EvalPlot.points(report))]).write(toFile: dir + "/plot.svg", atomically: true, encoding: .utf8)
            log("report: \(dir)/report.json, report.md, plot.svg")
            campaign.removeCheckpoints()   // the report holds every record's results now
        }
        print(report.markdown())
        if json { print(EvalReport.headlineJSON(report.headline(generation: !noGeneration))) }
    }

    /// A progress line (done/total, rate, ETA) per long step; a new step starts a new line.
    func progressReporter() -> (String, Int, Int) -> Void {
        var current = "", start = 0.0
        return { what, done, total in
            let now = ProcessStats.now()
            if what != current || done == 0 { current = what; start = now }
            let rate = Double(done) / max(now - start, 1e-9)
            progressLine(what, done: done, total: total, rate: rate * 60, unit: "per min",
                         eta: done > 0 ? Double(total - done) / rate : nil)
            if done == total { finishProgress() }
        }
    }

    /// --tune-memit-lambda's values: positive, finite.
    static func lambdas(_ list: String) throws -> [Double] {
        try list.split(separator: ",").map { t -> Double in
            guard let v = Double(t.trimmingCharacters(in: .whitespaces)), v.isFinite, v > 0 else {
                throw ValidationError("--tune-memit-lambda: \"\(t)\" is not a positive number")
            }
            return v
        }
    }

    func sweep(_ list: String, campaign: EvalCampaign, records recs: [EditRequest], evaluator: CounterFactEvaluator) throws {
        let lambdas = try Self.lambdas(list)
        let stats = try campaign.statistics()
        let editor = try campaign.makeEditor(.memit, statistics: stats)
        let batch = Array(recs.prefix(batchSize))
        let t0 = Date()
        let trials = try MemitLambdaSweep.run(editor: editor, statistics: stats, batch: batch, lambdas: lambdas, evaluator: evaluator) { log($0) }
        print("| λm | efficacy | specificity |\n|---|---|---|")
        for t in trials { print(String(format: "| %g | %.1f | %.1f |", t.lambda, t.efficacy, t.specificity)) }
        let chosen = MemitLambdaSweep.choose(trials)
        print("largest λm with efficacy ≥ 90 on this batch of \(batch.count): " + (chosen.map { String(format: "%g", $0) } ?? "none"))
        if json {
            var h: [String: Double] = ["edits": Double(batch.count), "seconds": Date().timeIntervalSince(t0)]
            for t in trials { h[String(format: "efficacy_lambda_%g", t.lambda)] = t.efficacy; h[String(format: "specificity_lambda_%g", t.lambda)] = t.specificity }
            if let chosen { h["chosen_lambda"] = chosen }
            print(EvalReport.headlineJSON(h))
        }
    }

    func drawPlot() throws {
        let reports = try plot.map { try EvalReport.read(path: $0) }
        if let mixed = EvalPlot.mixedInputs(reports, paths: plot) { log("warning: " + mixed) }
        let dir = out ?? "."
        try FileIO.makeDirectory(dir)
        // One curve per run: a campaign's states evaluated after 500 and after 1,000 edits join up.
        try EvalPlot.svg(EvalPlot.series(reports)).write(toFile: dir + "/plot.svg", atomically: true, encoding: .utf8)
        print(EvalReport.comparison(reports))
        for r in reports { print("## \(r.label), \(r.records)\n\n" + r.markdown()) }
        log("plot: \(dir)/plot.svg")
    }
}
