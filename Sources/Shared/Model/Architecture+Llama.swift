// llama (SmolLM2 and the Llama family): the plain block. RoPE on interleaved pairs, because
// llama.cpp's converter permutes Q/K rows; SiLU gate; optional untied head. Linear RoPE scaling as
// the file states it, and Llama 3.1/3.2's per-pair frequency divisors from `rope_freqs.weight`.
import Support
import GGUF

extension ArchitectureSpec {
    static let llama = ArchitectureSpec(name: "llama") { gguf, c in
        var t = try ArchitectureTraits.common(gguf, "llama", c)
        t.ropeFactorsTensor = true
        return t
    }
}
