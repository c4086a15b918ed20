// `alphaedit bench forward`: the engine's speed on the shapes the product uses.
// 10-token prompt (logits at the last position), greedy generation steps after it on a KV cache (one
// token each: what `generate` does per token), and a 32 × 24-token batch (the shape of edit work).
import Support
import Corpus
import Kernels
import Model
import Tokenization
import Editing
import Wire
import Cluster
import Foundation

public struct ForwardBenchmark {
    public struct Result: Codable, Sendable {
        public var prompt_tokens: Int
        public var median_ms: Double
        public var runs_ms: [Double]
        public var batch_sequences: Int
        public var batch_tokens: Int
        public var batch_median_ms: Double
        public var batch_tokens_per_s: Double
        public var gflops: Double
        public var load_s: Double
        public var rss_mb: Double
        public var threads: Int
        /// FLOPs of the 10-token forward (`flops`, logits at its last position), in GFLOP.
        public var prompt_gflop: Double = 0
        /// OpenBLAS sgemm, 2048³ float32 on the same threads, in the same process right after the
        /// 10-token runs (median of 5): this machine's rate for the target below.
        public var sgemm_gflops: Double = 0
        /// The FLOP target for the 10-token forward: 1.5 × its float32 FLOPs at `sgemm_gflops`.
        public var target_ms: Double = 0
        /// Greedy decode steps timed after the 10-token prompt (`decodeSteps`), one token each on a KV cache.
        public var decode_steps: Int = 0
        public var decode_step_ms: Double = 0
        public var decode_tokens_per_s: Double = 0
        public var kernels = KernelChoice.current
        /// `float32` (copies dequantized at load) or `lean` (matrices read from the mapped file), `ALPHAEDIT_WEIGHTS`.
        public var weights: String = WeightResidency.float32.rawValue
        /// `float32` or `int8`: the few-token products' activations (`--activations`, `Activations`).
        public var activations: String = Activations.float32.rawValue
        /// With `--breakdown`: where the time of a 10-token forward and of a generation step goes.
        public var breakdown: Breakdown?
    }

    /// Separate passes with `LlamaModel.profile` installed (after the timed runs, whose figures stay
    /// free of its clock reads): the mean time a pass spends in each kind of matrix product.
    public struct Breakdown: Codable, Sendable {
        public var prompt_passes: Int
        /// Mean wall time of a profiled 10-token forward, and the part outside the products (attention,
        /// norms, RoPE, activations, the embedding, the final norm).
        public var prompt_ms: Double
        public var prompt_other_ms: Double
        public var prompt: [Row]
        public var step_passes: Int
        public var step_ms: Double
        public var step_other_ms: Double
        public var step: [Row]
    }

    /// The products of one role (`ProductProfile.Role`: q, k, v, o, gate, up, down, head), kernel and row count.
    public struct Row: Codable, Sendable {
        public var role: String
        /// The stored format the quantized kernel read, or "F32" (float32 BLAS).
        public var kernel: String
        public var out_dim: Int
        public var in_dim: Int
        public var tokens: Int
        /// Per pass.
        public var calls: Double
        public var ms: Double
        public var gflops: Double
        /// Megabytes of stored weights a pass reads in these products.
        public var weight_mb: Double
    }

    /// Rows of `profile` as means over `passes`.
    public static func rows(_ profile: ProductProfile, passes: Int) -> [Row] {
        profile.entries.map { key, totals in
            let calls = Double(totals.calls) / Double(passes), seconds = totals.seconds / Double(passes)
            let elements = Double(key.outDim * key.inDim)
            let bytesPerWeight = Double(key.kernel.blockBytes) / Double(key.kernel.blockSize)
            return Row(role: key.role.rawValue, kernel: key.kernel.description, out_dim: key.outDim, in_dim: key.inDim, tokens: key.tokens,
                       calls: calls, ms: seconds * 1000,
                       gflops: seconds > 0 ? calls * 2 * elements * Double(key.tokens) / seconds / 1e9 : 0,
                       weight_mb: calls * elements * bytesPerWeight / 1e6)
        }
    }

