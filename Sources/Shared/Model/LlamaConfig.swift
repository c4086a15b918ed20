// Hyperparameters of a decoder model (llama, qwen2, qwen3, gemma3, phi3), read from GGUF metadata: the numbers
// every architecture has, under `<architecture>.…` keys, plus the architecture's traits (Architecture.swift).
// Legend used across Model/ and Kernels/: T tokens, C hidden, F ffn, H heads, KV kv heads,
// D head dim, V vocab; all matrices row-major, weights out × in.
import Support
import GGUF
import Tokenization
import Kernels

public struct LlamaConfig: Sendable, Equatable {
    public var layers: Int
    public var hidden: Int       // C
    public var ffn: Int          // F
    public var heads: Int        // H
    public var kvHeads: Int      // KV
    public var headDim: Int      // D
    public var vocab: Int        // V
    public var ropeBase: Float
    public var ropeDims: Int
    public var eps: Float
    public var context: Int
    public var tiedEmbeddings: Bool
    /// What this architecture adds to the shared block (biases, norms, window, …).
    public var traits: ArchitectureTraits

    public var qDim: Int { heads * headDim }
    public var kvDim: Int { kvHeads * headDim }

    public init(layers: Int, hidden: Int, ffn: Int, heads: Int, kvHeads: Int, headDim: Int, vocab: Int,
                ropeBase: Float, ropeDims: Int, eps: Float, context: Int, tiedEmbeddings: Bool,
                traits: ArchitectureTraits = ArchitectureTraits(name: "llama")) {
        self.layers = layers; self.hidden = hidden; self.ffn = ffn; self.heads = heads
        self.kvHeads = kvHeads; self.headDim = headDim; self.vocab = vocab; self.ropeBase = ropeBase
        self.ropeDims = ropeDims; self.eps = eps; self.context = context; self.tiedEmbeddings = tiedEmbeddings
        self.traits = traits
    }

    /// Reads and validates the config; an architecture not in `ArchitectureSpec.all` is an error naming it.
    public init(gguf: GGUFFile) throws {
        let arch = (try? gguf.string(GGUFNames.architecture)) ?? "(none)"
        guard let spec = ArchitectureSpec.named(arch) else { throw ModelError.unsupportedArchitecture(arch) }
        func int(_ key: String) throws -> Int {
            guard let v = gguf.metadata[key] else { throw ModelError.badConfig(key: key, detail: "missing") }
            guard let i = v.intValue, i > 0, i < 1 << 24 else { throw ModelError.badConfig(key: key, detail: "not a positive integer: \(v)") }
            return i
        }
        func float(_ key: String, default d: Float?) throws -> Float {
            guard let v = gguf.metadata[key] else {
                if let d { return d }
                throw ModelError.badConfig(key: key, detail: "missing")
            }
            guard let x = v.doubleValue, x.isFinite, x > 0 else { throw ModelError.badConfig(key: key, detail: "not a positive number: \(v)") }
            return Float(x)
        }
        layers = try int(GGUFNames.blockCount(arch))
        // Every block holds at least six tensors (phi3's fused ones; nine elsewhere): a larger count is a corrupt file, refused before
        // anything is sized by it (fuzzing found 16 million blocks taking seconds to refuse).
        guard layers * 6 <= gguf.tensors.count else {
            throw ModelError.badConfig(key: GGUFNames.blockCount(arch),
                                       detail: "\(layers) blocks, but the file holds only \(gguf.tensors.count) tensors")
        }
        hidden = try int(GGUFNames.embeddingLength(arch))
        ffn = try int(GGUFNames.feedForwardLength(arch))
        heads = try int(GGUFNames.headCount(arch))
        kvHeads = gguf.metadata[GGUFNames.headCountKV(arch)] == nil ? heads : try int(GGUFNames.headCountKV(arch))
        guard heads % kvHeads == 0 else { throw ModelError.badConfig(key: GGUFNames.headCountKV(arch), detail: "\(kvHeads) does not divide head count \(heads)") }
        if gguf.metadata[GGUFNames.keyLength(arch)] == nil {
            guard hidden % heads == 0 else { throw ModelError.badConfig(key: GGUFNames.headCount(arch), detail: "\(heads) does not divide hidden size \(hidden)") }
            headDim = hidden / heads
        } else {
            headDim = try int(GGUFNames.keyLength(arch))
        }
        if gguf.metadata[GGUFNames.valueLength(arch)] != nil, try int(GGUFNames.valueLength(arch)) != headDim {
            throw ModelError.badConfig(key: GGUFNames.valueLength(arch), detail: "a value length other than the key length \(headDim) is not supported")
        }
        ropeDims = gguf.metadata[GGUFNames.ropeDimensionCount(arch)] == nil ? headDim : try int(GGUFNames.ropeDimensionCount(arch))
        guard ropeDims <= headDim, ropeDims % 2 == 0 else { throw ModelError.badConfig(key: GGUFNames.ropeDimensionCount(arch), detail: "\(ropeDims) must be even and ≤ head dim \(headDim)") }
        ropeBase = try float(GGUFNames.ropeFreqBase(arch), default: 10000)
        eps = try float(GGUFNames.rmsEpsilon(arch), default: 1e-5)
        context = gguf.metadata[GGUFNames.contextLength(arch)] == nil ? 2048 : try int(GGUFNames.contextLength(arch))
        guard let emb = gguf.tensorInfo(GGUFNames.tokenEmbd) else { throw ModelError.missingTensor(GGUFNames.tokenEmbd) }
        guard emb.dims.count == 2, emb.dims[0] == hidden else {
            throw ModelError.badTensorShape(name: GGUFNames.tokenEmbd, expected: [hidden, -1], found: emb.dims)
        }
        vocab = emb.dims[1]
        tiedEmbeddings = gguf.tensorInfo(GGUFNames.output) == nil
        traits = ArchitectureTraits(name: arch)
        traits = try spec.traits(gguf, self)
    }
}
