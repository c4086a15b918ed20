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
    }

    /// `rounds` greedy generations of `steps` tokens after `prompt`, each on a fresh KV cache: the time of
    /// every step (one new token through the blocks and the LM head, `LlamaModel.decode`; the prompt's
    /// own step untimed) and the tokens of the last round.
    public static func decodeSteps(model: LlamaModel, prompt: [Int32], steps: Int, rounds: Int) throws -> (seconds: [Double], tokens: [Int32]) {
        var seconds: [Double] = [], tokens: [Int32] = []
        for _ in 0..<rounds {
            let cache = KVCache(config: model.config, capacity: prompt.count + steps)
            var logits = try model.decode([prompt], caches: [cache])
            tokens = []
            for _ in 0..<steps {
                let next = Int32(Sampler.argmax(logits))
                tokens.append(next)
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

    public static func run(modelPath: String, threads: Int, runs: Int = 7, corpus: String?) throws -> Result {
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
        return Result(prompt_tokens: prompt.count, median_ms: ProcessStats.median(singleRuns) * 1000,
                      runs_ms: singleRuns.map { ($0 * 10000).rounded() / 10 },
                      batch_sequences: batch.sequences, batch_tokens: batch.count, batch_median_ms: bm * 1000,
                      batch_tokens_per_s: Double(batch.count) / bm, gflops: fl / bm / 1e9,
                      load_s: ProcessStats.median(loads), rss_mb: ProcessStats.residentMB(), threads: threads,
                      prompt_gflop: promptFlops / 1e9, sgemm_gflops: sgemm, target_ms: 1.5 * promptFlops / (sgemm * 1e9) * 1000,
                      decode_steps: decode.seconds.count, decode_step_ms: step * 1000, decode_tokens_per_s: 1 / step)
    }
}
