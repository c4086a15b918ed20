// Incremental decoding with a key/value cache: each step runs only the new tokens through the blocks,
// attending to the keys and values of earlier positions kept per sequence and layer. Several
// sequences decode together (one packed row block per step), so the few-token quantized kernels
// serve them all for about the price of one. `Generator` recomputes the whole sequence per token
// (kept as the reference the tests compare with); this is the same computation (test: logits equal
// the full forward within 1e-3, see EvalShardTests) at O(new tokens) per step.
//
// There is one block forward and one K/V cache in the model: a step is `runBlocks` over all blocks
// with a `CachedPrefix` (the mechanism v* uses for its δ-independent prefix, PrefixKVCache.swift),
// each sequence owning a span of rows of one shared PrefixKVCache.
import Support
import GGUF
import Tokenization
import Kernels
import Foundation

/// One sequence's span of a PrefixKVCache: rows `start ..< start + capacity`, of which the first
/// `length` hold the K/V (after RoPE) of the positions decoded so far.
public final class KVCache {
    public let capacity: Int
    public private(set) var length = 0
    let store: PrefixKVCache
    let start: Int

    init(store: PrefixKVCache, start: Int, capacity: Int) {
        self.store = store; self.start = start; self.capacity = capacity
    }

    /// A cache of its own for one sequence of up to `capacity` positions.
    public convenience init(config c: LlamaConfig, capacity: Int) {
        self.init(store: PrefixKVCache(config: c, layers: 0...(c.layers - 1), rows: capacity), start: 0, capacity: capacity)
    }

    /// Caches for sequences that decode together: spans of one PrefixKVCache.
    public static func group(config c: LlamaConfig, capacities: [Int]) -> [KVCache] {
        let store = PrefixKVCache(config: c, layers: 0...(c.layers - 1), rows: capacities.reduce(0, +))
        var start = 0
        return capacities.map { n in
            defer { start += n }
            return KVCache(store: store, start: start, capacity: n)
        }
    }

    fileprivate func advance(_ n: Int) { length += n }
}

extension LlamaModel {
    /// Feeds `tokens[s]` (one or more new tokens) to sequence s, whose past lives in `caches[s]`;
    /// returns the logits after the last new token of each sequence [S × V]. Caches of sequences
    /// decoded together must come from one `KVCache.group` (or be a single cache). `groups` (ranges
    /// of sequences tiling 0..<S in order): their float32 products run apart, so each group's logits
    /// have the bits of a `decode` of that group alone when all the rows are within
    /// `QuantizedLinear.maxRows` (`TokenBatch.productGroups`).
    public func decode(_ tokens: [[Int32]], caches: [KVCache], groups: [Range<Int>]? = nil) throws -> [Float] {
        precondition(tokens.count == caches.count, "one cache per sequence")
        guard let store = caches.first?.store else { return [] }
        precondition(caches.allSatisfy { $0.store === store }, "caches decoded together share one KVCache.group")
        for (s, t) in tokens.enumerated() {
            guard !t.isEmpty else { throw ModelError.emptyPrompt }
            let cache = caches[s], room = min(cache.capacity, config.context)
            if cache.length + t.count > room { throw ModelError.contextOverflow(tokens: cache.length + t.count, context: room) }
            for id in t where id < 0 || Int(id) >= config.vocab { throw ModelError.tokenOutOfRange(id: id, vocab: config.vocab) }
        }
        var batch = TokenBatch(tokens, firstPositions: caches.map(\.length))
        if let groups {
            precondition(groups.first?.lowerBound == 0 && groups.last?.upperBound == tokens.count
                         && zip(groups, groups.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }
                         && groups.allSatisfy { !$0.isEmpty }, "groups tile the sequences in order")
            batch.productGroups = groups.map { batch.starts[$0.lowerBound] ..< batch.row($0.upperBound - 1, -1) + 1 }
        }
        let h = embed(batch)
        _ = runBlocks(0...(config.layers - 1), hidden: h, batch: batch,
                      prefix: CachedPrefix(cache: store, kvStarts: caches.map(\.start)))
        for (s, t) in tokens.enumerated() { caches[s].advance(t.count) }
        return logits(hidden: h.ptr, rows: batch.lastRows, groups: groups)
    }
}

