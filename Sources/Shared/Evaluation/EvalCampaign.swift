// The sequential evaluation protocol of docs/algorithm.md §6 in one process: evaluate the unedited model on
// the records, edit them in batches of B with the existing engine (Editor; K0 statistics and
// projector from CovarianceBuilder / NullSpaceProjectorSet, as `alphaedit edit` sets them up), take
// general-capability checkpoints every K edits, and evaluate every edited record after the last batch.
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store
import Foundation

public struct EvalCampaignSettings: Sendable {
    public var method: EditMethod?          // nil: no edits (the pre-edit row only)
    public var batchSize = 100
    public var hp = EditHyperparameters()
    public var templateSeed: UInt64 = 0
    public var corpus = "../shared/data/wiki-triplets/trex.jsonl"
    public var covSentences = 2000
    /// K0 statistics file: read when present, written after a build otherwise (nil: never stored).
    public var covCache: String?
    /// Statistics built elsewhere (`alphaedit cov`'s statistics.bin), read (never written) when the cache
    /// does not hold this run's.
    public var covArtifact: String?
    /// An existing edit state to evaluate instead of editing (its batches are applied as they are).
    public var state: String?
    public var generalEvery = 500
    /// General-capability items per task (0: none) and perplexity sentences.
    public var generalItems = 100
    public var perplexitySentences = 200
    public var generalDirectory = "../shared/data/general"
    public var perplexityCorpus = "../shared/data/wiki-triplets/wikitext2.txt"
    /// Prompts for the hidden-shift measure (0: none).
    public var hiddenPrompts: [String] = []
    public var threads = 2
    /// The model file's name and checksum, recorded in the report (and compared by `preFrom`).
    public var modelIdentity: String?
    /// An earlier report whose pre-edit row (per-record results and general capability at 0 edits)
    /// this run reuses instead of evaluating the unedited model again; checked to be of the same
    /// model, records and evaluation settings (`EvalCampaign.reusablePre`).
    public var preFrom: (path: String, report: EvalReport)?
    /// Where the unedited and the post-edit evaluation keep their per-record results as they come
    /// (EvalCheckpoint; nil: nowhere), so that a run started again with the same inputs goes on from
    /// them. The post-edit one only for an existing `state` (edits made by this run are not kept).
    public var checkpointDirectory: String?
    /// Records per evaluation call between two writes of the checkpoint (more when the cluster's workers
    /// need more to stay busy, `EvalBackend.preferredCallRecords`).
    public var checkpointRecords = 50
    /// What else the results depend on that the checkpoint must match (e.g. the attribute snippets file's
    /// path and checksum), added to its key.
    public var checkpointInputs: [String] = []
    /// The inputs besides the records that the pre-edit results depend on (the snippets' checksum),
    /// recorded in the report and compared by `preFrom`.
    public var evaluationInputs = ""
    public init() {}
}

/// Where a campaign's CounterFact evaluations and v* run when not in this process (the cluster, see
/// Cluster/ClusterEvaluation.swift). The solve, general capability and the hidden shift stay here, on
/// this process's copy of the model, which every committed batch also edits.
public protocol EvalBackend: AnyObject {
    /// The records' evaluation on the weights of the batches committed so far; `records` are records
    /// `firstIndex…` of the campaign's records file.
    func evaluate(_ records: [EditRequest], firstIndex: Int, progress: (Int) -> Void) throws -> EvalShard
    /// v* of batch `index` (1, 2, …) on the weights of batches 1..<index.
    func targets(_ batch: [EditRequest], batch index: Int, hyperparameters: EditHyperparameters,
                 templates: ContextTemplates, progress: (Int) -> Void) throws -> [ZResult]
    /// Records per evaluation call that keep every worker busy (a checkpointed evaluation calls with at least these).
    var preferredCallRecords: Int { get }
    /// Batch `index` is applied here: from now on evaluations and v* use its deltas.
    func committed(batch index: Int, deltas: BatchDeltas) throws
    /// The same for deltas already in a checked BatchDeltas file (an existing edit state's).
    func committed(batch index: Int, file: String) throws
}

