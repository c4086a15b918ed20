// llama (SmolLM2 and the Llama family): the plain block. RoPE on interleaved pairs, because
// llama.cpp's converter permutes Q/K rows; SiLU gate; optional untied head.
import Support
import GGUF

extension ArchitectureSpec {
    static let llama = ArchitectureSpec(name: "llama") { _, _ in ArchitectureTraits(name: "llama") }
}
