// gemma3 (Gemma 3 text models): per-head RMSNorm on Q and K, sandwich norms (`post_attention_norm`,
// `post_ffw_norm` on each sub-block's output before the residual add), GELU-tanh gate, embeddings
// scaled by √C (the tied LM head reads them unscaled), RoPE on halves, and sliding-window local layers:
// every sixth layer ((l + 1) % 6 == 0) is global with the file's RoPE base, the others see the last
// `attention.sliding_window` positions with base `rope.freq_base_swa`, or 10,000 where the file does not
// store it (llama.cpp's values for gemma3). A linear `rope.scaling` (Gemma 3 4B–27B: factor 8) scales the
// global layers only, as in llama.cpp (its freq_scale_swa stays 1). The norm weights in the GGUF already include Gemma's "+1": used as they are.
// The attention scale is 1/√D as in the shared code (Gemma 3's query_pre_attn_scalar equals D).
import Support
import GGUF
import Foundation

extension ArchitectureSpec {
    static let gemma3 = ArchitectureSpec(name: "gemma3") { gguf, c in
        let arch = "gemma3"
        var t = try ArchitectureTraits.common(gguf, arch, c, yarn: false)
        // llama.cpp applies a final logit soft-cap where the file sets one (Gemma 3's own configs do
        // not): refused by name rather than ignored.
        let softcap = "\(arch).final_logit_softcapping"
        if let v = gguf.metadata[softcap], v.doubleValue != 0 {
            throw ModelError.badConfig(key: softcap, detail: "a final logit soft-cap (\(v)) is not supported")
        }
        t.qkNorm = true
        t.sandwichNorms = true
        t.activation = .geluTanh
        t.ropeOrder = .halves
        t.embeddingScale = Float(c.hidden).squareRoot()
        if let v = gguf.metadata[GGUFNames.slidingWindow(arch)] {
            guard let w = v.intValue, w > 0 else {
                throw ModelError.badConfig(key: GGUFNames.slidingWindow(arch), detail: "not a positive integer: \(v)")
            }
            t.slidingWindow = w
        } else {
            t.slidingWindow = 512
        }
        t.globalEvery = 6
        t.ropeBaseLocal = 10_000
        if let v = gguf.metadata[GGUFNames.ropeFreqBaseSWA(arch)] {
            guard let b = v.doubleValue, b.isFinite, b > 0 else {
                throw ModelError.badConfig(key: GGUFNames.ropeFreqBaseSWA(arch), detail: "not a positive number: \(v)")
            }
            t.ropeBaseLocal = Float(b)
        }
        return t
    }
}