public final class EvalCampaign {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let evaluator: CounterFactEvaluator
    public let settings: EvalCampaignSettings
    public var log: (String) -> Void = { _ in }
    /// (what, done, total) during long steps: CounterFact evaluations (records) and v* (requests).
    public var progress: (String, Int, Int) -> Void = { _, _, _ in }
    /// nil: everything in this process.
    public var backend: EvalBackend?
    public private(set) var editor: Editor?

    public init(model: LlamaModel, tokenizer: BPETokenizer, evaluator: CounterFactEvaluator, settings: EvalCampaignSettings) {
        self.model = model; self.tokenizer = tokenizer; self.evaluator = evaluator; self.settings = settings
    }

    /// K0 statistics over the corpus (cached in `covCache`).
    public func statistics() throws -> KeyStatistics {
        let s = settings
        // A cached file is taken only when it records this model, corpus, range and layers (K0Source.swift):
        // the cache's name alone does not say which corpus or model file built it.
        // A model read from memory has no file to identify it by: never cached.
        let wanted = try model.gguf.path.map { path in
            K0Source(modelChecksum: try EditState.fileChecksum(path), corpusChecksum: try EditState.fileChecksum(s.corpus),
                     sentences: 0..<s.covSentences, layers: s.hp.layers,
                     note: "model \(URL(fileURLWithPath: path).lastPathComponent), corpus \(URL(fileURLWithPath: s.corpus).lastPathComponent)")
        }
        let cache = wanted == nil ? nil : s.covCache
        for c in [cache, wanted == nil ? nil : s.covArtifact].compactMap({ $0 }) where FileManager.default.fileExists(atPath: c) {
            guard let wanted else { break }
            // A cache is never fatal: an unreadable one (truncated, another format) is built again.
            do {
                let st = try KeyStatistics.read(from: c)
                if let why = st.mismatch(wanted) {
                    log("K0 statistics in \(c) are not this run's (\(why))")
                } else {
                    log("K0 statistics from \(c)"); return st
                }
            } catch {
                log("K0 statistics in \(c) are unreadable (\(error))")
            }
        }
        let t0 = ProcessStats.now()
        let st = try CovarianceBuilder(model: model, tokenizer: tokenizer, layers: s.hp.layers, workers: s.threads)
            .build(corpus: s.corpus, range: 0..<s.covSentences, provenance: wanted?.provenance)
        log(String(format: "K0 statistics: %d sentences in %.0f s", s.covSentences, ProcessStats.now() - t0)
            + (cache.map { ", stored in \($0)" } ?? ""))
        if let c = cache { try st.write(to: c) }
        return st
    }

    /// An editor on the unedited model for `method`.
    public func makeEditor(_ method: EditMethod) throws -> Editor {
        try makeEditor(method, statistics: try statistics())
    }

    /// AlphaEdit's projectors are read a layer at a time when the solve reaches it, from a file this call
    /// writes (in `checkpointDirectory`, else the temporary directory) and unlinks once open, so nothing
    /// is left behind, not even by a killed run; held whole, they stayed in memory for the whole campaign
    /// (Qwen2.5-0.5B's 5 layers: 0.66 GB; an 8B model's: up to 5.7 GB), as `edit` campaigns read theirs
    /// (NullSpaceProjectorFile). MEMIT with the projection keeps them in memory beside its statistics.
    public func makeEditor(_ method: EditMethod, statistics stats: KeyStatistics) throws -> Editor {
        var proj: NullSpaceProjectorSet?
        var file: NullSpaceProjectorFile?
        if settings.hp.effectiveStages.projects(method) || method == .alphaedit {
            let p = try NullSpaceProjectorSet(statistics: stats, hyperparameters: settings.hp)
            log("null space kept: " + p.projectors.map { String(format: "layer %d %.1f%% (%.2g of C0's trace)", $0.layer, 100 * $0.keptFraction, $0.keptTraceShare) }.joined(separator: ", "))
            if method == .alphaedit { file = try Self.unlinkedFile(p, in: settings.checkpointDirectory) } else { proj = p }
        }
        let templates = try ContextTemplates.generate(model: model, tokenizer: tokenizer, seed: settings.templateSeed)
        return try Editor(model: model, tokenizer: tokenizer, hp: settings.hp, method: method, templates: templates,
                          projectors: proj, statistics: method == .memit ? stats : nil, projectorFile: file)
    }

