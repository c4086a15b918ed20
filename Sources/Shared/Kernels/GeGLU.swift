// GELU-tanh gated MLP (gemma3): k = gelu(g) ⊙ u with gelu(x) = ½x(1 + tanh(a(x + b x³))), a = √(2/π),
// b = 0.044715 (the tanh approximation Gemma is trained with). Scalar code: the gate is T × F values, a
// small cost beside the matrix products around it.
import GGUF
import Foundation

public enum GeGLU {
    static let a: Float = 0.7978845608028654  // √(2/π)
    static let b: Float = 0.044715

    @inline(__always) static func gelu(_ x: Float) -> Float {
        0.5 * x * (1 + Foundation.tanh(a * (x + b * x * x * x)))
    }

    public static func forward(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>, out k: UnsafeMutablePointer<Float>, count n: Int) {
        for i in 0..<n { k[i] = gelu(g[i]) * u[i] }
    }

    /// gelu'(x) = ½(1 + t) + ½x(1 − t²)·a(1 + 3b x²), t = tanh(a(x + b x³)); dg = dk ⊙ u ⊙ gelu'(g), du = dk ⊙ gelu(g).
    public static func backward(dk: UnsafePointer<Float>, gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>,
                                dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count n: Int) {
        for i in 0..<n {
            let x = g[i]
            let t = Foundation.tanh(a * (x + b * x * x * x))
            dUp[i] = dk[i] * 0.5 * x * (1 + t)
            let d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * a * (1 + 3 * b * x * x)
            dGate[i] = dk[i] * u[i] * d
        }
    }
}
