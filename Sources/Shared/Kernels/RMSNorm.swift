// RMSNorm: y = x / sqrt(mean(x²) + eps) ⊙ w, per row of x[T×C].
// The forward keeps 1/rms per row (rstd[T]) for the backward.
import GGUF

public enum RMSNorm {
    public static func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>?, rows t: Int, dim c: Int, eps: Float) {
        for r in 0..<t {
            let xr = x + r * c, yr = y + r * c
            var ss: Float = 0
            for i in 0..<c { ss += xr[i] * xr[i] }
            let s = 1 / (ss / Float(c) + eps).squareRoot()
            rstd?[r] = s
            for i in 0..<c { yr[i] = xr[i] * s * w[i] }
        }
    }

    /// dx[T×C] (+)= ∂L/∂x given dy = ∂L/∂y; no weight gradient.
    /// With n = x·s: dx = s · (w⊙dy − n · mean(n ⊙ w⊙dy)).
    public static func backward(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                rstd: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                rows t: Int, dim c: Int, accumulate: Bool) {
        for r in 0..<t {
            let xr = x + r * c, dyr = dy + r * c, dxr = dx + r * c
            let s = rstd[r]
            var dot: Float = 0
            for i in 0..<c { dot += w[i] * dyr[i] * xr[i] * s }
            let m = dot / Float(c)
            for i in 0..<c {
                let g = s * (w[i] * dyr[i] - xr[i] * s * m)
                dxr[i] = accumulate ? dxr[i] + g : g
            }
        }
    }
}