    /// `projectors` written to a file of their own in `directory` (nil: the temporary directory), opened,
    /// then unlinked: it lives as long as the returned reader.
    static func unlinkedFile(_ projectors: NullSpaceProjectorSet, in directory: String?) throws -> NullSpaceProjectorFile {
        let dir = directory ?? FileManager.default.temporaryDirectory.path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/.projectors-\(ProcessInfo.processInfo.processIdentifier)-\(UInt64.random(in: 0 ... .max)).bin"
        defer { unlink(path) }
        try projectors.write(to: path)
        return try NullSpaceProjectorFile(path: path)
    }

    func general() throws -> GeneralCapabilityResult? {
        guard settings.generalItems > 0 else { return nil }
        let t0 = ProcessStats.now()
        let g = try GeneralCapability(model: model, tokenizer: tokenizer, directory: settings.generalDirectory,
                                      itemsPerTask: settings.generalItems, perplexityCorpus: settings.perplexityCorpus,
                                      sentences: settings.perplexitySentences).measure()
        log(String(format: "general capability: mean F1 %.1f, perplexity %.2f (%.0f s)", g.meanF1, g.perplexity, ProcessStats.now() - t0))
        return g
    }

    func evaluate(_ records: [EditRequest], firstIndex: Int, _ what: String) throws -> EvalShard {
        let report = { (n: Int) in self.progress(what, n, records.count) }
        report(0)
        return try evaluateNow(records, firstIndex: firstIndex, progress: report)
    }

    private func evaluateNow(_ records: [EditRequest], firstIndex: Int, progress: (Int) -> Void) throws -> EvalShard {
        if let backend { return try backend.evaluate(records, firstIndex: firstIndex, progress: progress) }
        return try evaluator.evaluate(records, firstIndex: firstIndex, progress: progress)
    }

    /// The checkpoint of a phase on the weights `weights` (nil without a checkpoint directory).
    func checkpoint(_ phase: String, weights: [String], records: [EditRequest], firstIndex: Int) throws -> EvalCheckpoint? {
        guard let dir = settings.checkpointDirectory else { return nil }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ev = evaluator
        let how = "generation " + (ev.generation.map { "\($0)" } ?? "none") + ", generating records "
            + (ev.generationRecords.map { "\($0)" } ?? "all") + ", snippets " + (ev.snippets == nil ? "none" : "given")
            + settings.checkpointInputs.map { ", " + $0 }.joined()
        let key = try EvalCheckpoint.key(phase: phase, model: settings.modelIdentity ?? "unnamed model", weights: weights,
                                         records: records, firstIndex: firstIndex, evaluation: how)
        let cp = EvalCheckpoint(path: dir + "/partial-\(phase).json", key: key, note: log)
        checkpointPaths.append(dir + "/partial-\(phase).json")
        return cp
    }

