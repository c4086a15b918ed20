// GELU-tanh gated MLP (gemma3): k = gelu(g) ⊙ u with gelu(x) = ½x(1 + tanh(a(x + b x³))), a = √(2/π),
// b = 0.044715 (the tanh approximation Gemma is trained with). Vectorized in C (CQuantKernels/swiglu.c,
// as x·σ(2a(x + b x³)), the same function without tanh): the scalar loop with Foundation.tanh took
// ≈ 7 ms of Gemma 3 270M's 10-token forward. `scalarForward` is the formula as written, for tests.
import GGUF
import CQuantKernels
import Foundation

public enum GeGLU {
    static let a: Float = 0.7978845608028654  // √(2/π)
    static let b: Float = 0.044715

    public static func forward(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>, out k: UnsafeMutablePointer<Float>, count n: Int) {
        _ = qk_geglu(qk_best_isa(), g, u, k, Int64(n))  // fails only for an ISA the CPU lacks
    }

    /// gelu'(x) = ½(1 + t) + ½x(1 − t²)·a(1 + 3b x²), t = tanh(a(x + b x³)); dg = dk ⊙ u ⊙ gelu'(g), du = dk ⊙ gelu(g).
    public static func backward(dk: UnsafePointer<Float>, gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>,
                                dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count n: Int) {
        _ = qk_geglu_backward(qk_best_isa(), dk, g, u, dGate, dUp, Int64(n))
    }

    /// gelu(x) by the tanh formula, in Double: the reference of the kernels' tests.
    public static func scalarGELU(_ x: Float) -> Double {
        let x = Double(x), a = Double(Self.a), b = Double(Self.b)
        return 0.5 * x * (1 + Foundation.tanh(a * (x + b * x * x * x)))
    }

    /// gelu'(x) by the tanh formula, in Double.
    public static func scalarGELUDerivative(_ x: Float) -> Double {
        let x = Double(x), a = Double(Self.a), b = Double(Self.b)
        let t = Foundation.tanh(a * (x + b * x * x * x))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * a * (1 + 3 * b * x * x)
    }
}
