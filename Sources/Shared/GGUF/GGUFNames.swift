// The one table of GGUF tensor names and metadata keys used for LLaMA-family models (llama.cpp's
// names, `gguf-py/gguf/constants.py`). No other file spells these strings.
import Support

public enum GGUFNames {
    // MARK: - tensors (GGML dims are [in, out]; row-major out × in)

    /// [C, V]
    public static let tokenEmbd = "token_embd.weight"
    /// [C]
    public static let outputNorm = "output_norm.weight"
    /// [C, V]; absent when the LM head is tied to `tokenEmbd`.
    public static let output = "output.weight"
    /// [ropeDims / 2]: llama 3's divisor of θ per rotated pair (optional; llama only).
    public static let ropeFreqs = "rope_freqs.weight"

    /// [C]
    public static func attnNorm(_ l: Int) -> String { block(l, "attn_norm") }
    /// [C, H·D]
    public static func attnQ(_ l: Int) -> String { block(l, "attn_q") }
    /// [C, KV·D]
    public static func attnK(_ l: Int) -> String { block(l, "attn_k") }
    /// [C, KV·D]
    public static func attnV(_ l: Int) -> String { block(l, "attn_v") }
    /// [H·D, C]
    public static func attnOutput(_ l: Int) -> String { block(l, "attn_output") }
    /// [C]
    public static func ffnNorm(_ l: Int) -> String { block(l, "ffn_norm") }
    /// [C, F]
    public static func ffnGate(_ l: Int) -> String { block(l, "ffn_gate") }
    /// [C, F]; phi3: [C, 2F], the gate's F rows then the up projection's (no `ffn_gate`).
    public static func ffnUp(_ l: Int) -> String { block(l, "ffn_up") }
    /// [F, C]
    public static func ffnDown(_ l: Int) -> String { block(l, "ffn_down") }

    // Tensors some architectures add (Model/Architecture*.swift says which).
    /// Biases [H·D], [KV·D], [KV·D] (qwen2).
    public static func attnQBias(_ l: Int) -> String { "blk.\(l).attn_q.bias" }
    public static func attnKBias(_ l: Int) -> String { "blk.\(l).attn_k.bias" }
    public static func attnVBias(_ l: Int) -> String { "blk.\(l).attn_v.bias" }
    /// Q, K and V in one matrix [C, H·D + 2·KV·D], rows in that order (phi3).
    public static func attnQKV(_ l: Int) -> String { block(l, "attn_qkv") }
    /// Per-head RMSNorm weights on Q and K [D] (gemma3).
    public static func attnQNorm(_ l: Int) -> String { block(l, "attn_q_norm") }
    public static func attnKNorm(_ l: Int) -> String { block(l, "attn_k_norm") }
    /// Sandwich norms [C] on the attention and MLP outputs before they join the residual (gemma3).
    public static func postAttentionNorm(_ l: Int) -> String { block(l, "post_attention_norm") }
    public static func postFFNNorm(_ l: Int) -> String { block(l, "post_ffw_norm") }

    private static func block(_ l: Int, _ name: String) -> String { "blk.\(l).\(name).weight" }

    /// The nine tensors of block `l`, in llama.cpp's file order.
    public static func blockTensors(_ l: Int) -> [String] {
        [attnNorm(l), attnQ(l), attnK(l), attnV(l), attnOutput(l), ffnNorm(l), ffnGate(l), ffnUp(l), ffnDown(l)]
    }

    // MARK: - general metadata

    public static let architecture = "general.architecture"
    public static let alignment = "general.alignment"
    public static let name = "general.name"
    public static let fileType = "general.file_type"
    public static let quantizationVersion = "general.quantization_version"

    // MARK: - what `alphaedit export` records in an edited model (EditState.checkModel reads it)

    /// FNV-1a-64 of the GGUF file the edits were made on.
    public static let editedFromChecksum = "alphaedit.edited_from.checksum"
    /// FNV-1a-64 of the campaign's facts file.
    public static let editedFactsChecksum = "alphaedit.edited.facts_checksum"
    /// Committed batches the exported weights contain.
    public static let editedBatches = "alphaedit.edited.batches"

    // MARK: - architecture metadata (prefixed by the value of `general.architecture`, e.g. "llama")

    public static func blockCount(_ arch: String) -> String { "\(arch).block_count" }
    public static func contextLength(_ arch: String) -> String { "\(arch).context_length" }
    public static func embeddingLength(_ arch: String) -> String { "\(arch).embedding_length" }
    public static func feedForwardLength(_ arch: String) -> String { "\(arch).feed_forward_length" }
    public static func headCount(_ arch: String) -> String { "\(arch).attention.head_count" }
    public static func headCountKV(_ arch: String) -> String { "\(arch).attention.head_count_kv" }
    public static func rmsEpsilon(_ arch: String) -> String { "\(arch).attention.layer_norm_rms_epsilon" }
    public static func keyLength(_ arch: String) -> String { "\(arch).attention.key_length" }
    public static func valueLength(_ arch: String) -> String { "\(arch).attention.value_length" }
    public static func ropeFreqBase(_ arch: String) -> String { "\(arch).rope.freq_base" }
    public static func ropeDimensionCount(_ arch: String) -> String { "\(arch).rope.dimension_count" }
    public static func ropeScalingType(_ arch: String) -> String { "\(arch).rope.scaling.type" }
    public static func vocabSize(_ arch: String) -> String { "\(arch).vocab_size" }
    public static func slidingWindow(_ arch: String) -> String { "\(arch).attention.sliding_window" }
    public static func ropeScalingFactor(_ arch: String) -> String { "\(arch).rope.scaling.factor" }
    /// The older key of the linear RoPE factor (llama.cpp reads it when `rope.scaling.factor` is absent).
    public static func ropeScaleLinear(_ arch: String) -> String { "\(arch).rope.scale_linear" }
    public static func ropeScalingAttnFactor(_ arch: String) -> String { "\(arch).rope.scaling.attn_factor" }
    public static func ropeScalingOriginalContext(_ arch: String) -> String { "\(arch).rope.scaling.original_context_length" }
    /// RoPE base of sliding-window layers (gemma3; llama.cpp's default 10,000 where absent).
    public static func ropeFreqBaseSWA(_ arch: String) -> String { "\(arch).rope.freq_base_swa" }

    // MARK: - tokenizer metadata

    public static let tokenizerModel = "tokenizer.ggml.model"
    public static let tokenizerPre = "tokenizer.ggml.pre"
    public static let tokens = "tokenizer.ggml.tokens"
    public static let merges = "tokenizer.ggml.merges"
    public static let tokenType = "tokenizer.ggml.token_type"
    public static let bosTokenID = "tokenizer.ggml.bos_token_id"
    public static let eosTokenID = "tokenizer.ggml.eos_token_id"
    public static let unknownTokenID = "tokenizer.ggml.unknown_token_id"
    public static let paddingTokenID = "tokenizer.ggml.padding_token_id"
    public static let addBOSToken = "tokenizer.ggml.add_bos_token"
    public static let addEOSToken = "tokenizer.ggml.add_eos_token"
    public static let addSpacePrefix = "tokenizer.ggml.add_space_prefix"
    public static let chatTemplate = "tokenizer.chat_template"

    /// `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`).
    public enum TokenType: Int32, Sendable {
        case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }
}