    /// Profiles `passes` 10-token forwards of `prompt` and the generation steps of `rounds` × 16 tokens after it.
    public static func breakdown(model: LlamaModel, prompt: [Int32], passes: Int, rounds: Int) throws -> Breakdown {
        let single = TokenBatch([prompt])
        let profile = ProductProfile()
        var total = 0.0
        for _ in 0..<passes {
            model.profile = profile
            defer { model.profile = nil }
            let t0 = ProcessStats.now()
            _ = try model.forward(single, logitRows: [prompt.count - 1])
            total += ProcessStats.now() - t0
        }
        let promptRows = rows(profile, passes: passes)
        let promptMs = total / Double(passes) * 1000
        let stepProfile = ProductProfile()
        let steps = try decodeSteps(model: model, prompt: prompt, steps: 16, rounds: rounds, profile: stepProfile)
        let stepRows = rows(stepProfile, passes: steps.seconds.count)
        let stepMs = steps.seconds.reduce(0, +) / Double(steps.seconds.count) * 1000
        return Breakdown(prompt_passes: passes, prompt_ms: promptMs, prompt_other_ms: promptMs - promptRows.reduce(0) { $0 + $1.ms },
                         prompt: promptRows, step_passes: steps.seconds.count, step_ms: stepMs,
                         step_other_ms: stepMs - stepRows.reduce(0) { $0 + $1.ms }, step: stepRows)
    }

    /// `rounds` greedy generations of `steps` tokens after `prompt`, each on a fresh KV cache: the time of
    /// every step (one new token through the blocks and the LM head, `LlamaModel.decode`; the prompt's
    /// own step untimed) and the tokens of the last round.
    /// With `profile`, it is installed on the model for the timed steps only.
    public static func decodeSteps(model: LlamaModel, prompt: [Int32], steps: Int, rounds: Int,
                                   profile: ProductProfile? = nil) throws -> (seconds: [Double], tokens: [Int32]) {
        var seconds: [Double] = [], tokens: [Int32] = []
        for _ in 0..<rounds {
            let cache = KVCache(config: model.config, capacity: prompt.count + steps)
            var logits = try model.decode([prompt], caches: [cache])
            tokens = []
            for _ in 0..<steps {
                let next = Int32(Sampler.argmax(logits))
                tokens.append(next)
                model.profile = profile
                defer { model.profile = nil }
                let t0 = ProcessStats.now()
                logits = try model.decode([[next]], caches: [cache])
                seconds.append(ProcessStats.now() - t0)
            }
        }
        return (seconds, tokens)
    }

    /// Median GFLOP/s of `runs` float32 sgemm products of n × n × n (BLAS's configured threads).
    public static func sgemmRate(n: Int = 2048, runs: Int = 5) throws -> Double {
        let a = FloatBuffer(count: n * n, zeroed: false), b = FloatBuffer(count: n * n, zeroed: false)
        let c = FloatBuffer(count: n * n, zeroed: true)
        for i in 0..<(n * n) { a.ptr[i] = Float(i % 7) * 0.1; b.ptr[i] = Float(i % 5) * 0.2 }
        BLAS.sgemm(m: n, n: n, k: n, a: a.ptr, lda: n, b: b.ptr, ldb: n, c: c.ptr, ldc: n)  // warm-up
        let times = try ProcessStats.time(runs: runs) {
            BLAS.sgemm(m: n, n: n, k: n, a: a.ptr, lda: n, b: b.ptr, ldb: n, c: c.ptr, ldc: n)
        }
        return 2.0 * Double(n * n * n) / ProcessStats.median(times) / 1e9
    }

