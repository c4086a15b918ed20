// phi3 (Phi-3 / Phi-3.5 mini, Phi-4 mini): the llama block with Q, K and V in one matrix `attn_qkv` (or
// apart, as llama.cpp accepts), the gate and up projections in one `ffn_up` of 2F rows (gate first, as
// ggml's swiglu splits it), RoPE on halves, no biases. llama.cpp ignores phi3's sliding window (its
// "Phi SWA is currently disabled"), and so do we, so that both compute the same thing. LongRoPE files
// (Phi-3 128k, Phi-3.5) carry `rope_factors_long/short.weight` and are refused by name.
import Support
import GGUF

extension ArchitectureSpec {
    static let phi3 = ArchitectureSpec(name: "phi3") { gguf, c in
        var t = try ArchitectureTraits.common(gguf, "phi3", c)
        t.ropeOrder = .halves
        t.fusedQKV = gguf.tensorInfo(GGUFNames.attnQKV(0)) != nil
        t.fusedGateUp = true
        return t
    }
}
