// Everything one transformer block computes for a batch, kept for hooks and for the backward pass.
// Shapes: T rows; C hidden, F ffn, Q = H·D, K = KV·D.
import Support
import GGUF
import Tokenization
import Kernels

public final class LayerActivations: @unchecked Sendable {
    public let rows: Int
    public let input: FloatBuffer     // [T × C] residual entering the block
    public let attnIn: FloatBuffer    // [T × C] RMSNorm(input)
    public let attnRstd: FloatBuffer  // [T]
    public let q: FloatBuffer         // [T × Q] after RoPE
    public let k: FloatBuffer         // [T × K] after RoPE
    public let v: FloatBuffer         // [T × K]
    public let probs: FloatBuffer     // attention probabilities (AttentionLayout)
    public let attnOut: FloatBuffer   // [T × Q] before the output projection
    public let mid: FloatBuffer       // [T × C] residual after attention
    public let ffnIn: FloatBuffer     // [T × C] RMSNorm(mid)
    public let ffnRstd: FloatBuffer   // [T]
    public let gate: FloatBuffer      // [T × F]
    public let up: FloatBuffer        // [T × F]
    public let key: FloatBuffer       // [T × F] act(gate) ⊙ up: the MLP key (input of ffn_down)
    public let output: FloatBuffer    // [T × C] block output (residual after the MLP)
    public let mlpOut: FloatBuffer    // [T × C] ffn_down's output, before any post-norm: the edit point
    // Only with the traits that need them (empty otherwise):
    public let qRaw: FloatBuffer      // [T × Q] qkNorm: Q before its per-head norm (and RoPE)
    public let kRaw: FloatBuffer      // [T × K]
    public let qRstd: FloatBuffer     // [T × H]
    public let kRstd: FloatBuffer     // [T × KV]
    public let attnProj: FloatBuffer  // [T × C] sandwichNorms: attnOut·Woᵀ before post_attention_norm
    public let postAttnRstd: FloatBuffer  // [T]
    public let postFFNRstd: FloatBuffer   // [T]

    public init(config c: LlamaConfig, rows t: Int, probCount: Int) {
        rows = t
        input = FloatBuffer(count: t * c.hidden, zeroed: false); attnIn = FloatBuffer(count: t * c.hidden, zeroed: false)
        attnRstd = FloatBuffer(count: t, zeroed: false); q = FloatBuffer(count: t * c.qDim, zeroed: false)
        k = FloatBuffer(count: t * c.kvDim, zeroed: false); v = FloatBuffer(count: t * c.kvDim, zeroed: false)
        probs = FloatBuffer(count: probCount, zeroed: false); attnOut = FloatBuffer(count: t * c.qDim, zeroed: false)
        mid = FloatBuffer(count: t * c.hidden, zeroed: false); ffnIn = FloatBuffer(count: t * c.hidden, zeroed: false)
        ffnRstd = FloatBuffer(count: t, zeroed: false); gate = FloatBuffer(count: t * c.ffn, zeroed: false)
        up = FloatBuffer(count: t * c.ffn, zeroed: false); key = FloatBuffer(count: t * c.ffn, zeroed: false)
        output = FloatBuffer(count: t * c.hidden, zeroed: false)
        mlpOut = FloatBuffer(count: t * c.hidden, zeroed: false)
        let qk = c.traits.qkNorm, sw = c.traits.sandwichNorms
        qRaw = FloatBuffer(count: qk ? t * c.qDim : 0, zeroed: false); kRaw = FloatBuffer(count: qk ? t * c.kvDim : 0, zeroed: false)
        qRstd = FloatBuffer(count: qk ? t * c.heads : 0, zeroed: false); kRstd = FloatBuffer(count: qk ? t * c.kvHeads : 0, zeroed: false)
        attnProj = FloatBuffer(count: sw ? t * c.hidden : 0, zeroed: false)
        postAttnRstd = FloatBuffer(count: sw ? t : 0, zeroed: false); postFFNRstd = FloatBuffer(count: sw ? t : 0, zeroed: false)
    }
}
