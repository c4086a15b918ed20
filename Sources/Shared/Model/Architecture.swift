// What sets one decoder architecture apart from the shared block (Llama.swift, LlamaBackward.swift):
// a few traits, each read from the GGUF by that architecture's own file (Architecture+Llama.swift,
// Architecture+Qwen2.swift, Architecture+Qwen3.swift, Architecture+Gemma3.swift). The block code branches on traits, never on
// a name, so a fourth architecture is one more file plus whatever trait it truly adds.
// The tensors a model must hold follow from its traits (LlamaWeights), so a missing or extra tensor
// is an error naming it for every architecture alike.
import Support
import GGUF

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
    /// llama.cpp's `freq_scale` of the non-local layers: θ is multiplied by it (1 / the factor of a
    /// linear `rope.scaling`; 1 without scaling). Local layers are not scaled (gemma3, as llama.cpp).
    public var ropeFreqScale: Float = 1
    /// The file may hold `rope_freqs.weight`: one divisor of θ per rotated pair (llama 3.1/3.2's
    /// "llama3" frequency scaling, which llama.cpp reads for llama and no other of these architectures).
    public var ropeFactorsTensor = false

    public init(name: String) { self.name = name }

    /// Whether layer l uses the sliding window and the local RoPE base.
    public func isLocal(_ l: Int) -> Bool {
        guard slidingWindow != nil else { return false }
        guard let g = globalEvery, g > 0 else { return true }
        return (l + 1) % g != 0
    }
}

/// llama.cpp's RoPE frequency scale as the file states it (llama-model.cpp, llama-context.cpp): the
/// scaling type defaults to "linear", whose `rope.scaling.factor` (or the older `rope.scale_linear`)
/// gives freq_scale = 1 / factor (none or 0: 1); "none" never scales. YaRN and LongRoPE change every
/// frequency and the attention's magnitude; they are refused by name rather than run wrong, as is
/// an attention factor other than 1.
func linearRoPEScale(_ gguf: GGUFFile, arch: String) throws -> Float {
    let typeKey = GGUFNames.ropeScalingType(arch)
    var type = "linear"
    if let v = gguf.metadata[typeKey] {
        guard case .string(let s) = v else { throw ModelError.badConfig(key: typeKey, detail: "not a string: \(v)") }
        type = s
    }
    guard type == "linear" || type == "none" else {
        throw ModelError.badConfig(key: typeKey, detail: "RoPE scaling \"\(type)\" is not supported (supported: none, linear)")
    }
    let attnKey = "\(arch).rope.scaling.attn_factor"
    if let v = gguf.metadata[attnKey], v.doubleValue != 1 {
        throw ModelError.badConfig(key: attnKey, detail: "a RoPE attention factor other than 1 is not supported (found \(v))")
    }
    var factor = 0.0
    for key in [GGUFNames.ropeScalingFactor(arch), GGUFNames.ropeScaleLinear(arch)] {
        guard let v = gguf.metadata[key] else { continue }
        guard let f = v.doubleValue, f.isFinite, f >= 0 else { throw ModelError.badConfig(key: key, detail: "not a factor ≥ 0: \(v)") }
        factor = f
        break
    }
    return type == "none" || factor == 0 ? 1 : Float(1 / factor)
}

extension ArchitectureTraits {
    /// What every architecture reads alike: its name and the RoPE scaling of its file.
    static func common(_ gguf: GGUFFile, _ name: String) throws -> ArchitectureTraits {
        var t = ArchitectureTraits(name: name)
        t.ropeFreqScale = try linearRoPEScale(gguf, arch: name)
        return t
    }
}

/// One supported architecture: how to read its traits from a GGUF whose common hyperparameters are
/// already read into `config` (traits may depend on them, e.g. gemma3's √C).
struct ArchitectureSpec: Sendable {
    let name: String
    let traits: @Sendable (_ gguf: GGUFFile, _ config: LlamaConfig) throws -> ArchitectureTraits

    static let all: [ArchitectureSpec] = [.llama, .qwen2, .qwen3, .gemma3]
    static var names: [String] { all.map(\.name) }
    static func named(_ n: String) -> ArchitectureSpec? { all.first { $0.name == n } }
}
