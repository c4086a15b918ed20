// qwen3 (Qwen3 dense models): qwen2's block without the Q/K/V biases and with a per-head RMSNorm on Q and
// K before RoPE (the `qkNorm` trait gemma3 has too); RoPE on halves; SiLU gate; the head tied or not
// (the common code reads that from the tensor table); a head dim of its own (`attention.key_length`,
// e.g. 128 at C = 1024, 16 heads). Linear RoPE scaling as the file states it. As llama.cpp's qwen3.cpp.
import Support
import GGUF

extension ArchitectureSpec {
    static let qwen3 = ArchitectureSpec(name: "qwen3") { gguf, c in
        var t = try ArchitectureTraits.common(gguf, "qwen3", c)
        t.qkNorm = true
        t.ropeOrder = .halves
        return t
    }
}
