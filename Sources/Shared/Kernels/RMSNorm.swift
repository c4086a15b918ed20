// RMSNorm: y = x / sqrt(mean(x²) + eps) ⊙ w, per row of x[T×C].
// The forward keeps 1/rms per row (rstd[T]) for the backward.
// Row sums run in 16 fixed lanes (`dot`): a scalar float sum is a chain of dependent adds (4 cycles each),
// and a Gemma block normalizes each row six times, serially between the parallel products. The lanes are
// Swift SIMD, compiled once for every CPU, so the sum is the same on AVX2 and AVX-512 machines.
import GGUF

public enum RMSNorm {
    /// Σ a[i]·b[i] over n elements: 16 lane sums (element i in lane i mod 16), then the lanes and the tail.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD16<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 16 <= n {
            acc += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        var s = acc.sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    public static func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>?, rows t: Int, dim c: Int, eps: Float) {
        for r in 0..<t {
            let xr = x + r * c, yr = y + r * c
            let ss = dot(xr, xr, c)
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
            var acc = SIMD16<Float>(), i = 0
            let rw = UnsafeRawPointer(w), rdy = UnsafeRawPointer(dyr), rx = UnsafeRawPointer(xr)
            while i + 16 <= c {
                acc += rw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * rdy.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                    * rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * s
                i += 16
            }
            var dot = acc.sum()
            while i < c { dot += w[i] * dyr[i] * xr[i] * s; i += 1 }
            let m = dot / Float(c)
            for i in 0..<c {
                let g = s * (w[i] * dyr[i] - xr[i] * s * m)
                dxr[i] = accumulate ? dxr[i] + g : g
            }
        }
    }
}
