// What sets one decoder architecture apart from the shared block (Llama.swift, LlamaBackward.swift):
// a few traits, each read from the GGUF by that architecture's own file (Architecture+Llama.swift,
// Architecture+Qwen2.swift, Architecture+Gemma3.swift). The block code branches on traits, never on
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

    public init(name: String) { self.name = name }

    /// Whether layer l uses the sliding window and the local RoPE base.
    public func isLocal(_ l: Int) -> Bool {
        guard slidingWindow != nil else { return false }
        guard let g = globalEvery, g > 0 else { return true }
        return (l + 1) % g != 0
    }
}

/// One supported architecture: how to read its traits from a GGUF whose common hyperparameters are
/// already read into `config` (traits may depend on them, e.g. gemma3's √C).
struct ArchitectureSpec: Sendable {
    let name: String
    let traits: @Sendable (_ gguf: GGUFFile, _ config: LlamaConfig) throws -> ArchitectureTraits

    static let all: [ArchitectureSpec] = [.llama, .qwen2, .gemma3]
    static var names: [String] { all.map(\.name) }
    static func named(_ n: String) -> ArchitectureSpec? { all.first { $0.name == n } }
}