/// Generation for several prompts at once on a KV cache; each prompt has its own sampler.
public struct CachedGenerator {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public init(model: LlamaModel, tokenizer: BPETokenizer) { self.model = model; self.tokenizer = tokenizer }

    /// One prompt, tokens handed to `onToken` as they come (the `generate` command): the same tokens
    /// as `Generator.generate`, which recomputes the whole sequence per token, at O(1) tokens a step.
    /// Like it, stops at `maxTokens`, at end-of-sequence when `stopAtEOS`, or when the sequence fills
    /// the context; a prompt that leaves no room for a token is an error, as in `generate(prompts:)`.
    public func generate(ids prompt: [Int32], maxTokens: Int, sampler: inout Sampler,
                         stopAtEOS: Bool = true, onToken: (Int32) -> Void = { _ in }) throws -> [Int32] {
        guard !prompt.isEmpty else { throw ModelError.emptyPrompt }
        if maxTokens > 0, prompt.count >= model.config.context {
            throw ModelError.contextOverflow(tokens: prompt.count, context: model.config.context)
        }
        // Positions fed to produce the n-th token: prompt + n - 1, at most context - 1 (as Generator).
        let room = min(model.config.context - 1, prompt.count + maxTokens - 1)
        guard maxTokens > 0, prompt.count <= room else { return [] }
        let cache = KVCache(config: model.config, capacity: room)
        var out: [Int32] = [], feed = prompt
        while true {
            let logits = try model.decode([feed], caches: [cache])
            let id = sampler.next(logits[...])
            if stopAtEOS, tokenizer.endsGeneration(id) { break }
            out.append(id)
            onToken(id)
            if out.count == maxTokens || cache.length + 1 > room { break }
            feed = [id]
        }
        return out
    }

