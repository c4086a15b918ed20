// The result of one `alphaedit eval` run: summaries (all records and the facts the unedited model
// knows), the curve against the number of edits, general capability, hidden shift and timings; as
// JSON for machines and a Markdown table for people.
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store
import Foundation

/// Figures at one point of a sequential run (0 = unedited).
public struct EvalPoint: Codable, Equatable, Sendable {
    public var edits: Int
    /// CounterFact metrics on the records edited so far (all records at 0 edits).
    public var summary: EvalSummary
    public var general: GeneralCapabilityResult?
}

public struct EvalReport: Codable, Sendable {
    public var method: String
    /// The model file's name and FNV-1a-64 checksum (reports from before it was kept: nil).
    public var model: String?
    public var records: String          // file and range, e.g. "dev.jsonl [0, 20)"
    public var recordCount: Int
    public var batchSize: Int
    public var edits: Int
    public var hyperparameters: EditHyperparameters?
    public var generation: GenerationSettings?
    public var pre: EvalSummary
    public var post: EvalSummary
    /// The same, on the records whose unedited model prefers the true target.
    public var preKnown: EvalSummary
    public var postKnown: EvalSummary
    public var curve: [EvalPoint]
    public var hiddenShift: HiddenShift?
    public var seconds: Double
    public var editSeconds: Double
    public var evalSeconds: Double
    /// Extra measured facts (MEMIT λm sweep, kept null-space fractions …), name → text.
    public var notes: [String: String] = [:]
    /// Per-record results (generated texts included), mergeable with other shards.
    public var preShard: EvalShard?
    public var postShard: EvalShard?
    /// What the pre-edit results were computed from, for `--pre-from` (nil in reports before 2026-12-08).
    public var preInputs: PreInputs?

    public struct PreInputs: Codable, Sendable {
        /// The inputs besides the records (the snippets' checksum).
        public var evaluation: String
        /// Each record's FNV-1a-64 (of its JSON), by its index in the records file.
        public var recordDigests: [String: String]
        public init(evaluation: String, records: [EditRequest], firstIndex: Int) {
            self.evaluation = evaluation
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            recordDigests = Dictionary(uniqueKeysWithValues: records.enumerated().map { i, r in
                let sum = ((try? enc.encode(r)) ?? Data()).withUnsafeBytes { FNV1a64.hash($0) }
                return (String(firstIndex + i), String(format: "%016llx", sum))
            })
        }
    }

