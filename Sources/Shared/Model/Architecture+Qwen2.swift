// qwen2 (Qwen2 / Qwen2.5): the llama block plus biases on Q, K and V; RoPE rotates halves (the
// converter does not permute qwen2's Q/K); untied `output.weight` (the common code reads tying from
// the tensor table). Linear RoPE scaling as the file states it.
import Support
import GGUF

extension ArchitectureSpec {
    static let qwen2 = ArchitectureSpec(name: "qwen2") { gguf, c in
        var t = try ArchitectureTraits.common(gguf, "qwen2", c)
        t.attentionBias = true
        t.ropeOrder = .halves
        return t
    }
}