    /// The evaluation of `records` in chunks of `checkpointRecords`, each chunk's results added to the
    /// checkpoint as it ends; records it already holds are not evaluated again.
    func evaluate(_ records: [EditRequest], firstIndex: Int, _ what: String, checkpoint: EvalCheckpoint?) throws -> EvalShard {
        guard var cp = checkpoint else { return try evaluate(records, firstIndex: firstIndex, what) }
        let todo = records.indices.filter { cp.records[firstIndex + $0] == nil }
        let label = todo.count == records.count ? what : "\(what), the other \(records.count - todo.count) done before"
        if todo.count < records.count { log("\(what): \(records.count - todo.count) of \(records.count) records done before (\(cp.path ?? "in memory"), or an earlier report)") }
        progress(label, 0, todo.count)
        var done = 0, i = 0, unwritable = false
        let callRecords = max(1, settings.checkpointRecords, backend?.preferredCallRecords ?? 0)
        while i < todo.count {
            var j = i + 1   // a run of consecutive records, at most checkpointRecords long
            while j < todo.count, j - i < callRecords, todo[j] == todo[j - 1] + 1 { j += 1 }
            let base = done
            let shard = try evaluateNow(Array(records[todo[i]...todo[j - 1]]), firstIndex: firstIndex + todo[i]) {
                self.progress(label, base + $0, todo.count)
            }
            do { try cp.add(shard) } catch {   // the evaluation matters more than its checkpoint: go on without it
                if !unwritable { log("cannot write \(cp.path ?? "") (\(error)): going on without keeping the records done") }
                unwritable = true
            }
            done += j - i
            i = j
        }
        return EvalShard(records: try records.indices.map { k in
            guard let r = cp.records[firstIndex + k] else { throw EvalError.unreadable("record \(firstIndex + k) was not evaluated") }
            return r
        })
    }

    /// The checkpoint files this run used: remove them once its report is written.
    public private(set) var checkpointPaths: [String] = []

    public func removeCheckpoints() {
        for p in checkpointPaths { try? FileManager.default.removeItem(atPath: p) }
    }