    /// Independent generations: `jobs[j]` (prompts, `samplers[j]` one per prompt) gives exactly what
    /// `generate(prompts: jobs[j], …)` gives it alone, token for token. A job's first step (its
    /// prompts) runs alone, as there; after it, the one-token steps of several jobs, up to `maxRows`
    /// sequences, run as one `decode` whose float32 products stay per job (`groups`), so the quantized
    /// kernels read each weight once for all of them instead of once per job. Jobs start in order as
    /// sequences finish; `onDone(j, tokens)` as job j ends. A job of more than `maxRows` prompts runs alone.
    public func generate(jobs: [[[Int32]]], samplers: inout [[Sampler]], maxTokens: Int, stopAtEOS: Bool = true,
                         maxRows: Int = QuantizedLinear.maxRows,
                         onDone: (Int, [[Int32]]) -> Void = { _, _ in }) throws -> [[[Int32]]] {
        precondition(samplers.count == jobs.count && zip(jobs, samplers).allSatisfy { $0.count == $1.count },
                     "one sampler per prompt")
        let cap = model.config.context, v = model.config.vocab
        for p in jobs.joined() {
            if p.isEmpty { throw ModelError.emptyPrompt }
            if p.count >= cap { throw ModelError.contextOverflow(tokens: p.count, context: cap) }
        }
        var results = [[[Int32]]](repeating: [], count: jobs.count)
        let capacities = jobs.map { $0.map { min(cap, $0.count + maxTokens) } }
        let shared = Set(jobs.indices.filter { maxTokens > 0 && !jobs[$0].isEmpty && jobs[$0].count <= maxRows })
        let need = capacities.map { $0.reduce(0, +) }
        let seqCap = shared.flatMap { capacities[$0] }.max() ?? 0
        let rows = max(shared.map { need[$0] }.max() ?? 0, min(shared.map { need[$0] }.reduce(0, +), maxRows * seqCap))
        let store = PrefixKVCache(config: model.config, layers: 0...(model.config.layers - 1), rows: max(1, rows))
        var free = [0..<rows]  // the store's rows not held by a running job, first fit

        final class Job {
            let index: Int, rows: Range<Int>, caches: [KVCache]
            var out: [[Int32]], feed: [[Int32]], active: [Int]
            init(index: Int, rows: Range<Int>, caches: [KVCache], prompts: [[Int32]]) {
                self.index = index; self.rows = rows; self.caches = caches
                out = Array(repeating: [], count: prompts.count); feed = prompts; active = Array(prompts.indices)
            }
        }
        // One step's sampling for `job` from its rows of `logits`, starting at row `first` (as generate(prompts:)).
        func sample(_ job: Job, _ logits: [Float], first: Int) {
            var next: [Int] = []
            for (i, s) in job.active.enumerated() {
                let id = samplers[job.index][s].next(logits[((first + i) * v)..<((first + i + 1) * v)])
                if stopAtEOS, tokenizer.endsGeneration(id) { continue }
                job.out[s].append(id); job.feed[s] = [id]
                if job.out[s].count < maxTokens, job.caches[s].length < job.caches[s].capacity { next.append(s) }
            }
            job.active = next
        }
        func finish(_ job: Job) {
            results[job.index] = job.out
            free.append(job.rows)
            free.sort { $0.lowerBound < $1.lowerBound }
            free = free.reduce(into: []) { acc, r in  // merge neighbours
                if let last = acc.last, last.upperBound == r.lowerBound { acc[acc.count - 1] = last.lowerBound..<r.upperBound } else { acc.append(r) }
            }
            onDone(job.index, job.out)
        }

        var running: [Job] = []
        var pending = jobs.indices.makeIterator(), waiting = pending.next()
        while waiting != nil || !running.isEmpty {
            // Start jobs, in order, while their sequences and rows fit.
            while let j = waiting {
                if !shared.contains(j) {  // nothing to decode together: alone, as generate(prompts:)
                    results[j] = try generate(prompts: jobs[j], maxTokens: maxTokens, samplers: &samplers[j], stopAtEOS: stopAtEOS)
                    onDone(j, results[j])
                    waiting = pending.next(); continue
                }
                let busy = running.reduce(0) { $0 + $1.active.count }
                guard busy + jobs[j].count <= maxRows, let f = free.firstIndex(where: { $0.count >= need[j] }) else { break }
                let span = free[f].lowerBound..<(free[f].lowerBound + need[j])
                free[f] = span.upperBound..<free[f].upperBound
                var start = span.lowerBound
                let caches = capacities[j].map { c in defer { start += c }; return KVCache(store: store, start: start, capacity: c) }
                let job = Job(index: j, rows: span, caches: caches, prompts: jobs[j])
                sample(job, try model.decode(job.feed, caches: caches), first: 0)
                if job.active.isEmpty { finish(job) } else { running.append(job) }
                waiting = pending.next()
            }
            guard !running.isEmpty else { continue }
            // One token for every running sequence; each job's products apart (decode's groups).
            var tokens: [[Int32]] = [], caches: [KVCache] = [], groups: [Range<Int>] = []
            for job in running {
                groups.append(tokens.count..<(tokens.count + job.active.count))
                for s in job.active { tokens.append(job.feed[s]); caches.append(job.caches[s]) }
            }
            let logits = try model.decode(tokens, caches: caches, groups: groups)
            for (job, g) in zip(running, groups) { sample(job, logits, first: g.lowerBound) }
            for job in running where job.active.isEmpty { finish(job) }
            running.removeAll { $0.active.isEmpty }
        }
        return results
    }

    /// Up to `maxTokens` new tokens per prompt; a sequence stops at end-of-sequence when `stopAtEOS`.
    public func generate(prompts: [[Int32]], maxTokens: Int, samplers: inout [Sampler], stopAtEOS: Bool = true) throws -> [[Int32]] {
        precondition(samplers.count == prompts.count, "one sampler per prompt")
        let cap = model.config.context
        let caches = KVCache.group(config: model.config, capacities: prompts.map { min(cap, $0.count + maxTokens) })
        var out = [[Int32]](repeating: [], count: prompts.count)
        for p in prompts {
            if p.isEmpty { throw ModelError.emptyPrompt }
            if p.count >= cap { throw ModelError.contextOverflow(tokens: p.count, context: cap) }
        }
        var active = maxTokens > 0 ? Array(prompts.indices) : []
        var feed = prompts
        let v = model.config.vocab
        while !active.isEmpty {
            let logits = try model.decode(active.map { feed[$0] }, caches: active.map { caches[$0] })
            var next: [Int] = []
            for (i, s) in active.enumerated() {
                let id = samplers[s].next(logits[(i * v)..<((i + 1) * v)])
                if stopAtEOS, tokenizer.endsGeneration(id) { continue }
                out[s].append(id); feed[s] = [id]
                if out[s].count < maxTokens, caches[s].length < caches[s].capacity { next.append(s) }
            }
            active = next
        }
        return out
    }
}
