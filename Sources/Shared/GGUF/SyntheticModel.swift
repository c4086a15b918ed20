// A tiny random decoder model written with our own GGUF writer, for unit tests that must not need the
// downloads: same tensor names, metadata keys and tokenizer kind (byte-level BPE, `gpt2`/`smollm`)
// as SmolLM2, a few thousand times smaller. `architecture` "qwen2" adds Q/K/V biases; "qwen3" Q/K norms; "phi3"
// fuses Q/K/V and gate/up; "gemma3" adds
// Q/K norms, sandwich norms and a sliding window (the model layer reads the rest from the name). Weights come from a seeded SplitMix64,
// so a given config always produces the same bytes.
import Support

/// Shape and encoding of a synthetic model. Legend: C hidden, F ffn, H heads, D head dim, V vocab.
public struct SyntheticConfig: Sendable, Equatable {
    public var layers: Int
    public var hidden: Int
    public var ffn: Int
    public var heads: Int
    public var kvHeads: Int
    public var contextLength: Int
    public var ropeBase: Float
    public var eps: Float
    /// Tied: no `output.weight`, the LM head is `token_embd.weight` (as in SmolLM2).
    public var tied: Bool
    /// Encoding of the 2-D matrices (embedding, attention, MLP); norms are always F32.
    public var matrixType: TensorEncoding
    /// Matrix entries are uniform in [-weightScale, weightScale); norm weights in 1 ± 0.1.
    public var weightScale: Float
    public var seed: UInt64
    /// `general.architecture`: "llama", "qwen2", "qwen3", "gemma3" or "phi3".
    public var architecture: String
    /// Head dim when not hidden / heads (gemma3 stores it as `attention.key_length`).
    public var headDimOverride: Int?
    /// gemma3's `attention.sliding_window`.
    public var slidingWindow: Int
    /// `rope.scaling.type` and `rope.scaling.factor`, each written when set.
    public var ropeScalingType: String?
    public var ropeScalingFactor: Float?
    /// `rope_freqs.weight` (headDim / 2 values), written last when set.
    public var ropeFreqs: [Float]?
    /// gemma3's `rope.freq_base_swa`, written when set.
    public var ropeBaseSWA: Float?
    /// `rope.scaling.original_context_length` and `rope.scaling.attn_factor`, each written when set.
    public var ropeOriginalContext: Int?
    public var ropeAttnFactor: Float?

    public init(layers: Int = 2, hidden: Int = 64, ffn: Int = 128, heads: Int = 4, kvHeads: Int = 2,
                contextLength: Int = 256, ropeBase: Float = 10000, eps: Float = 1e-5, tied: Bool = true,
                matrixType: TensorEncoding = .f32, weightScale: Float = 0.08, seed: UInt64 = 0x5EED,
                architecture: String = "llama", headDim: Int? = nil, slidingWindow: Int = 4) {
        self.layers = layers; self.hidden = hidden; self.ffn = ffn; self.heads = heads; self.kvHeads = kvHeads
        self.contextLength = contextLength; self.ropeBase = ropeBase; self.eps = eps; self.tied = tied
        self.matrixType = matrixType; self.weightScale = weightScale; self.seed = seed
        self.architecture = architecture; self.headDimOverride = headDim; self.slidingWindow = slidingWindow
    }

    /// D
    public var headDim: Int { headDimOverride ?? (heads > 0 ? hidden / heads : 0) }
    /// V
    public var vocab: Int { SyntheticVocabulary.tokens.count }
}

public enum SyntheticModel {
    public static let architectures = ["llama", "qwen2", "qwen3", "gemma3", "phi3"]

    /// Writes the model to `path` (atomically). `seed`, when given, overrides `config.seed`.
    public static func write(to path: String, config: SyntheticConfig = SyntheticConfig(), seed: UInt64? = nil) throws {
        var c = config
        if let seed { c.seed = seed }
        try writer(c).write(to: path)
    }