    /// Runs the protocol on `records` (record `firstIndex` of `name` first).
    public func run(records: [EditRequest], firstIndex: Int, name: String) throws -> EvalReport {
        let s = settings
        let start = ProcessStats.now()
        var evalTime = 0.0, editTime = 0.0
        func timed<T>(_ f: () throws -> T) rethrows -> T { let t = ProcessStats.now(); defer { evalTime += ProcessStats.now() - t }; return try f() }

        let pre: EvalShard, general0: GeneralCapabilityResult?
        if let (path, earlier) = s.preFrom {
            let (shard, general) = try Self.reusablePre(earlier, path: path, records: records, firstIndex: firstIndex, name: name,
                                                        settings: s, generation: evaluator.generation, generationRecords: evaluator.generationRecords)
            general0 = general
            if shard.records.count == records.count {
                pre = shard
                log("pre-edit row of \(records.count) records from \(path)")
            } else {  // the earlier run evaluated some of these records: the others here, into the same checkpoint
                log("pre-edit results of \(shard.records.count) of \(records.count) records from \(path); evaluating the others")
                var cp = try checkpoint("pre", weights: [], records: records, firstIndex: firstIndex)
                    ?? EvalCheckpoint(path: nil, key: "pre, in memory")
                cp.seed(shard)
                pre = try timed { try evaluate(records, firstIndex: firstIndex, "pre-edit evaluation", checkpoint: cp) }
            }
        } else {
            log("evaluating the unedited model on \(records.count) records")
            let cp = try checkpoint("pre", weights: [], records: records, firstIndex: firstIndex)
            pre = try timed { try evaluate(records, firstIndex: firstIndex, "pre-edit evaluation", checkpoint: cp) }
            general0 = try timed { try general() }
        }
        let known = pre.knownIndices
        log("pre-edit: " + Self.brief(pre.summary()) + "; the model prefers the true target on \(known.count) records")
        var curve = [EvalPoint(edits: 0, summary: pre.summary(), general: general0)]
        let hiddenBefore = s.hiddenPrompts.isEmpty ? nil
            : try timed { try HiddenStates.capture(model: model, tokenizer: tokenizer, prompts: s.hiddenPrompts, layer: s.hp.zLayer) }

        var edits = 0
        var hp: EditHyperparameters?
        var stateMethod: EditMethod?
        var stateWeights: [String]?   // the state's deltas checksums: what the post-edit checkpoint is of
        if let dir = s.state {
            let st = try EditState.load(directory: dir)
            if let path = model.gguf.path { try st.checkModel(path: path, gguf: model.gguf) }
            try st.apply(to: model)
            if let backend {
                for (i, b) in st.manifest.batches.enumerated() {
                    try backend.committed(batch: i + 1, file: try st.verified(b.deltas))
                }
            }
            edits = st.manifest.batches.reduce(0) { $0 + $1.requests }
            hp = st.manifest.hyperparameters; stateMethod = st.manifest.method
            stateWeights = st.manifest.batches.map(\.deltas.checksum)
            log("applied \(dir): \(st.manifest.batches.count) batch\(st.manifest.batches.count == 1 ? "" : "es"), \(edits) edit\(edits == 1 ? "" : "s")")
        } else if let m = s.method {
            let t0 = ProcessStats.now(), eval0 = evalTime
            let ed = try makeEditor(m)
            editor = ed
            hp = s.hp
            for b in stride(from: 0, to: records.count, by: s.batchSize) {
                let batch = Array(records[b..<min(b + s.batchSize, records.count)])
                let index = b / s.batchSize + 1
                let what = "batch \(index) v*"
                progress(what, 0, batch.count)
                let remote = backend.map { backend in { (report: (Int) -> Void) in
                    try backend.targets(batch, batch: index, hyperparameters: s.hp, templates: ed.templates, progress: report)
                } }
                let out = try ed.editBatch(batch, remoteTargets: remote, progress: { self.progress(what, $0, batch.count) }) { deltas, _ in
                    try backend?.committed(batch: index, deltas: deltas)
                }
                edits += batch.count
                let losses = out.z.map { String(format: "%.2f", $0.losses.last?.total ?? .nan) }.joined(separator: " ")
                log(String(format: "batch of %d: v* %.0f s, solve %.2f s; edits %d; v* final losses: %@",
                           batch.count, out.zSeconds, out.solveSeconds, edits, losses))
                for n in out.filterNotes { log("  " + n) }
                if let r = out.reachedSummary(layer: s.hp.zLayer, firstRequest: firstIndex + b + 1) { log("  " + r) }
                if edits < records.count, edits % s.generalEvery == 0 {
                    let done = try timed { try evaluate(Array(records[..<edits]), firstIndex: firstIndex, "evaluation after \(edits) edits") }
                    curve.append(EvalPoint(edits: edits, summary: done.summary(), general: try timed { try general() }))
                    log("after \(edits) edits: " + Self.brief(done.summary()))
                }
            }
            editTime = ProcessStats.now() - t0 - (evalTime - eval0)
        }
        let post: EvalShard
        var shift: HiddenShift?
        if edits > 0 {
            log("evaluating the edited model")
            let cp = try stateWeights.flatMap { try checkpoint("post", weights: $0, records: records, firstIndex: firstIndex) }
            post = try timed { try evaluate(records, firstIndex: firstIndex, "post-edit evaluation", checkpoint: cp) }
            curve.append(EvalPoint(edits: edits, summary: post.summary(), general: try timed { try general() }))
            if let hiddenBefore {
                let after = try timed { try HiddenStates.capture(model: model, tokenizer: tokenizer, prompts: s.hiddenPrompts, layer: s.hp.zLayer) }
                shift = try HiddenShift(before: hiddenBefore, after: after)
            }
        } else {
            post = pre
        }
        // An evaluated state reports the method its campaign ran (so its label names the method and stages).
        let method = (stateMethod ?? s.method)?.rawValue ?? "none"
        return EvalReport(method: method, model: s.modelIdentity, records: Self.recordsLabel(name, firstIndex, records.count), recordCount: records.count,
                          batchSize: s.batchSize, edits: edits, hyperparameters: hp, generation: evaluator.generation,
                          pre: pre.summary(), post: post.summary(), preKnown: pre.summary(only: known), postKnown: post.summary(only: known),
                          curve: curve, hiddenShift: shift, seconds: ProcessStats.now() - start, editSeconds: editTime,
                          evalSeconds: evalTime, preShard: pre, postShard: post,
                          preInputs: EvalReport.PreInputs(evaluation: s.evaluationInputs, records: records, firstIndex: firstIndex))
    }

    static func recordsLabel(_ name: String, _ first: Int, _ count: Int) -> String { "\(name) [\(first), \(first + count))" }

