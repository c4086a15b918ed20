import ArgumentParser
import Foundation
import Shared

/// `alphaedit edit`: a resumable edit campaign in one process (the distributed pipeline farms out
/// the same steps). Running the same command again on the same state directory continues it.
struct Edit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Edit facts (AlphaEdit or MEMIT); resumable via --state.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Facts: CounterFact JSON lines or a list of {prompt, subject, target}.") var facts: String
    @Option(help: "alphaedit or memit.") var method: String = "alphaedit"
    @Option(help: "Edits per batch.") var batchSize = 100
    @Option(help: "Use only the first N facts.") var limit: Int?
    @Option(help: "State directory (created, or resumed).") var state = "state/run"
    @Option(help: "Corpus for the K0 statistics.") var corpus = "../shared/data/wiki-triplets/trex.jsonl"
    @Option(help: "Sentences of the corpus for K0.") var covSentences = 2000
    @Option(help: "Learning rate of v*.") var vLr: Float?
    @Option(help: "Seed of the context templates.") var seed: UInt64 = 0

    func run() throws {
        guard let m = EditMethod(rawValue: method) else { throw ValidationError("--method must be alphaedit or memit") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        let cfg = try modelOptions.resolved()
        let requests = try FactsFile.read(path: facts, limit: limit)   // every record checked before any work
        let model = try LlamaModel(path: cfg.model)
        let tok = try BPETokenizer(gguf: model.gguf)
        try FileManager.default.createDirectory(atPath: state + "/deltas", withIntermediateDirectories: true)

        var st: EditState
        if FileManager.default.fileExists(atPath: state + "/manifest.json") {
            st = try EditState.load(directory: state)
            guard st.manifest.method == m else { throw ValidationError("\(state) holds a \(st.manifest.method.rawValue) campaign") }
            try st.apply(to: model)
            log("resuming \(state): \(st.manifest.batches.count) batches already committed")
        } else {
            var hp = EditHyperparameters()
            if let vLr { hp.vLR = vLr }
            let templates = try ContextTemplates.generate(model: model, tokenizer: tok, seed: seed)
            st = EditState(directory: state, manifest: EditManifest(model: cfg.model, method: m, hyperparameters: hp, templates: templates))
            // One forward pass per thread, one BLAS thread each: faster here than one pass on all threads
            // (see CovarianceBuilder.workers).
            BLAS.setThreads(1)
            defer { BLAS.setThreads(cfg.threads) }
            let builder = try CovarianceBuilder(model: model, tokenizer: tok, layers: hp.layers, workers: cfg.threads)
            let stats = try builder.build(corpus: corpus, range: 0..<covSentences) { p in
                progressLine("K0 statistics", done: p.sentencesDone, total: p.sentencesTotal, rate: p.tokensPerSecond, unit: "tokens/s", eta: p.eta)
            }
            finishProgress()
            switch m {
            case .alphaedit:
                let proj = try NullSpaceProjectorSet(statistics: stats, threshold: hp.nullSpaceThreshold)
                for p in proj.projectors {
                    log("layer \(p.layer): null space keeps \(p.keptDimension)/\(p.f) directions (\(String(format: "%.1f", 100 * p.keptFraction))%), \(p.spectrum)")
                }
                try proj.write(to: st.url("projector.bin"))
                st.manifest.base = try st.ref("projector.bin")
            case .memit:
                try stats.write(to: st.url("statistics.bin"))
                st.manifest.base = try st.ref("statistics.bin")
            }
            try st.save()
        }
        let hp = st.manifest.hyperparameters
        guard let base = st.manifest.base else { throw StateError.badManifest(state, "no projector or statistics") }
        let basePath = try st.verified(base)
        let proj = m == .alphaedit ? try NullSpaceProjectorSet.read(from: basePath) : nil
        let stats = m == .memit ? try KeyStatistics.read(from: basePath) : nil
        let cp = try st.manifest.cp.map { try SequentialState.read(from: try st.verified($0)) }
        let editor = try Editor(model: model, tokenizer: tok, hp: hp, method: m, templates: st.manifest.templates,
                                projectors: proj, statistics: stats, state: cp)

        let batches = stride(from: 0, to: requests.count, by: batchSize).map { Array(requests[$0..<min($0 + batchSize, requests.count)]) }
        let start = ProcessStats.now()
        var doneRequests = st.manifest.batches.reduce(0) { $0 + $1.requests }
        let scorer = TargetScorer(model: model, tokenizer: tok)
        for (bi, batch) in batches.enumerated() where bi >= st.manifest.batches.count {
            let pre = try scorer.efficacy(batch)
            let out = try editor.apply(batch) { n in
                let el = ProcessStats.now() - start
                let rate = Double(doneRequests + n) / max(el, 1e-9)
                progressLine("batch \(bi + 1)/\(batches.count) v*", done: doneRequests + n, total: requests.count,
                             rate: rate * 60, unit: "requests/min", eta: Double(requests.count - doneRequests - n) / max(rate, 1e-9))
            }
            finishProgress()
            doneRequests += batch.count
            let rel = String(format: "deltas/batch-%05d.bin", bi + 1)
            try BatchDeltas(rows: model.config.hidden, cols: model.config.ffn, deltas: out.deltas).write(to: st.url(rel))
            try editor.state.write(to: st.url("cp.bin"))
            st.manifest.cp = try st.ref("cp.bin")
            st.manifest.batches.append(.init(index: bi + 1, requests: batch.count, deltas: try st.ref(rel), seconds: out.totalSeconds))
            try st.save()  // the commit point of the batch
            let post = try scorer.efficacy(batch)
            // Efficacy needs each record's true target (CounterFact records have it; simple lists do not).
            let eff = pre.isNaN ? "" : String(format: "; efficacy on its rewrite prompts %.1f → %.1f", pre, post)
            log(String(format: "batch %d/%d committed: %d edits, v* %.1f s, solve %.2f s, total %.1f s",
                       bi + 1, batches.count, batch.count, out.zSeconds, out.solveSeconds, out.totalSeconds) + eff)
        }
        print("state: \(state) (\(st.manifest.batches.count) batches, \(doneRequests) edits)")
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