    /// The model as a writer (for in-memory use: `GGUFFile(bytes: writer(config).bytes())`).
    public static func writer(_ c: SyntheticConfig = SyntheticConfig()) throws -> GGUFWriter {
        try validate(c)
        var w = GGUFWriter()
        try setMetadata(&w, c)
        var rng = SplitMix64(seed: c.seed)
        func matrix(_ name: String, _ inSize: Int, _ outSize: Int) throws {
            let x = (0..<(inSize * outSize)).map { _ in rng.symmetric(c.weightScale) }
            try w.add(tensor: name, dims: [inSize, outSize], floats: x, as: c.matrixType)
        }
        func norm(_ name: String, _ n: Int? = nil) throws {
            let n = n ?? c.hidden
            try w.add(tensor: name, dims: [n], floats: (0..<n).map { _ in 1 + rng.symmetric(0.1) })
        }
        func vector(_ name: String, _ n: Int) throws {
            try w.add(tensor: name, dims: [n], floats: (0..<n).map { _ in rng.symmetric(0.5) })
        }
        let (C, F, D, V) = (c.hidden, c.ffn, c.headDim, c.vocab)
        try matrix(GGUFNames.tokenEmbd, C, V)
        for l in 0..<c.layers {
            try norm(GGUFNames.attnNorm(l))
            if c.architecture == "phi3" {  // fused: Q, K, V in one matrix; the gate and up in one of 2F rows
                try matrix(GGUFNames.attnQKV(l), C, (c.heads + 2 * c.kvHeads) * D)
                try matrix(GGUFNames.attnOutput(l), c.heads * D, C)
                try norm(GGUFNames.ffnNorm(l))
                try matrix(GGUFNames.ffnUp(l), C, 2 * F)
                try matrix(GGUFNames.ffnDown(l), F, C)
                continue
            }
            try matrix(GGUFNames.attnQ(l), C, c.heads * D)
            try matrix(GGUFNames.attnK(l), C, c.kvHeads * D)
            try matrix(GGUFNames.attnV(l), C, c.kvHeads * D)
            try matrix(GGUFNames.attnOutput(l), c.heads * D, C)
            try norm(GGUFNames.ffnNorm(l))
            try matrix(GGUFNames.ffnGate(l), C, F)
            try matrix(GGUFNames.ffnUp(l), C, F)
            try matrix(GGUFNames.ffnDown(l), F, C)
            if c.architecture == "qwen2" {
                try vector(GGUFNames.attnQBias(l), c.heads * D)
                try vector(GGUFNames.attnKBias(l), c.kvHeads * D)
                try vector(GGUFNames.attnVBias(l), c.kvHeads * D)
            }
            if c.architecture == "qwen3" {
                try norm(GGUFNames.attnQNorm(l), D)
                try norm(GGUFNames.attnKNorm(l), D)
            }
            if c.architecture == "gemma3" {
                try norm(GGUFNames.attnQNorm(l), D)
                try norm(GGUFNames.attnKNorm(l), D)
                try norm(GGUFNames.postAttentionNorm(l))
                try norm(GGUFNames.postFFNNorm(l))
            }
        }
        try norm(GGUFNames.outputNorm)
        if !c.tied { try matrix(GGUFNames.output, C, V) }
        if let f = c.ropeFreqs { try w.add(tensor: GGUFNames.ropeFreqs, dims: [f.count], floats: f) }
        return w
    }

    /// Expected GGML dims ([in, out]) of every tensor of `c`, in file order.
    public static func expectedShapes(_ c: SyntheticConfig) -> [(name: String, dims: [Int])] {
        let (C, F, D, V) = (c.hidden, c.ffn, c.headDim, c.vocab)
        var s: [(name: String, dims: [Int])] = [(GGUFNames.tokenEmbd, [C, V])]
        for l in 0..<c.layers {
            if c.architecture == "phi3" {
                s += [(GGUFNames.attnNorm(l), [C]), (GGUFNames.attnQKV(l), [C, (c.heads + 2 * c.kvHeads) * D]),
                      (GGUFNames.attnOutput(l), [c.heads * D, C]), (GGUFNames.ffnNorm(l), [C]),
                      (GGUFNames.ffnUp(l), [C, 2 * F]), (GGUFNames.ffnDown(l), [F, C])]
                continue
            }
            s += [(GGUFNames.attnNorm(l), [C]), (GGUFNames.attnQ(l), [C, c.heads * D]),
                  (GGUFNames.attnK(l), [C, c.kvHeads * D]), (GGUFNames.attnV(l), [C, c.kvHeads * D]),
                  (GGUFNames.attnOutput(l), [c.heads * D, C]), (GGUFNames.ffnNorm(l), [C]),
                  (GGUFNames.ffnGate(l), [C, F]), (GGUFNames.ffnUp(l), [C, F]), (GGUFNames.ffnDown(l), [F, C])]
            if c.architecture == "qwen2" {
                s += [(GGUFNames.attnQBias(l), [c.heads * D]), (GGUFNames.attnKBias(l), [c.kvHeads * D]), (GGUFNames.attnVBias(l), [c.kvHeads * D])]
            }
            if c.architecture == "qwen3" { s += [(GGUFNames.attnQNorm(l), [D]), (GGUFNames.attnKNorm(l), [D])] }
            if c.architecture == "gemma3" {
                s += [(GGUFNames.attnQNorm(l), [D]), (GGUFNames.attnKNorm(l), [D]),
                      (GGUFNames.postAttentionNorm(l), [C]), (GGUFNames.postFFNNorm(l), [C])]
            }
        }
        s.append((GGUFNames.outputNorm, [C]))
        if !c.tied { s.append((GGUFNames.output, [C, V])) }
        if let f = c.ropeFreqs { s.append((GGUFNames.ropeFreqs, [f.count])) }
        return s
    }

