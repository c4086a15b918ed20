// Keys for a batch of requests (docs/algorithm.md §2) and the z-layer outputs H of §4 step 2, from one
// forward pass: every request under every context template, read at the subject's last token.
// k = mean over groups of (mean within the group), so with ["{}"] + 5 generated ones, ½·k("{}") + ½·mean(5).
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model

public struct KeyReader {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer

    public init(model: LlamaModel, tokenizer: BPETokenizer) {
        self.model = model; self.tokenizer = tokenizer
    }

    /// K1 at `layer` (f × u, one column per request) and, when `outputLayer` is given, the block outputs
    /// there at the subject's last token of the plain prompts (d × u); with `mlpOutputs`, also ffn_down's
    /// output at `layer` at those rows (d × u; EditPoint.swift says why a post-norm model needs it).
    public func read(_ requests: [EditRequest], layer: Int, templates: ContextTemplates,
                     outputLayer: Int? = nil, mlpOutputs: Bool = false) throws -> (keys: Matrix64, outputs: Matrix64?, mlpOutputs: Matrix64?) {
        let c = model.config, F = c.ffn, C = c.hidden, u = requests.count
        var seqs: [[Int32]] = [], lookups: [Int] = [], reqOf: [Int] = [], groupOf: [Int] = []
        for (i, r) in requests.enumerated() {
            for (g, group) in templates.groups.enumerated() {
                for t in group {
                    let layout = PromptLayout(template: t.replacingFirst("{}", with: r.prompt), subject: r.subject, tokenizer: tokenizer)
                    seqs.append(layout.ids); lookups.append(layout.subjectLast); reqOf.append(i); groupOf.append(g)
                }
            }
        }
        // The plain prompt of each request ("{}" template, the first of group 0) for H.
        let plain = (0..<u).map { i in seqs.indices.first { reqOf[$0] == i } ?? 0 }
        let batch = TokenBatch(seqs)
        var keys = [Double](repeating: 0, count: F * u)
        var outs = [Double](repeating: 0, count: C * u)
        let groups = templates.groups.count
        var hooks = ForwardHooks()
        hooks.keyLayers = [layer]
        hooks.onKeys = { _, k in
            for (s, _) in seqs.enumerated() {
                let row = k + batch.row(s, lookups[s]) * F
                let groupSize = Double(templates.groups[groupOf[s]].count)
                let w = 1 / (groupSize * Double(groups))
                for j in 0..<F { keys[j * u + reqOf[s]] += w * Double(row[j]) }
            }
        }
        if let ol = outputLayer {
            hooks.outputLayers = [ol]
            hooks.onOutput = { _, o in
                for i in 0..<u {
                    let row = o + batch.row(plain[i], lookups[plain[i]]) * C
                    for j in 0..<C { outs[j * u + i] = Double(row[j]) }
                }
            }
        }
        var mouts = [Double](repeating: 0, count: mlpOutputs ? C * u : 0)
        if mlpOutputs {
            hooks.mlpOutputLayers = [layer]
            hooks.onMLPOutput = { _, m in
                for i in 0..<u {
                    let row = m + batch.row(plain[i], lookups[plain[i]]) * C
                    for j in 0..<C { mouts[j * u + i] = Double(row[j]) }
                }
            }
        }
        _ = try model.forward(batch, hooks: hooks, upTo: max(layer, outputLayer ?? layer))
        return (try Matrix64(rows: F, cols: u, values: keys),
                outputLayer == nil ? nil : try Matrix64(rows: C, cols: u, values: outs),
                mlpOutputs ? try Matrix64(rows: C, cols: u, values: mouts) : nil)
    }

    /// Layer `layer`'s output at each request's subject (its last token) in the request's own prompt (the
    /// "{}" template), [C × u]: the H of `read`, from one forward of the plain prompts only.
    public func outputs(_ requests: [EditRequest], layer: Int) throws -> Matrix64 {
        let C = model.config.hidden, u = requests.count
        let layouts = requests.map { PromptLayout(template: $0.prompt, subject: $0.subject, tokenizer: tokenizer) }
        let batch = TokenBatch(layouts.map(\.ids))
        var outs = [Double](repeating: 0, count: C * u)
        var hooks = ForwardHooks()
        hooks.outputLayers = [layer]
        hooks.onOutput = { _, o in
            for i in 0..<u {
                let row = o + batch.row(i, layouts[i].subjectLast) * C
                for j in 0..<C { outs[j * u + i] = Double(row[j]) }
            }
        }
        _ = try model.forward(batch, hooks: hooks, upTo: layer)
        return try Matrix64(rows: C, cols: u, values: outs)
    }
}
