// Hidden-representation shift (issue 5 §4, the paper's Figure 3 question in numbers): the block output
// at the last edited layer, last token of each factual prompt, before and after editing. Reported as
// the mean cosine similarity and the mean relative change ‖h₁ − h₀‖ / ‖h₀‖ (and of the norm alone).
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store

public struct HiddenStates: Sendable {
    public let layer: Int
    /// One vector [C] per prompt.
    public let vectors: [[Float]]

    public init(layer: Int, vectors: [[Float]]) { self.layer = layer; self.vectors = vectors }

    /// Block-`layer` outputs at the last token of each prompt, 32 prompts a forward pass.
    public static func capture(model: LlamaModel, tokenizer: BPETokenizer, prompts: [String], layer: Int) throws -> HiddenStates {
        var out: [[Float]] = []
        let c = model.config.hidden
        var i = 0
        while i < prompts.count {
            let seqs = prompts[i..<min(i + 32, prompts.count)].map { tokenizer.encode($0, addSpecial: true) }
            let batch = TokenBatch(seqs)
            var hooks = ForwardHooks()
            hooks.outputLayers = [layer]
            var got: [[Float]] = []
            hooks.onOutput = { _, h in for r in batch.lastRows { got.append(Array(UnsafeBufferPointer(start: h + r * c, count: c))) } }
            _ = try model.forward(batch, hooks: hooks, upTo: layer)
            out += got
            i += seqs.count
        }
        return HiddenStates(layer: layer, vectors: out)
    }
}

public struct HiddenShift: Codable, Equatable, Sendable {
    public var layer: Int
    public var prompts: Int
    public var meanCosine: Double
    /// Mean ‖h₁ − h₀‖ / ‖h₀‖.
    public var meanRelativeChange: Double
    /// Mean (‖h₁‖ − ‖h₀‖) / ‖h₀‖.
    public var meanRelativeNormChange: Double

    public init(before: HiddenStates, after: HiddenStates) throws {
        guard before.layer == after.layer, before.vectors.count == after.vectors.count else {
            throw EvalError.badOption("hidden states of different prompts or layers")
        }
        layer = before.layer; prompts = before.vectors.count
        var cs = 0.0, rc = 0.0, rn = 0.0
        for (a, b) in zip(before.vectors, after.vectors) {
            var ab = 0.0, aa = 0.0, bb = 0.0, dd = 0.0
            for (x, y) in zip(a, b) {
                let xd = Double(x), yd = Double(y)
                ab += xd * yd; aa += xd * xd; bb += yd * yd; dd += (yd - xd) * (yd - xd)
            }
            cs += ab / max((aa * bb).squareRoot(), 1e-30)
            rc += dd.squareRoot() / max(aa.squareRoot(), 1e-30)
            rn += (bb.squareRoot() - aa.squareRoot()) / max(aa.squareRoot(), 1e-30)
        }
        let n = Double(max(prompts, 1))
        meanCosine = cs / n; meanRelativeChange = rc / n; meanRelativeNormChange = rn / n
    }
}
