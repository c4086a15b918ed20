// Mean per-token NLL of " " + target after a prompt (docs/algorithm.md §6), batched: every (prompt, target)
// pair is one sequence `prompt + target`, scored by teacher forcing in one forward pass.
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store
import Foundation

/// One scored (prompt, target) pair.
public struct TargetScore: Sendable, Equatable {
    /// Mean NLL in nats per target token.
    public var meanNLL: Double
    /// Every target token is the argmax of the model's next-token distribution (teacher forced):
    /// the "top-1 accuracy" variant of the reference's `test_batch_prediction_acc`.
    public var top1: Bool
    /// Share of the target's tokens that are the argmax (teacher forced): zsRE's token accuracy
    /// (docs/algorithm.md §7).
    public var tokenAccuracy: Double
}

public struct TargetScorer {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    /// Sequences per forward pass.
    public var batchSize = 64

    public init(model: LlamaModel, tokenizer: BPETokenizer) { self.model = model; self.tokenizer = tokenizer }

    /// Mean NLL (nats per token) of each `target` (no leading space; one is added) after its `prompt`.
    public func meanNLL(_ pairs: [(prompt: String, target: String)]) throws -> [Double] {
        try scores(pairs).map(\.meanNLL)
    }

    /// NLL and top-1 correctness of each pair, `batchSize` sequences per forward pass.
    public func scores(_ pairs: [(prompt: String, target: String)]) throws -> [TargetScore] {
        var out: [TargetScore] = []
        out.reserveCapacity(pairs.count)
        var i = 0
        while i < pairs.count {
            let chunk = pairs[i..<min(i + batchSize, pairs.count)]
            var prompts: [[Int32]] = [], index: [[Int32]: Int] = [:], conts: [(prompt: Int, tokens: [Int32])] = []
            var rows: [Int] = [], targets: [Int32] = [], owner: [Int] = []
            for (j, p) in chunk.enumerated() {
                let prompt = tokenizer.encode(p.prompt, addSpecial: true)
                let target = tokenizer.encode(" " + p.target.trimmingCharacters(in: .whitespaces))
                guard !prompt.isEmpty, !target.isEmpty else { throw ModelError.emptyPrompt }
                let k = index[prompt] ?? prompts.count
                if k == prompts.count { index[prompt] = k; prompts.append(prompt) }
                conts.append((k, target))
                for (t, id) in target.enumerated() { owner.append(j); targets.append(id); rows.append(prompt.count - 1 + t) }
            }
            let logits: [Float], V = model.config.vocab
            if prompts.count < chunk.count {
                // Targets that share a prompt (§6's two per prompt): its rows run once (SharedPromptForward.swift).
                logits = try model.forward(prompts: prompts, continuations: conts, logitRows: Array(zip(owner, rows)))
            } else {
                let batch = TokenBatch(conts.map { prompts[$0.prompt] + $0.tokens })
                logits = try model.forward(batch, logitRows: zip(owner, rows).map { batch.row($0.0, $0.1) }).logits
            }
            var sum = [Double](repeating: 0, count: chunk.count), n = sum
            var top1 = [Bool](repeating: true, count: chunk.count)
            var hits = [Double](repeating: 0, count: chunk.count)
            for (k, id) in targets.enumerated() {
                let row = logits[(k * V)..<((k + 1) * V)]
                let lse = Softmax.logSumExp(row)
                sum[owner[k]] += lse - Double(row[row.startIndex + Int(id)])
                n[owner[k]] += 1
                if Sampler.argmax(row) == Int(id) { hits[owner[k]] += 1 } else { top1[owner[k]] = false }
            }
            for j in 0..<chunk.count { out.append(TargetScore(meanNLL: sum[j] / n[j], top1: top1[j], tokenAccuracy: hits[j] / n[j])) }
            i += chunk.count
        }
        return out
    }

    /// Efficacy ×100: share of requests whose rewrite prompt gives NLL(new) < NLL(true).
    public func efficacy(_ requests: [EditRequest]) throws -> Double {
        let scored = requests.filter { $0.targetTrue != nil }
        guard !scored.isEmpty else { return .nan }
        let new = try meanNLL(scored.map { ($0.filledPrompt, $0.targetNew) })
        let old = try meanNLL(scored.map { ($0.filledPrompt, $0.targetTrue ?? "") })
        return 100 * Double(zip(new, old).filter { $0 < $1 }.count) / Double(scored.count)
    }
}
