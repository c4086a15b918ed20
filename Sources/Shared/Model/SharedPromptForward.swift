// A forward over sequences `prompt + continuation` where several continuations follow one prompt (an
// evaluation scores two targets after every prompt: docs/algorithm.md §6), running each prompt's rows
// once. Exact by causality, as v*'s prefix reuse (PrefixKVCache.swift): rows before a continuation
// do not depend on it.
//
// Each continuation owns a span of one PrefixKVCache as long as its whole sequence. A first pass runs
// every prompt but its last token (positions 0…) and stores their K/V in the span of the prompt's first
// continuation; those rows are copied to the spans of its other continuations; a second pass runs, per
// continuation, the prompt's last token and the continuation (positions n−1…) on the cached K/V, so
// the logits that predict the continuation's first token come from this pass too.
import Support
import GGUF
import Tokenization
import Kernels

extension PrefixKVCache {
    /// Copies rows `from ..< from + count` of every layer's K and V to rows `to ..< to + count`.
    func copyRows(from: Int, to: Int, count: Int, kvDim: Int) {
        guard count > 0, from != to else { return }
        for l in layers {
            (k(l) + to * kvDim).update(from: k(l) + from * kvDim, count: count * kvDim)
            (v(l) + to * kvDim).update(from: v(l) + from * kvDim, count: count * kvDim)
        }
    }
}

extension LlamaModel {
    /// Logits [rows × V] of the sequences `prompts[c.prompt] + c.tokens`, one per continuation c, at
    /// `logitRows` (continuation, position in its whole sequence); a position must be at least the
    /// prompt's last (count − 1): earlier rows are run without logits. The same figures as `forward`
    /// over the whole sequences, up to float rounding.
    public func forward(prompts: [[Int32]], continuations: [(prompt: Int, tokens: [Int32])],
                        logitRows: [(continuation: Int, position: Int)]) throws -> [Float] {
        let c = config, L = c.layers
        for (prompt, _) in continuations { precondition(prompts.indices.contains(prompt), "continuation of prompt \(prompt) of \(prompts.count)") }
        // The whole sequences pass the checks of `forward` (empty prompt, context, token ids).
        let whole = continuations.map { prompts[$0.prompt] + $0.tokens }
        try TokenBatch(prompts + whole).validate(vocab: c.vocab, context: c.context)
        var spans: [Int] = [], rows = 0
        for seq in whole { spans.append(rows); rows += seq.count }
        let cache = PrefixKVCache(config: c, layers: 0...(L - 1), rows: rows)

        // Pass 1: each prompt's rows but its last, once, into its first continuation's span.
        var first = [Int?](repeating: nil, count: prompts.count)
        for (j, cont) in continuations.enumerated() where first[cont.prompt] == nil { first[cont.prompt] = j }
        var heads: [[Int32]] = [], headSpans: [Int] = []
        for (p, j) in first.enumerated() {
            guard let j, prompts[p].count > 1 else { continue }
            heads.append(Array(prompts[p].dropLast())); headSpans.append(spans[j])
        }
        if !heads.isEmpty {
            let batch = TokenBatch(heads)
            // Only their K/V are read later: the last block computes nothing else for them.
            _ = runBlocks(0...(L - 1), hidden: embed(batch), batch: batch, prefix: CachedPrefix(cache: cache, kvStarts: headSpans),
                          lastRows: [])
        }
        for (j, cont) in continuations.enumerated() {
            guard let owner = first[cont.prompt], owner != j else { continue }
            cache.copyRows(from: spans[owner], to: spans[j], count: prompts[cont.prompt].count - 1, kvDim: c.kvDim)
        }

        // Pass 2: the prompt's last token and the continuation, on the cached rows.
        let tails = continuations.map { [prompts[$0.prompt].last!] + $0.tokens }
        let starts = continuations.map { prompts[$0.prompt].count - 1 }
        let batch = TokenBatch(tails, firstPositions: starts)
        var packed: [Int] = []
        for (j, pos) in logitRows {
            guard continuations.indices.contains(j), pos >= starts[j], pos - starts[j] < tails[j].count else {
                throw ModelError.positionOutOfRange(sequence: j, position: pos, length: continuations.indices.contains(j) ? starts[j] + tails[j].count : 0)
            }
            packed.append(batch.row(j, pos - starts[j]))
        }
        let h = embed(batch)
        let out = LlamaModel.outputRows(packed)
        _ = runBlocks(0...(L - 1), hidden: h, batch: batch, prefix: CachedPrefix(cache: cache, kvStarts: spans), lastRows: out.kept)
        return logits(hidden: h.ptr, rows: out.at)
    }
}
