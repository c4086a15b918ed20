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
    @Option(help: "Facts: CounterFact (nested or flat), zsRE, or {prompt, subject, target} records; JSON lines or one array.") var facts: String
    @OptionGroup var factsFormat: FactsFormatOptions
    @Option(help: "alphaedit or memit.") var method: String = "alphaedit"
    @OptionGroup var stageOptions: StageOptions
    @Option(help: "Edits per batch.") var batchSize = 100
    @Option(help: "Use only the first N facts.") var limit: Int?
    @Option(help: "State directory (created, or resumed; default: the config's `state`).") var state: String?
    @Option(help: "Corpus for the K0 statistics (default: the config's `corpus`).") var corpus: String?
    @Option(help: "Sentences of the corpus for K0 (default: the config's `cov_sentences`).") var covSentences: Int?
    @Option(help: "Learning rate of v*.") var vLr: Float?
    @Option(help: "AlphaEdit's λ: the weight of ‖ΔW‖² in the solve (default: the config's `lambda`, else the model's own).") var lambda: Double?
    @Option(help: "Edited layers, e.g. 3-7 (default: the config's `layers`, else the model's own).") var layers: String?
    @Option(help: "Seed of the context templates.") var seed: UInt64 = 0
    @Option(help: "Commit at most N batches in this run, then stop (run again to continue).") var maxBatches: Int?
    @Option(help: ArgumentHelp("K0 statistics built by `alphaedit cov` (default: the config's `artifacts`/statistics.bin when it is this campaign's).",
                               discussion: "Used instead of building K0 when it records this campaign's model, corpus, sentences 0..<N and layers; a file given here that does not is an error."))
    var statistics: String?
    @Flag(help: ArgumentHelp("Grow the state's campaign by the facts after its own (records appended to the file, or a larger --limit).",
                             discussion: "The campaign's requests must be the first records of --facts, field for field; the new ones become further batches of its batch size, after its committed ones."))
    var extend = false

    func run() throws {
        guard let m = EditMethod(rawValue: method) else { throw ValidationError("--method must be alphaedit or memit") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        if let vLr, !(vLr.isFinite && vLr > 0) { throw ValidationError("--v-lr must be a positive number") }
        if let lambda, !(lambda.isFinite && lambda > 0) { throw ValidationError("--lambda must be a positive number") }
        var cfg = try modelOptions.resolved(state: state, orConfigState: true)
        try clusterOptions.apply(to: &cfg)
        var hp = cfg.hyperparameters
        stageOptions.apply(to: &hp)
        if let vLr { hp.vLR = vLr }
        if let lambda { hp.lambda = lambda }
        for o in stageOptions.ineffective(hp, method: m) { log("note: \(o) has no effect") }
        if lambda != nil, m == .memit { log("note: --lambda has no effect: it is AlphaEdit's λ (MEMIT's is --memit-lambda or `memit_lambda`)") }
        if let layers {
            do { hp.layers = try LayerList.parse(layers) } catch { throw ValidationError("--layers \(layers): \(error)") }
        }
        let request = EditCampaignRequest(
            facts: facts, factsOptions: factsFormat.options, limit: limit, method: m, batchSize: batchSize, state: state ?? cfg.state,
            corpus: corpus ?? cfg.corpus, covSentences: covSentences ?? cfg.covSentences, hyperparameters: hp,
            templateSeed: seed, threads: cfg.threads, shardSentences: cfg.shardSentences)
        guard request.covSentences > 0 else { throw ValidationError("--cov-sentences must be positive") }
        if let maxBatches, maxBatches < 1 { throw ValidationError("--max-batches must be at least 1") }
        var r = request
        r.maxBatches = maxBatches
        // `alphaedit cov` writes its statistics there; another build (corpus, range, layers) is passed over.
        r.statistics = statistics ?? (cfg.artifacts + "/" + Cov.statisticsFile)
        r.statisticsRequired = statistics != nil
        r.extend = extend
        let events = EditCampaignEvents(log: log, progress: progressLine, finishProgress: finishProgress)
        let done = try EditCampaign.run(r, modelPath: cfg.model, cluster: cfg, logLevel: clusterOptions.logLevel,
                                        events: events)
        print("state: \(request.state) (\(done.batchesCommitted) batch\(done.batchesCommitted == 1 ? "" : "es"), \(done.edits) edit\(done.edits == 1 ? "" : "s"))")
    }
}

func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// One progress line on stderr, rewritten in place.
func progressLine(_ what: String, done: Int, total: Int, rate: Double, unit: String, eta: Double?) {
    let etaText = eta.map { String(format: "ETA %.0fs", $0) } ?? "ETA –"
    // No rate yet (nothing computed by this run so far): a dash rather than "0.0".
    let rateText = eta == nil && rate == 0 ? "–" : String(format: "%.1f", rate)
    let line = String(format: "\r%@: %d/%d  %@ %@  %@   ", what, done, total, rateText, unit, etaText)
    FileHandle.standardError.write(Data(line.utf8))
}

func finishProgress() { FileHandle.standardError.write(Data("\n".utf8)) }

/// One JSON object on stdout, keys sorted (the `--json` output of every command).
func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys]
    print(String(decoding: try enc.encode(value), as: UTF8.self))
}
