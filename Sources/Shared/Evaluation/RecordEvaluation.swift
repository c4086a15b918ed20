// What the evaluation measures on one record (CounterFact: docs/algorithm.md §6's NLL comparisons; zsRE
// and other records without a true target: §7's token accuracies), kept raw so that results
// computed anywhere (one process, or shards on many workers) merge into exactly the same summary:
// every mean is taken once, over the merged per-record values, in record order.
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store

/// NLLs and top-1 correctness of the two targets after one prompt.
public struct PairScore: Codable, Equatable, Sendable {
    public var nllNew: Double
    public var nllTrue: Double
    /// Every token of `target_new` is the model's argmax (teacher forced).
    public var top1New: Bool
    /// Every token of `target_true` is the model's argmax.
    public var top1True: Bool

    public init(nllNew: Double, nllTrue: Double, top1New: Bool, top1True: Bool) {
        self.nllNew = nllNew; self.nllTrue = nllTrue; self.top1New = top1New; self.top1True = top1True
    }

    /// The edit "wins" on this prompt: NLL(new) < NLL(true).
    public var prefersNew: Bool { nllNew < nllTrue }
    /// The true fact survives on this prompt: NLL(true) < NLL(new).
    public var prefersTrue: Bool { nllTrue < nllNew }
}

/// docs/algorithm.md §7: per prompt, the share of the target's tokens that are the model's argmax.
public struct TokenAccuracies: Codable, Equatable, Sendable {
    public var rewrite: Double
    public var paraphrases: [Double]
    /// On the neighborhood prompts, of their own answers (zsRE's `loc_ans`).
    public var neighborhood: [Double]
    /// The portability question and its answer (zsRE with the `alt` target), when the record has one.
    public var portability: Double?

    public init(rewrite: Double, paraphrases: [Double], neighborhood: [Double], portability: Double? = nil) {
        self.rewrite = rewrite; self.paraphrases = paraphrases; self.neighborhood = neighborhood; self.portability = portability
    }
}

public struct RecordEvaluation: Codable, Equatable, Sendable {
    /// 0-based position of the record in its records file: the merge order.
    public var index: Int
    public var caseID: Int?
    /// §6's pairs (records with a true target); nil for a record scored by token accuracies.
    public var rewrite: PairScore?
    public var paraphrases: [PairScore]
    public var neighborhood: [PairScore]
    /// §7's token accuracies (records without a true target: zsRE); nil for CounterFact records.
    public var accuracies: TokenAccuracies?
    /// Mean over this record's generated texts of (2/3·H2 + 4/3·H3)/2, bits (nil without generation).
    public var fluency: Double?
    /// TF-IDF cosine of the joined texts with the snippets of (relation, target_new); nil without
    /// generation or without snippets for that pair.
    public var consistency: Double?
    /// The generated texts (prompt included), for inspection.
    public var generations: [String]?

    public init(index: Int, caseID: Int?, rewrite: PairScore?, paraphrases: [PairScore], neighborhood: [PairScore],
                accuracies: TokenAccuracies? = nil, fluency: Double? = nil, consistency: Double? = nil, generations: [String]? = nil) {
        self.index = index; self.caseID = caseID; self.rewrite = rewrite; self.paraphrases = paraphrases
        self.neighborhood = neighborhood; self.accuracies = accuracies; self.fluency = fluency; self.consistency = consistency
        self.generations = generations
    }

    /// Per-record values of each metric (1/0 for a share, a mean over the record's prompts otherwise);
    /// nil where the record has no prompt of that kind.
    public var values: [EvalMetric: Double] {
        var v: [EvalMetric: Double] = [:]
        v[.fluency] = fluency
        v[.consistency] = consistency
        if let a = accuracies {
            v[.efficacy] = a.rewrite
            v[.generalization] = Self.mean(a.paraphrases)
            v[.specificity] = Self.mean(a.neighborhood)
            v[.portability] = a.portability
            return v
        }
        guard let rewrite else { return v }
        v[.efficacy] = rewrite.prefersNew ? 1 : 0
        v[.efficacyTop1] = rewrite.top1New ? 1 : 0
        v[.generalization] = Self.share(paraphrases) { $0.prefersNew }
        v[.generalizationTop1] = Self.share(paraphrases) { $0.top1New }
        v[.specificity] = Self.share(neighborhood) { $0.prefersTrue }
        v[.specificityTop1] = Self.share(neighborhood) { $0.top1True }
        return v
    }

    static func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }

    static func share(_ s: [PairScore], _ ok: (PairScore) -> Bool) -> Double? {
        s.isEmpty ? nil : Double(s.filter(ok).count) / Double(s.count)
    }
}

/// The reported metrics; every one is ×100 in summaries.
public enum EvalMetric: String, Codable, Sendable, CaseIterable, CodingKeyRepresentable {
    case efficacy, generalization, specificity, fluency, consistency, portability
    case efficacyTop1 = "efficacy_top1", generalizationTop1 = "generalization_top1", specificityTop1 = "specificity_top1"
}

public enum EvalShardError: Error, Equatable, CustomStringConvertible {
    case duplicateRecord(index: Int)
    public var description: String {
        switch self {
        case .duplicateRecord(let i): "record \(i) appears in more than one shard"
        }
    }
}

/// The evaluation of a range of records: what one worker returns.
public struct EvalShard: Codable, Equatable, Sendable {
    public var records: [RecordEvaluation]
    public init(records: [RecordEvaluation]) { self.records = records }

    /// Shards in any order → one shard in record order. A record in two shards is an error.
    public static func merge(_ shards: [EvalShard]) throws -> EvalShard {
        let all = shards.flatMap(\.records).sorted { $0.index < $1.index }
        for (a, b) in zip(all, all.dropFirst()) where a.index == b.index { throw EvalShardError.duplicateRecord(index: a.index) }
        return EvalShard(records: all)
    }

    /// Indices of the records whose model (the one this shard was measured on) prefers the true target
    /// on the rewrite prompt: "the facts it knows".
    public var knownIndices: Set<Int> { Set(records.filter { $0.rewrite?.prefersTrue == true }.map(\.index)) }

    public func summary(only indices: Set<Int>? = nil) -> EvalSummary {
        EvalSummary(records.filter { indices?.contains($0.index) ?? true })
    }
}

/// Mean ± standard error over records, ×100.
public struct MetricSummary: Codable, Equatable, Sendable {
    public var mean: Double
    /// Sample standard deviation / √n (0 for one record).
    public var standardError: Double
    public var count: Int

    public init(_ values: [Double]) {
        count = values.count
        guard !values.isEmpty else { mean = .nan; standardError = .nan; return }
        let n = Double(values.count)
        let m = values.reduce(0, +) / n
        mean = 100 * m
        let ss = values.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        standardError = values.count > 1 ? 100 * (ss / (n - 1)).squareRoot() / n.squareRoot() : 0
    }
}

public struct EvalSummary: Codable, Equatable, Sendable {
    public var records: Int
    public var metrics: [EvalMetric: MetricSummary]

    public init(_ recs: [RecordEvaluation]) {
        records = recs.count
        let vals = recs.map(\.values)
        var m: [EvalMetric: MetricSummary] = [:]
        for k in EvalMetric.allCases {
            let v = vals.compactMap { $0[k] }
            if !v.isEmpty { m[k] = MetricSummary(v) }
        }
        metrics = m
    }

    public subscript(_ k: EvalMetric) -> Double? { metrics[k].map(\.mean) }
}
