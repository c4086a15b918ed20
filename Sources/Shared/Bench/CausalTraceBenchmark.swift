// `alphaedit bench trace`: where a model recalls facts, measured as ROME/MEMIT do (causal tracing), to
// choose the edited layers from a measurement. For each fact (prompt with subject, true target):
//   clean run: p(target's first token) after the prompt, and each layer's MLP contribution at the
//   subject's last token (ffn_down's output, through the post-norm where the model has one);
//   corrupted run: Gaussian noise (σ = 3 × the embeddings' standard deviation) added to the subject's
//   token embeddings, p drops to p*;
//   restored runs, one per layer l: the corrupted run with layer l's MLP contribution at the subject's
//   last token set back to its clean value (added to the block output there), p_l.
// The indirect effect of layer l's MLP is mean(p_l − p*) over facts whose clean p beats the corrupted
// one. MEMIT edits a window of layers where it is high; `best_window` is the 5 consecutive layers
// with the largest sum among the first two thirds of the blocks (the edited window must leave layers
// above it for v*).
import Support
import Corpus
import Kernels
import Model
import Tokenization
import Editing
import Foundation

public struct CausalTraceBenchmark {
    public struct Result: Codable, Sendable {
        public var model: String
        public var facts: Int
        public var used: Int
        public var p_clean: Double
        public var p_corrupted: Double
        /// Mean indirect effect per layer, index = layer.
        public var indirect_effect: [Double]
        public var best_window: [Int]
        public var noise_sigma: Double
        public var kernels = KernelChoice.current
    }

    public static func run(modelPath: String, facts path: String, count: Int, window: Int = 5, seed: UInt64 = 1,
                           log: (String) -> Void) throws -> Result {
        let model = try LlamaModel(path: modelPath)
        let tok = try BPETokenizer(gguf: model.gguf)
        let c = model.config, C = c.hidden, L = c.layers
        let facts = try FactsFile.read(path: path, limit: count).filter { $0.targetTrue != nil }
        // Noise scale: 3 × the standard deviation of the (scaled) embedding entries, as ROME.
        var sum = 0.0, sq = 0.0
        let n = min(c.vocab, 5000) * C
        let all = model.embed(TokenBatch([(0..<min(c.vocab, 5000)).map { Int32($0) }]))
        for i in 0..<n { let x = Double(all.ptr[i]); sum += x; sq += x * x }
        let sigma = 3 * (sq / Double(n) - (sum / Double(n)) * (sum / Double(n))).squareRoot()
        var rng = SplitMix64(seed: seed)
        var effect = [Double](repeating: 0, count: L)
        var used = 0, pClean = 0.0, pCorrupt = 0.0
        let t0 = ProcessStats.now()
        for (fi, f) in facts.enumerated() {
            let layout = PromptLayout(template: f.prompt, subject: f.subject, tokenizer: tok)
            let ids = layout.ids
            // The subject's tokens: from its first token (the prompt before it, tokenized alone) to its last.
            let before = f.prompt.components(separatedBy: "{}").first ?? ""
            let first = (ids.count - tok.encode(f.filledPrompt).count)
                + (before.trimmingCharacters(in: .whitespaces).isEmpty ? 0 : tok.encode(String(before.dropLast(before.hasSuffix(" ") ? 1 : 0))).count)
            guard let target = tok.encode(" " + (f.targetTrue ?? "").trimmingCharacters(in: .whitespaces)).first,
                  first <= layout.subjectLast else { continue }
            let batch = TokenBatch([ids]), last = ids.count - 1, s = layout.subjectLast
            func prob(_ h: FloatBuffer) -> Double {
                let z = model.logits(hidden: h.ptr, rows: [last])
                let mx = z.max() ?? 0
                let e = z.reduce(0.0) { $0 + Foundation.exp(Double($1 - mx)) }
                return Foundation.exp(Double(z[Int(target)] - mx)) / e
            }
            // Each layer's MLP contribution at row s: N(m) behind a post-norm, else m.
            func contributions(_ hidden: FloatBuffer, hooks extra: ForwardHooks = ForwardHooks()) -> (Double, [[Float]]) {
                var contrib = [[Float]](repeating: [], count: L)
                var hooks = extra
                hooks.mlpOutputLayers = Set(0..<L)
                hooks.onMLPOutput = { l, m in
                    var y = [Float](repeating: 0, count: C), r: Float = 0
                    model.postFFN(layer: l, m + s * C, &y, rstd: &r, rows: 1)
                    contrib[l] = y
                }
                _ = model.runBlocks(0...(L - 1), hidden: hidden, batch: batch, hooks: hooks)
                return (prob(hidden), contrib)
            }
            let clean = model.embed(batch)
            let (p0, cleanC) = contributions(clean)
            let noisy = model.embed(batch)
            for r in first...s { for i in 0..<C { noisy.ptr[r * C + i] += Float(sigma) * rng.gaussian() } }
            let corrupted = FloatBuffer(noisy.array)
            let (pStar, noisyC) = contributions(corrupted)
            guard p0 > pStar else { continue }
            used += 1; pClean += p0; pCorrupt += pStar
            for l in 0..<L {
                var hooks = ForwardHooks()
                hooks.deltas[l] = [(row: s, vector: zip(cleanC[l], noisyC[l]).map { $0 - $1 })]
                let h = FloatBuffer(noisy.array)
                _ = model.runBlocks(0...(L - 1), hidden: h, batch: batch, hooks: hooks)
                effect[l] += prob(h) - pStar
            }
            if (fi + 1) % 10 == 0 || fi + 1 == facts.count {
                let el = ProcessStats.now() - t0, rate = Double(fi + 1) / max(el, 1e-9)
                log(String(format: "trace %d/%d facts, %.2f facts/s, ETA %.0f s", fi + 1, facts.count, rate, Double(facts.count - fi - 1) / rate))
            }
        }
        let ie = effect.map { used > 0 ? $0 / Double(used) : 0 }
        let top = max(window, (2 * L) / 3)
        var best = 0, bestSum = -Double.infinity
        for start in 0...max(0, min(top, L) - window) {
            let sum = ie[start..<(start + window)].reduce(0, +)
            if sum > bestSum { bestSum = sum; best = start }
        }
        return Result(model: (modelPath as NSString).lastPathComponent, facts: facts.count, used: used,
                      p_clean: used > 0 ? pClean / Double(used) : 0, p_corrupted: used > 0 ? pCorrupt / Double(used) : 0,
                      indirect_effect: ie, best_window: Array(best..<(best + window)), noise_sigma: sigma)
    }
}
