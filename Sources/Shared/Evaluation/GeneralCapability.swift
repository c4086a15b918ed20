// General capability (docs/algorithm.md §6, the paper's GLUE figure): zero-shot prompts on the `general/`
// sets, greedy 5-token answers parsed into labels, weighted F1 per task; and perplexity on held-out
// Wikipedia sentences. The prompt wording is ours (the paper's exact prompts are not in the data);
// it stays fixed so that before/after figures compare the same thing.
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store
import Foundation

/// One zero-shot item: the prompt and its gold label.
public struct GeneralItem: Sendable, Equatable {
    public var prompt: String
    public var label: String
}

public enum GeneralTask: String, CaseIterable, Sendable, Codable, CodingKeyRepresentable {
    case sst2, mrpc, cola, rte, nli, mmlu

    /// Reads `dir/<task>.json` into prompts with gold labels (the first `limit` items).
    public func items(directory: String, limit: Int?) throws -> [GeneralItem] {
        let path = directory + "/" + rawValue + ".json"
        guard let data = FileManager.default.contents(atPath: path) else { throw EvalError.unreadable("cannot read \(path)") }
        guard let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw EvalError.unreadable("\(path): expected a JSON list of objects")
        }
        var out: [GeneralItem] = []
        for (i, o) in list.prefix(limit ?? list.count).enumerated() {
            guard let item = item(from: o) else { throw EvalError.unreadable("\(path) item \(i): missing or mistyped fields for \(rawValue)") }
            out.append(item)
        }
        return out
    }

    /// One item of this task from its JSON object; nil when a field is missing or mistyped.
    public func item(from o: [String: Any]) -> GeneralItem? {
        func s(_ k: String) -> String? { o[k] as? String }
        func yesNo(_ b: Bool) -> String { b ? "yes" : "no" }
        switch self {
        case .sst2:
            guard let x = s("sentence"), let l = o["label"] as? Int else { return nil }
            return GeneralItem(prompt: "Review: \(x)\nIs the sentiment of this review positive or negative? Answer:",
                               label: l == 1 ? "positive" : "negative")
        case .cola:
            guard let x = s("sentence"), let l = o["label"] as? Int else { return nil }
            return GeneralItem(prompt: "Sentence: \(x)\nIs this sentence grammatically correct? Answer yes or no:", label: yesNo(l == 1))
        case .mrpc:
            guard let a = s("sentence1"), let b = s("sentence2"), let l = o["label"] as? Int else { return nil }
            return GeneralItem(prompt: "Sentence 1: \(a)\nSentence 2: \(b)\nDo the two sentences mean the same thing? Answer yes or no:",
                               label: yesNo(l == 1))
        case .rte, .nli:
            // GLUE RTE: 0 = entailment, 1 = not entailment; the nli set spells the label out.
            guard let a = s("sentence1"), let b = s("sentence2") else { return nil }
            let entails: Bool
            if let l = o["label"] as? Int { entails = l == 0 } else if let l = s("label") { entails = l == "entailment" } else { return nil }
            return GeneralItem(prompt: "Premise: \(a)\nHypothesis: \(b)\nDoes the premise entail the hypothesis? Answer yes or no:",
                               label: yesNo(entails))
        case .mmlu:
            guard let q = s("question"), let c = o["choices"] as? [String], c.count == 4, let a = o["answer"] as? Int, (0..<4).contains(a) else { return nil }
            let letters = ["A", "B", "C", "D"]
            let opts = zip(letters, c).map { "\($0). \($1)" }.joined(separator: "\n")
            return GeneralItem(prompt: "Question: \(q)\n\(opts)\nAnswer:", label: letters[a])
        }
    }

    /// The label a greedy answer names, or "invalid" when it names none.
    public func parse(_ answer: String) -> String {
        let words = answer.lowercased().split { !$0.isLetter }.map(String.init)
        switch self {
        case .sst2:
            return words.first { $0 == "positive" || $0 == "negative" } ?? "invalid"
        case .cola, .mrpc, .rte, .nli:
            return words.first { $0 == "yes" || $0 == "no" } ?? "invalid"
        case .mmlu:
            let letters = answer.split { !$0.isLetter }.map(String.init)
            return letters.first { ["A", "B", "C", "D"].contains($0) } ?? "invalid"
        }
    }
}