    private static func validate(_ c: SyntheticConfig) throws {
        let q = GGUFNames.attnQ(0)
        guard c.layers >= 1, c.hidden >= 1, c.ffn >= 1, c.heads >= 1, c.kvHeads >= 1 else {
            throw GGUFError.badShape(tensor: q, detail: "synthetic sizes must be positive: \(c)")
        }
        guard architectures.contains(c.architecture) else {
            throw GGUFError.badShape(tensor: q, detail: "synthetic architecture \(c.architecture) is not one of \(architectures)")
        }
        guard c.headDimOverride != nil || c.hidden % c.heads == 0 else {
            throw GGUFError.badShape(tensor: q, detail: "hidden \(c.hidden) is not a multiple of \(c.heads) heads")
        }
        guard c.heads % c.kvHeads == 0 else {
            throw GGUFError.badShape(tensor: GGUFNames.attnK(0), detail: "\(c.heads) heads are not a multiple of \(c.kvHeads) kv heads")
        }
    }

    private static func setMetadata(_ w: inout GGUFWriter, _ c: SyntheticConfig) throws {
        let a = c.architecture
        let u = { (v: Int) in GGUFValue.uint32(UInt32(clamping: v)) }
        var entries: [(String, GGUFValue)] = [
            (GGUFNames.architecture, .string(a)),
            // Not "…phi3…": llama.cpp gives tokens of a Phi-3 vocabulary ("<s>", "</s>") attributes when the
            // name says phi3, and fails on ours, which has none of them.
            (GGUFNames.name, .string(a == "phi3" ? "synthetic-phi-three" : "synthetic-\(a)")),
            (GGUFNames.blockCount(a), u(c.layers)),
            (GGUFNames.contextLength(a), u(c.contextLength)),
            (GGUFNames.embeddingLength(a), u(c.hidden)),
            (GGUFNames.feedForwardLength(a), u(c.ffn)),
            (GGUFNames.headCount(a), u(c.heads)),
            (GGUFNames.headCountKV(a), u(c.kvHeads)),
            (GGUFNames.ropeFreqBase(a), .float32(c.ropeBase)),
            (GGUFNames.rmsEpsilon(a), .float32(c.eps)),
            (GGUFNames.keyLength(a), u(c.headDim)),
            (GGUFNames.valueLength(a), u(c.headDim)),
            (GGUFNames.vocabSize(a), u(c.vocab)),
            (GGUFNames.ropeDimensionCount(a), u(c.headDim)),
            (GGUFNames.addSpacePrefix, .bool(false)),
            (GGUFNames.addBOSToken, .bool(false)),
            (GGUFNames.tokenizerModel, .string("gpt2")),
            (GGUFNames.tokenizerPre, .string("smollm")),
            (GGUFNames.tokens, .array(.string, SyntheticVocabulary.tokens.map { .string($0) })),
            (GGUFNames.tokenType, .array(.int32, SyntheticVocabulary.tokenTypes.map { .int32($0.rawValue) })),
            (GGUFNames.merges, .array(.string, SyntheticVocabulary.merges.map { .string($0) })),
            (GGUFNames.bosTokenID, .uint32(1)),
            (GGUFNames.eosTokenID, .uint32(2)),
            (GGUFNames.unknownTokenID, .uint32(0)),
            (GGUFNames.paddingTokenID, .uint32(2)),
        ]
        if a == "gemma3" { entries.append((GGUFNames.slidingWindow(a), u(c.slidingWindow))) }
        if let t = c.ropeScalingType { entries.append((GGUFNames.ropeScalingType(a), .string(t))) }
        if let f = c.ropeScalingFactor { entries.append((GGUFNames.ropeScalingFactor(a), .float32(f))) }
        if let b = c.ropeBaseSWA { entries.append((GGUFNames.ropeFreqBaseSWA(a), .float32(b))) }
        if let n = c.ropeOriginalContext { entries.append((GGUFNames.ropeScalingOriginalContext(a), u(n))) }
        if let f = c.ropeAttnFactor { entries.append((GGUFNames.ropeScalingAttnFactor(a), .float32(f))) }
        for (k, v) in entries { try w.set(k, v) }
    }
}
