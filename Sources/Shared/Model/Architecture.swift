// What sets one decoder architecture apart from the shared block (Llama.swift, LlamaBackward.swift):
// a few traits, each read from the GGUF by that architecture's own file (Architecture+Llama.swift,
// Architecture+Qwen2.swift, Architecture+Qwen3.swift, Architecture+Gemma3.swift, Architecture+Phi3.swift). The block code branches on traits, never on
// a name, so a fourth architecture is one more file plus whatever trait it truly adds.
// The tensors a model must hold follow from its traits (LlamaWeights), so a missing or extra tensor
// is an error naming it for every architecture alike.
import Support
import GGUF
import Kernels
import Foundation

/// How RoPE pairs a head's dimensions: llama.cpp's converter permutes llama's Q/K rows so rotation acts
/// on adjacent pairs (2i, 2i+1); qwen2 and gemma3 are stored unpermuted and rotate halves (i, i + R/2).
public enum RoPEOrder: String, Sendable, Equatable { case interleaved, halves }

/// The gate's nonlinearity in the gated MLP: key = act(gate) ⊙ up.
public enum MLPActivation: String, Sendable, Equatable { case silu, geluTanh }

public struct ArchitectureTraits: Sendable, Equatable {
    /// `general.architecture`.
    public var name: String
    /// Biases on the Q, K and V projections.
    public var attentionBias = false
    public var ropeOrder = RoPEOrder.interleaved
    /// RMSNorm over each head of Q and K (after the projection, before RoPE), weights [D].
    public var qkNorm = false
    /// RMSNorm on the attention and MLP outputs before each joins the residual stream.
    public var sandwichNorms = false
    public var activation = MLPActivation.silu
    /// Token embeddings are multiplied by this (gemma3: √C); the tied LM head uses them unscaled.
    public var embeddingScale: Float?
    /// Local layers attend only to the last `slidingWindow` positions (their own included).
    public var slidingWindow: Int?
    /// With a window: layers l with (l + 1) % globalEvery == 0 are global (full attention, base RoPE);
    /// the others are local (window, `ropeBaseLocal`).
    public var globalEvery: Int?
    public var ropeBaseLocal: Float?
    /// RoPE scaling of the non-local layers, as llama.cpp reads it (`readRoPEScaling(_:arch:context:yarn:)`):
    /// θ × 1 / the factor of a linear or YaRN `rope.scaling`, YaRN's ramp, the attention factor. Local
    /// layers are not scaled (gemma3, as llama.cpp).
    public var ropeScaling = RoPEScaling()
    /// The file may hold `rope_freqs.weight`: one divisor of θ per rotated pair (llama 3.1/3.2's
    /// "llama3" frequency scaling, which llama.cpp reads for llama and no other of these architectures).
    public var ropeFactorsTensor = false
    /// Q, K and V stored as one matrix `attn_qkv` (phi3); split into three at load.
    public var fusedQKV = false
    /// The gate and up projections stored as one `ffn_up` of 2F rows, the gate's first (phi3).
    public var fusedGateUp = false

    public init(name: String) { self.name = name }

    /// Whether layer l uses the sliding window and the local RoPE base.
    public func isLocal(_ l: Int) -> Bool {
        guard slidingWindow != nil else { return false }
        guard let g = globalEvery, g > 0 else { return true }
        return (l + 1) % g != 0
    }
}

/// RoPE scaling as the file states it, as llama.cpp reads it for these architectures (llama-model.cpp,
/// llama-context.cpp, ggml's rope): the type defaults to "linear"; `rope.scaling.factor` (or the older
/// `rope.scale_linear`) gives freq_scale = 1 / factor (none or 0: 1); "none" never scales. "yarn" (where
/// `yarn` allows it) adds the ramp over `rope.scaling.original_context_length` (else the context) with
/// llama.cpp's β_fast 32 and β_slow 1, and multiplies cos and sin by 1 + 0.1·ln(factor) for a factor > 1;
/// `rope.scaling.attn_factor` multiplies them too (1 where absent). LongRoPE and any other type are
/// refused by name rather than run wrong.
func readRoPEScaling(_ gguf: GGUFFile, arch: String, context: Int, yarn allowsYaRN: Bool = true) throws -> RoPEScaling {
    let typeKey = GGUFNames.ropeScalingType(arch)
    var type = "linear"
    if let v = gguf.metadata[typeKey] {
        guard case .string(let s) = v else { throw ModelError.badConfig(key: typeKey, detail: "not a string: \(v)") }
        type = s
    }
    let supported = allowsYaRN ? ["none", "linear", "yarn"] : ["none", "linear"]
    guard supported.contains(type) else {
        throw ModelError.badConfig(key: typeKey, detail: "RoPE scaling \"\(type)\" is not supported (supported: \(supported.joined(separator: ", ")))")
    }
    var factor = 0.0
    for key in [GGUFNames.ropeScalingFactor(arch), GGUFNames.ropeScaleLinear(arch)] {
        guard let v = gguf.metadata[key] else { continue }
        guard let f = v.doubleValue, f.isFinite, f >= 0 else { throw ModelError.badConfig(key: key, detail: "not a factor ≥ 0: \(v)") }
        factor = f
        break
    }
    var s = RoPEScaling()
    s.freqScale = type == "none" || factor == 0 ? 1 : Float(1 / factor)
    let attnKey = GGUFNames.ropeScalingAttnFactor(arch)
    if let v = gguf.metadata[attnKey] {
        guard let a = v.doubleValue, a.isFinite, a > 0 else { throw ModelError.badConfig(key: attnKey, detail: "not a number > 0: \(v)") }
        guard allowsYaRN || a == 1 else {
            throw ModelError.badConfig(key: attnKey, detail: "a RoPE attention factor other than 1 is not supported here (found \(a))")
        }
        s.magnitude = Float(a)
    }
    if type == "yarn" {
        let key = GGUFNames.ropeScalingOriginalContext(arch)
        if let v = gguf.metadata[key] {
            guard let n = v.intValue, n > 0 else { throw ModelError.badConfig(key: key, detail: "not a positive integer: \(v)") }
            s.yarnOriginalContext = n
        } else {
            s.yarnOriginalContext = context
        }
        let f = 1 / s.freqScale  // llama.cpp: attn_factor · (1 + 0.1 ln f), in float
        if f > 1 { s.magnitude *= 1 + 0.1 * logf(f) }
    }
    return s
}

extension ArchitectureTraits {
    /// What every architecture reads alike: its name and the RoPE scaling of its file.
    static func common(_ gguf: GGUFFile, _ name: String, _ c: LlamaConfig, yarn: Bool = true) throws -> ArchitectureTraits {
        var t = ArchitectureTraits(name: name)
        t.ropeScaling = try readRoPEScaling(gguf, arch: name, context: c.context, yarn: yarn)
        return t
    }
}

/// One supported architecture: how to read its traits from a GGUF whose common hyperparameters are
/// already read into `config` (traits may depend on them, e.g. gemma3's √C).
struct ArchitectureSpec: Sendable {
    let name: String
    let traits: @Sendable (_ gguf: GGUFFile, _ config: LlamaConfig) throws -> ArchitectureTraits

    static let all: [ArchitectureSpec] = [.llama, .qwen2, .qwen3, .gemma3, .phi3]
    static var names: [String] { all.map(\.name) }
    static func named(_ n: String) -> ArchitectureSpec? { all.first { $0.name == n } }
}
