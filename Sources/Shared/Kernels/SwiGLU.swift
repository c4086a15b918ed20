// SwiGLU activation: k = silu(g) ⊙ u with silu(g) = g · σ(g). k is the MLP key of docs/algorithm.md (Notation).
import GGUF
import CQuantKernels
import Foundation

public enum SwiGLU {
    /// Vectorized in C (CQuantKernels/swiglu.c): the scalar loop `x / (1 + exp(−x)) · u`, its
    /// reference in QuantizedLinearTests, took 2.7 ms of a 10-token forward; this takes ≈ 0.15 ms.
    public static func forward(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>, out k: UnsafeMutablePointer<Float>, count n: Int) {
        _ = qk_swiglu(qk_best_isa(), g, u, k, Int64(n))  // fails only for an ISA the CPU lacks
    }

    /// dg = dk ⊙ u ⊙ σ(g)(1 + g(1 − σ(g))), du = dk ⊙ silu(g), vectorized in C like the forward
    /// (swiglu.c).
    public static func backward(dk: UnsafePointer<Float>, gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>,
                                dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count n: Int) {
        _ = qk_swiglu_backward(qk_best_isa(), dk, g, u, dGate, dUp, Int64(n))  // fails only for an ISA the CPU lacks
    }
}