/// Weighted F1 (scikit-learn's `f1_score(average="weighted")`): per-class F1 over the gold classes,
/// weighted by their support; a prediction outside the gold classes counts as a miss.
public func weightedF1(gold: [String], predicted: [String]) -> Double {
    guard !gold.isEmpty, gold.count == predicted.count else { return .nan }
    var total = 0.0
    for c in Set(gold).sorted() {
        let tp = Double(zip(gold, predicted).filter { $0 == c && $1 == c }.count)
        let support = Double(gold.filter { $0 == c }.count)
        let predicted = Double(predicted.filter { $0 == c }.count)
        let f1 = tp == 0 ? 0 : 2 * tp / (support + predicted)
        total += f1 * support
    }
    return total / Double(gold.count)
}

public struct GeneralCapabilityResult: Codable, Equatable, Sendable {
    /// Weighted F1 ×100 per task.
    public var f1: [GeneralTask: Double]
    /// Items per task.
    public var items: Int
    /// Perplexity over the sentences' tokens (exp of the mean NLL per predicted token).
    public var perplexity: Double
    public var sentences: Int
    /// Mean of the tasks' F1.
    public var meanF1: Double { f1.isEmpty ? .nan : f1.values.reduce(0, +) / Double(f1.count) }
}

public struct GeneralCapability {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let tasks: [GeneralTask: [GeneralItem]]
    public let sentences: [String]
    public var answerTokens = 5

    public init(model: LlamaModel, tokenizer: BPETokenizer, directory: String, itemsPerTask: Int,
                perplexityCorpus: String, sentences n: Int) throws {
        self.model = model; self.tokenizer = tokenizer
        var t: [GeneralTask: [GeneralItem]] = [:]
        for task in GeneralTask.allCases { t[task] = try task.items(directory: directory, limit: itemsPerTask) }
        tasks = t
        guard let text = try? String(contentsOfFile: perplexityCorpus, encoding: .utf8) else {
            throw EvalError.unreadable("cannot read \(perplexityCorpus)")
        }
        sentences = text.split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.prefix(n).map { $0 }
    }

    public func measure() throws -> GeneralCapabilityResult {
        var f1: [GeneralTask: Double] = [:]
        let gen = CachedGenerator(model: model, tokenizer: tokenizer)
        for (task, items) in tasks.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            var predicted: [String] = []
            // Greedy answers, 16 prompts decoded together.
            var i = 0
            while i < items.count {
                let chunk = items[i..<min(i + 16, items.count)]
                let ids = chunk.map { Array(tokenizer.encode($0.prompt, addSpecial: true).suffix(model.config.context - answerTokens - 1)) }
                var samplers = ids.map { _ in Sampler(mode: .greedy) }
                let out = try gen.generate(prompts: ids, maxTokens: answerTokens, samplers: &samplers)
                predicted += out.map { task.parse(tokenizer.decode($0)) }
                i += chunk.count
            }
            f1[task] = 100 * weightedF1(gold: items.map(\.label), predicted: predicted)
        }
        return GeneralCapabilityResult(f1: f1, items: tasks.values.map(\.count).max() ?? 0,
                                       perplexity: try perplexity(), sentences: sentences.count)
    }

    /// exp(Σ NLL / Σ predicted tokens) over the sentences, 16 sentences a forward pass.
    public func perplexity() throws -> Double {
        var nll = 0.0, count = 0
        var i = 0
        while i < sentences.count {
            let seqs = sentences[i..<min(i + 16, sentences.count)].map { Array(tokenizer.encode($0, addSpecial: true).prefix(model.config.context)) }.filter { $0.count > 1 }
            i += 16
            guard !seqs.isEmpty else { continue }
            let batch = TokenBatch(seqs)
            var rows: [Int] = [], targets: [Int32] = []
            for (s, q) in seqs.enumerated() { for p in 0..<(q.count - 1) { rows.append(batch.row(s, p)); targets.append(q[p + 1]) } }
            let r = try model.forward(batch, logitRows: rows)
            for (k, id) in targets.enumerated() {
                let row = r.logits(at: k)
                nll += Softmax.logSumExp(row) - Double(row[row.startIndex + Int(id)])
            }
            count += targets.count
        }
        return count == 0 ? .nan : exp(nll / Double(count))
    }
}