    public func json(pretty: Bool = true) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try e.encode(self), as: UTF8.self)
    }

    public static func read(path: String) throws -> EvalReport {
        guard let d = FileManager.default.contents(atPath: path) else { throw EvalError.unreadable("cannot read report \(path): \(FileIO.whyUnreadable(path) ?? "read failed")") }
        return try read(data: d, path: path)
    }

    public static func read(data d: Data, path: String = "<memory>") throws -> EvalReport {
        let dec = JSONDecoder()
        dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { return try dec.decode(EvalReport.self, from: d) } catch { throw EvalError.unreadable("\(path): not an eval report (\(error))") }
    }

    /// The contract's one-line object: headline metrics ×100 after editing, edits, seconds.
    public func headline(generation: Bool) -> [String: Double] {
        var h: [String: Double] = ["edits": Double(edits), "seconds": (seconds * 10).rounded() / 10]
        var metrics: [EvalMetric] = [.efficacy, .generalization, .specificity, .portability,
                                     .efficacyTop1, .generalizationTop1, .specificityTop1]
        if generation { metrics += [.fluency, .consistency] }
        for m in metrics { if let v = post[m] { h[m.rawValue] = (v * 100).rounded() / 100 } }
        for m in [EvalMetric.efficacy, .generalization, .specificity, .portability] {
            if let v = pre[m] { h["pre_" + m.rawValue] = (v * 100).rounded() / 100 }
            if let v = postKnown[m] { h["known_" + m.rawValue] = (v * 100).rounded() / 100 }
        }
        h["known_records"] = Double(postKnown.records)
        return h
    }

    public static func headlineJSON(_ h: [String: Double]) -> String {
        let body = h.keys.sorted().map { k -> String in
            let v = h[k] ?? .nan
            return "\"\(k)\":" + (v.isFinite ? String(format: "%g", v) : "null")
        }
        return "{" + body.joined(separator: ",") + "}"
    }

    /// The run's name: the method with its stages (EditStages.name), λm for MEMIT, v_lr and τ or ρ (and λ where not 10) for AlphaEdit.
    public var label: String {
        guard let hp = hyperparameters, let m = EditMethod(rawValue: method) else { return method }
        var s = hp.effectiveStages.name(for: m)
        if m == .memit { s += String(format: " (λm %g)", hp.memitLambda) }
        if m == .alphaedit {
            let penalty = hp.keptC0Weight.flatMap { $0 > 0 ? String(format: ", kept C0 weight %g", $0) : nil } ?? ""
            // λ is named where it is not the generic default (10).
            let lambda = hp.lambda == EditHyperparameters().lambda ? "" : String(format: ", λ %g", hp.lambda)
            s += String(format: " (v_lr %g, %@%@%@)", hp.vLR, hp.nullSpaceRule.description, lambda, penalty)
        }
        return s
    }

    /// One row per report after its edits (the first report's pre-edit row on top): the headline
    /// metrics with standard errors, perplexity before → after, the hidden shift and the wall time.
    public static func comparison(_ reports: [EvalReport]) -> String {
        let cols: [EvalMetric] = [.efficacy, .generalization, .specificity, .fluency, .consistency]
        var out = "| run | edits | " + cols.map(\.rawValue).joined(separator: " | ") + " | specificity, known facts | perplexity | hidden ‖Δh‖/‖h‖ | wall |\n"
        out += "|---|---|" + cols.map { _ in "---" }.joined(separator: "|") + "|---|---|---|---|\n"
        func ppl(_ r: EvalReport, _ edits: Int) -> String {
            r.curve.last { $0.edits == edits }?.general.map { String(format: "%.2f", $0.perplexity) } ?? "–"
        }
        if let first = reports.first {
            out += "| unedited | 0 | " + cols.map { cell(first.pre, $0) }.joined(separator: " | ")
                + " | \(cell(first.preKnown, .specificity)) | \(ppl(first, 0)) | – | – |\n"
        }
        for r in reports {
            out += "| \(r.label) | \(r.edits) | " + cols.map { cell(r.post, $0) }.joined(separator: " | ")
                + " | \(cell(r.postKnown, .specificity)) | \(ppl(r, r.edits)) | "
                + (r.hiddenShift.map { String(format: "%.3f", $0.meanRelativeChange) } ?? "–")
                + String(format: " | %.0f s |\n", r.seconds)
        }
        return out
    }

    static func cell(_ s: EvalSummary, _ m: EvalMetric) -> String {
        guard let x = s.metrics[m] else { return "–" }
        return String(format: "%.1f ± %.1f", x.mean, x.standardError)
    }

    /// Markdown: the rows of this run (pre-edit and post-edit, all records and known facts).
    public func markdown() -> String {
        let cols: [EvalMetric] = [.efficacy, .generalization, .specificity, .portability, .fluency, .consistency,
                                  .efficacyTop1, .generalizationTop1, .specificityTop1]
        var out = "| row | records | " + cols.map(\.rawValue).joined(separator: " | ") + " |\n"
        out += "|---|---|" + cols.map { _ in "---" }.joined(separator: "|") + "|\n"
        func row(_ name: String, _ s: EvalSummary) {
            out += "| \(name) | \(s.records) | " + cols.map { Self.cell(s, $0) }.joined(separator: " | ") + " |\n"
        }
        row("pre-edit", pre)
        // The run's label, so that MEMIT + P, PRUNE, … are named as such (not only "memit").
        if method != "none" { row("\(label), \(edits) edits (\(batchSize)/batch)", post) }
        row("pre-edit, known facts", preKnown)
        if method != "none" { row("\(label), known facts", postKnown) }
        if curve.count > 2 || curve.contains(where: { $0.edits > 0 && $0.edits < edits }) {
            // Each point scores the records edited so far; "unedited" is the same records before editing.
            out += "\n| edits | records | efficacy | generalization | specificity (unedited) | fluency (unedited) |\n|---|---|---|---|---|---|\n"
            for p in curve where p.edits > 0 {
                let pre = preShard.map { EvalShard(records: Array($0.records.prefix(p.summary.records))).summary() }
                func f(_ s: EvalSummary?, _ m: EvalMetric) -> String { s?[m].map { String(format: "%.1f", $0) } ?? "–" }
                out += "| \(p.edits) | \(p.summary.records) | \(f(p.summary, .efficacy)) | \(f(p.summary, .generalization)) | "
                    + "\(f(p.summary, .specificity)) (\(f(pre, .specificity))) | \(f(p.summary, .fluency)) (\(f(pre, .fluency))) |\n"
            }
        }
        if curve.contains(where: { $0.general != nil }) {
            out += "\n| edits | " + GeneralTask.allCases.map { "\($0.rawValue) F1" }.joined(separator: " | ") + " | mean F1 | perplexity |\n"
            out += "|---|" + GeneralTask.allCases.map { _ in "---" }.joined(separator: "|") + "|---|---|\n"
            for p in curve {
                guard let g = p.general else { continue }
                out += "| \(p.edits) | " + GeneralTask.allCases.map { String(format: "%.1f", g.f1[$0] ?? .nan) }.joined(separator: " | ")
                    + String(format: " | %.1f | %.2f |\n", g.meanF1, g.perplexity)
            }
        }
        if let h = hiddenShift {
            out += String(format: "\nHidden shift, block %d output, %d prompts: mean cosine %.4f, mean ‖Δh‖/‖h‖ %.4f, mean Δ‖h‖/‖h‖ %+.4f\n",
                          h.layer, h.prompts, h.meanCosine, h.meanRelativeChange, h.meanRelativeNormChange)
        }
        out += String(format: "\nWall time %.0f s (edits %.0f s, evaluation %.0f s).\n", seconds, editSeconds, evalSeconds)
        for (k, v) in notes.sorted(by: { $0.key < $1.key }) { out += "\(k): \(v)\n" }
        return out
    }
}