    /// The pre-edit row of `earlier` if it was made for this run's inputs: the same model (when both
    /// name theirs), records (file, range and case ids), generation settings and generated records,
    /// and general capability at 0 edits with as many items (or none on both sides). Any difference
    /// is an error naming it: a row of other inputs would silently change every "pre" figure.
    /// The per-record pre-edit results (and general capability at 0 edits) of an earlier report that
    /// this run may take: same model, records file, generation and general-capability settings, and for
    /// each of its records that lies in this run's range the same case id. It may cover all of this run's
    /// records or part of them (an earlier, shorter run of the same file: the unedited row of a 500-edit
    /// point serves the 1,000-edit one); the records it returns are those in this run's range.
    static func reusablePre(_ earlier: EvalReport, path: String, records: [EditRequest], firstIndex: Int, name: String,
                            settings s: EvalCampaignSettings, generation: GenerationSettings?,
                            generationRecords: Range<Int>?) throws -> (EvalShard, GeneralCapabilityResult?) {
        func refuse(_ what: String) -> EvalError { .mismatch("--pre-from \(path): \(what)") }
        guard let shard = earlier.preShard else { throw refuse("the report has no per-record pre-edit results") }
        if let a = earlier.model, let b = s.modelIdentity, a != b { throw refuse("made with model \(a), this run uses \(b)") }
        let label = recordsLabel(name, firstIndex, records.count)
        guard earlier.records.hasPrefix(name + " [") else { throw refuse("records \(earlier.records), this run evaluates \(label)") }
        let range = firstIndex..<(firstIndex + records.count)
        let inside = shard.records.filter { range.contains($0.index) }
        guard !inside.isEmpty else { throw refuse("records \(earlier.records) has none of this run's \(label)") }
        for r in inside where r.caseID != records[r.index - firstIndex].caseID {
            throw refuse("its per-record results are not those of these records (record \(r.index): case id \(r.caseID.map(String.init) ?? "none") against \(records[r.index - firstIndex].caseID.map(String.init) ?? "none"))")
        }
        // The records' contents (a zsRE record has no case id; another file of the same name; --zsre-target)
        // and the snippets: compared where the earlier report recorded them (reports since 2026-12-08).
        if let had = earlier.preInputs {
            if had.evaluation != s.evaluationInputs {
                throw refuse("made with \(had.evaluation.isEmpty ? "no snippets" : had.evaluation), this run with "
                             + (s.evaluationInputs.isEmpty ? "no snippets" : s.evaluationInputs))
            }
            let now = EvalReport.PreInputs(evaluation: "", records: records, firstIndex: firstIndex)
            for r in inside where had.recordDigests[String(r.index)] != now.recordDigests[String(r.index)] {
                throw refuse("record \(r.index) differs from the one it evaluated (its text, subject or targets)")
            }
        }
        guard earlier.generation == generation else {
            func text(_ g: GenerationSettings?) -> String { g.map { "\($0.maxTokens) tokens, top-k \($0.topK), seed \($0.seed)" } ?? "off" }
            throw refuse("generation \(text(earlier.generation)), this run: \(text(generation))")
        }
        let generated = Set(inside.filter { $0.fluency != nil }.map(\.index))
        let asked = generation == nil ? Set<Int>() : Set(inside.map(\.index).filter { generationRecords?.contains($0) ?? true })
        guard generated == asked else { throw refuse("it generated for \(generated.count) of these records, this run generates for \(asked.count)") }
        let general = earlier.curve.first { $0.edits == 0 }?.general
        let items = general?.items ?? 0
        guard items == s.generalItems else {
            throw refuse("general capability with \(items) items per task, this run asks for \(s.generalItems)")
        }
        if let general, general.sentences != s.perplexitySentences {
            throw refuse("perplexity over \(general.sentences) sentences, this run asks for \(s.perplexitySentences)")
        }
        return (EvalShard(records: inside), general)
    }

    static func brief(_ s: EvalSummary) -> String {
        [EvalMetric.efficacy, .generalization, .specificity, .fluency, .consistency].compactMap { m in
            s[m].map { String(format: "%@ %.1f", m.rawValue, $0) }
        }.joined(separator: ", ")
    }
}
