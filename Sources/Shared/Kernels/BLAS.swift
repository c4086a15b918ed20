// The one wrapper of OpenBLAS (cblas). Row-major throughout. Each entry has a naive Swift
// reference in `NaiveBLAS` that the tests compare it with.
import GGUF
import CBLAS
import Foundation

public enum BLAS {
    /// Sets OpenBLAS's thread count once at start-up (workers on one machine get their share).
    /// Inside a `singleThreaded` section the count takes effect when the last section ends.
    public static func setThreads(_ n: Int) {
        threadLock.withLock {
            configured = max(1, n)
            if singleSections == 0 { openblas_set_num_threads(Int32(max(1, n))) }
        }
    }

    /// The process's thread setting (the last `setThreads`; OpenBLAS's own default before it).
    public static var configuredThreads: Int {
        threadLock.withLock { configured ?? max(1, Int(openblas_get_num_threads())) }
    }

    /// Runs `body` with OpenBLAS on one thread, for products whose result must not depend on the
    /// process: OpenBLAS's float32 kernels round a row's result differently with the row count of the
    /// call and the thread count (measured with the Haswell kernels: 1 vs 2 threads on the same
    /// 1000×576·576×1536 product changes 5 % of the outputs in the last bit), so a computation that
    /// must equal itself across workers fixes its batches and runs them here. Sections nest and
    /// overlap across threads (counted); the configured count returns when the last one ends.
    public static func singleThreaded<T>(_ body: () throws -> T) rethrows -> T {
        threadLock.withLock {
            if configured == nil { configured = max(1, Int(openblas_get_num_threads())) }
            if singleSections == 0 { openblas_set_num_threads(1) }
            singleSections += 1
        }
        defer {
            threadLock.withLock {
                singleSections -= 1
                if singleSections == 0 { openblas_set_num_threads(Int32(configured ?? 1)) }
            }
        }
        return try body()
    }

    private static let threadLock = NSLock()
    nonisolated(unsafe) private static var configured: Int?
    nonisolated(unsafe) private static var singleSections = 0

    /// C[M×N] = alpha · op(A) · op(B) + beta · C, float32, row-major.
    /// op(A) is M×K (A stored M×K, or K×M when transA); op(B) is K×N (B stored K×N, or N×K when transB).
    @inline(__always)
    public static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Linear layer: y[T×out] (+)= x[T×in] · Wᵀ with W stored out×in (the GGUF matrix layout).
    @inline(__always)
    public static func linear(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                              rows t: Int, inDim: Int, outDim: Int, accumulate: Bool = false) {
        sgemm(transB: true, m: t, n: outDim, k: inDim, a: x, lda: inDim, b: w, ldb: inDim,
              beta: accumulate ? 1 : 0, c: y, ldc: outDim)
    }

    /// Backward of `linear` w.r.t. its input: dx[T×in] (+)= dy[T×out] · W.
    @inline(__always)
    public static func linearBackward(_ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                      rows t: Int, inDim: Int, outDim: Int, accumulate: Bool = false) {
        sgemm(m: t, n: inDim, k: outDim, a: dy, lda: outDim, b: w, ldb: inDim,
              beta: accumulate ? 1 : 0, c: dx, ldc: inDim)
    }

    /// C[M×N] = alpha · op(A) · op(B) + beta · C, float64, row-major.
    @inline(__always)
    public static func dgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
                             b: UnsafePointer<Double>, ldb: Int,
                             beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int) {
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Symmetric rank-k update of the upper triangle: C[N×N] = alpha · Aᵀ A + beta · C with A stored K×N (float64).
    @inline(__always)
    public static func dsyrkUpperAtA(n: Int, k: Int, alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
                                     beta: Double = 1, c: UnsafeMutablePointer<Double>, ldc: Int) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(k), alpha, a, Int32(lda), beta, c, Int32(ldc))
    }

    /// Symmetric rank-k update of the upper triangle in float32: C[N×N] = alpha · Aᵀ A + beta · C, A stored K×N.
    @inline(__always)
    public static func ssyrkUpperAtA(n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                                     beta: Float = 1, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(k), alpha, a, Int32(lda), beta, c, Int32(ldc))
    }
}

/// Naive references of the BLAS entries, for tests only.
public enum NaiveBLAS {
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                             a: [Float], lda: Int, b: [Float], ldb: Int, beta: Float, c: inout [Float], ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var s: Double = 0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                c[i * ldc + j] = alpha * Float(s) + beta * c[i * ldc + j]
            }
        }
    }

    public static func dgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
                             a: [Double], lda: Int, b: [Double], ldb: Int, beta: Double, c: inout [Double], ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var s: Double = 0
                for p in 0..<k {
                    s += (transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j])
                }
                c[i * ldc + j] = alpha * s + beta * c[i * ldc + j]
            }
        }
    }
}