    /// FLOPs of a forward over a batch: the linear layers (2 per weight per token), attention
    /// (QKᵀ and PV over the causal half), and the LM head at `logitRows` rows.
    public static func flops(config c: LlamaConfig, lengths: [Int], logitRows: Int) -> Double {
        let perToken = 2.0 * Double(c.hidden * (c.qDim + 2 * c.kvDim) + c.qDim * c.hidden + 3 * c.hidden * c.ffn)
        let tokens = Double(lengths.reduce(0, +))
        let attn = lengths.reduce(0.0) { acc, n in acc + 2.0 * 2.0 * Double(c.heads * c.headDim) * Double(n * (n + 1) / 2) }
        return Double(c.layers) * (perToken * tokens + attn) + 2.0 * Double(c.hidden * c.vocab) * Double(logitRows)
    }

    public static func run(modelPath: String, threads: Int, runs: Int = 7, corpus: String?, breakdown: Bool = false,
                           activations: Activations = .float32) throws -> Result {
        var loads: [Double] = []
        for _ in 0..<2 {
            // Each copy is freed before the next load, so peak memory stays one model.
            let t0 = ProcessStats.now()
            _ = try LlamaModel(path: modelPath)
            loads.append(ProcessStats.now() - t0)
        }
        let t0 = ProcessStats.now()
        let model = try LlamaModel(path: modelPath)
        loads.append(ProcessStats.now() - t0)
        model.quantized.activations = activations
        let tok = try BPETokenizer(gguf: model.gguf)
        var prompt = tok.encode("The capital of France is a city that many people", addSpecial: true)
        prompt = Array(prompt.prefix(10))
        let single = TokenBatch([prompt])
        _ = try model.forward(single, logitRows: [prompt.count - 1])
        let singleRuns = try ProcessStats.time(runs: max(5, runs * 3)) {
            _ = try model.forward(single, logitRows: [prompt.count - 1])
        }
        let decode = try decodeSteps(model: model, prompt: prompt, steps: 16, rounds: max(3, runs / 2))
        let step = ProcessStats.median(decode.seconds)
        let sgemm = try sgemmRate()
        let promptFlops = flops(config: model.config, lengths: [prompt.count], logitRows: 1)
        // 32 real sentences cut to 24 tokens.
        var seqs: [[Int32]] = []
        if let corpus, let lines = try? SentenceCorpus.read(path: corpus, limit: 400) {
            for s in lines where seqs.count < 32 {
                let ids = tok.encode(s, addSpecial: true)
                if ids.count >= 24 { seqs.append(Array(ids.prefix(24))) }
            }
        }
        while seqs.count < 32 { seqs.append(Array(repeating: prompt, count: 3).flatMap { $0 }.prefix(24).map { $0 }) }
        let batch = TokenBatch(seqs)
        _ = try model.forward(batch, logitRows: batch.lastRows)
        let batchRuns = try ProcessStats.time(runs: max(5, runs)) {
            _ = try model.forward(batch, logitRows: batch.lastRows)
        }
        let bm = ProcessStats.median(batchRuns)
        let fl = flops(config: model.config, lengths: batch.lengths, logitRows: batch.sequences)
        let split = breakdown ? try Self.breakdown(model: model, prompt: prompt, passes: max(5, runs * 3), rounds: max(3, runs / 2)) : nil
        return Result(prompt_tokens: prompt.count, median_ms: ProcessStats.median(singleRuns) * 1000,
                      runs_ms: singleRuns.map { ($0 * 10000).rounded() / 10 },
                      batch_sequences: batch.sequences, batch_tokens: batch.count, batch_median_ms: bm * 1000,
                      batch_tokens_per_s: Double(batch.count) / bm, gflops: fl / bm / 1e9,
                      load_s: ProcessStats.median(loads), rss_mb: ProcessStats.residentMB(), threads: threads,
                      prompt_gflop: promptFlops / 1e9, sgemm_gflops: sgemm, target_ms: 1.5 * promptFlops / (sgemm * 1e9) * 1000,
                      decode_steps: decode.seconds.count, decode_step_ms: step * 1000, decode_tokens_per_s: 1 / step,
                      kernels: KernelChoice.current.reading(copies: model.quantized.copiedFormats),
                      weights: model.weights.residency.rawValue, activations: activations.rawValue, breakdown: split)
    }
}
