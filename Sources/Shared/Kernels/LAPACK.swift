// The one wrapper of LAPACKE (float64, row-major) used by the edit math: symmetric eigendecomposition,
// SPD solve by Cholesky, general LU solve. Each entry has a naive Swift reference in `NaiveLAPACK`
// that the tests compare it with. Failures come back as `LinearAlgebraError`, never as a crash:
// the matrices are derived from model activations, i.e. from input data.
import GGUF
import CBLAS

/// A failed factorisation or a shape that does not fit. `info` is LAPACK's return code.
public enum LinearAlgebraError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Cholesky found a leading minor of order `info` that is not positive (matrix of order `order`).
    case notPositiveDefinite(order: Int, info: Int32)
    /// `dsyevd` did not converge (`info` > 0) or was called wrongly (`info` < 0).
    case eigenFailed(order: Int, info: Int32)
    /// LU found an exactly zero pivot at position `info`.
    case singular(order: Int, info: Int32)
    /// LAPACK rejected argument number `-info` (a programming error on our side, still not a crash).
    case invalidArgument(routine: String, info: Int32)
    /// Operands whose dimensions do not agree; the text names them.
    case shapeMismatch(String)
    /// A dimension too large for LAPACK's 32-bit integers.
    case dimensionTooLarge(Int)
    /// An operand holds NaN or ±infinity (LAPACK's behaviour on those is undefined); the text names it.
    case nonFinite(String)

    public var description: String {
        switch self {
        case let .notPositiveDefinite(order, info):
            return "matrix of order \(order) is not positive definite (leading minor \(info) is not positive)"
        case let .eigenFailed(order, info):
            return "symmetric eigendecomposition of order \(order) failed (dsyevd info \(info))"
        case let .singular(order, info):
            return "matrix of order \(order) is singular (zero pivot at \(info))"
        case let .invalidArgument(routine, info):
            return "\(routine): invalid argument \(-info)"
        case let .shapeMismatch(text):
            return "shape mismatch: \(text)"
        case let .dimensionTooLarge(n):
            return "dimension \(n) exceeds LAPACK's 32-bit index range"
        case let .nonFinite(what):
            return "\(what) contains NaN or infinity"
        }
    }
}

public enum LAPACK {
    @inline(__always)
    static func int32(_ n: Int) throws -> Int32 {
        guard n >= 0, n <= Int(Int32.max) else { throw LinearAlgebraError.dimensionTooLarge(n) }
        return Int32(n)
    }

    static let upper = CChar(UInt8(ascii: "U"))
    static let vectors = CChar(UInt8(ascii: "V"))

    /// Symmetric eigendecomposition A = U Λ Uᵀ (`dsyevd`, divide and conquer), row-major.
    /// Reads the upper triangle of `a` (n×n, leading dimension `lda`); on return `w` holds the n
    /// eigenvalues in ascending order and `a` the eigenvectors as columns: column j (a[i·lda + j],
    /// i = 0..<n) is the unit eigenvector of w[j].
    public static func dsyevd(n: Int, a: UnsafeMutablePointer<Double>, lda: Int,
                              w: UnsafeMutablePointer<Double>) throws {
        let info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, vectors, upper, try int32(n), a, try int32(lda), w)
        if info < 0 { throw LinearAlgebraError.invalidArgument(routine: "dsyevd", info: info) }
        if info > 0 { throw LinearAlgebraError.eigenFailed(order: n, info: info) }
    }

    /// Solves A X = B for symmetric positive-definite A (`dposv`: Cholesky A = Uᵀ U, then two
    /// triangular solves), row-major. Reads the upper triangle of `a` (n×n) and overwrites it with U;
    /// `b` (n×nrhs) is overwritten with X. Throws `.notPositiveDefinite` when Cholesky breaks down.
    public static func dposv(n: Int, nrhs: Int, a: UnsafeMutablePointer<Double>, lda: Int,
                             b: UnsafeMutablePointer<Double>, ldb: Int) throws {
        let info = LAPACKE_dposv(LAPACK_ROW_MAJOR, upper, try int32(n), try int32(nrhs),
                                 a, try int32(lda), b, try int32(ldb))
        if info < 0 { throw LinearAlgebraError.invalidArgument(routine: "dposv", info: info) }
        if info > 0 { throw LinearAlgebraError.notPositiveDefinite(order: n, info: info) }
    }

    /// Solves A X = B for a general square A (`dgesv`: LU with partial pivoting), row-major.
    /// `a` (n×n) is overwritten with its LU factors, `b` (n×nrhs) with X.
    public static func dgesv(n: Int, nrhs: Int, a: UnsafeMutablePointer<Double>, lda: Int,
                             b: UnsafeMutablePointer<Double>, ldb: Int) throws {
        var pivots = [Int32](repeating: 0, count: max(1, n))
        let info = LAPACKE_dgesv(LAPACK_ROW_MAJOR, try int32(n), try int32(nrhs), a, try int32(lda),
                                 &pivots, b, try int32(ldb))
        if info < 0 { throw LinearAlgebraError.invalidArgument(routine: "dgesv", info: info) }
        if info > 0 { throw LinearAlgebraError.singular(order: n, info: info) }
    }

    // MARK: - Array conveniences (copy in, copy out)

    /// Eigenvalues (ascending) and eigenvectors (columns of the returned n×n row-major matrix) of the
    /// symmetric matrix `a` (n×n row-major; only its upper triangle is read). A caller that hands `a`
    /// over (`consume`) saves its copy: the eigenvectors are computed in its storage.
    public static func symmetricEigen(_ a: consuming [Double], n: Int) throws -> (values: [Double], vectors: [Double]) {
        guard a.count == n * n else {
            throw LinearAlgebraError.shapeMismatch("symmetricEigen: \(a.count) values for a \(n)×\(n) matrix")
        }
        var vectors = consume a
        var values = [Double](repeating: 0, count: n)
        if n == 0 { return (values, vectors) }
        try vectors.withUnsafeMutableBufferPointer { vp in
            try values.withUnsafeMutableBufferPointer { wp in
                // Counts are checked above and n > 0, so the base addresses exist.
                guard let v = vp.baseAddress, let w = wp.baseAddress else { return }
                try dsyevd(n: n, a: v, lda: n, w: w)
            }
        }
        return (values, vectors)
    }

    /// X (n×nrhs row-major) solving A X = B for SPD `a` (n×n row-major, upper triangle read).
    public static func choleskySolve(_ a: [Double], n: Int, _ b: [Double], nrhs: Int) throws -> [Double] {
        try solve("choleskySolve", a, n: n, b: b, nrhs: nrhs, dposv)
    }

    /// X (n×nrhs row-major) solving A X = B for a general square `a` (n×n row-major).
    public static func luSolve(_ a: [Double], n: Int, _ b: [Double], nrhs: Int) throws -> [Double] {
        try solve("luSolve", a, n: n, b: b, nrhs: nrhs, dgesv)
    }

    /// Checks the shapes, then runs `solver` (dposv or dgesv) on copies of A and B; B's copy becomes X.
    private static func solve(_ name: String, _ a: [Double], n: Int, b: [Double], nrhs: Int,
                              _ solver: (Int, Int, UnsafeMutablePointer<Double>, Int, UnsafeMutablePointer<Double>, Int) throws -> Void) throws -> [Double] {
        guard a.count == n * n, b.count == n * nrhs else {
            throw LinearAlgebraError.shapeMismatch("\(name): A has \(a.count) values for \(n)×\(n), "
                                                   + "B has \(b.count) for \(n)×\(nrhs)")
        }
        var f = a, x = b
        if n == 0 || nrhs == 0 { return x }
        try f.withUnsafeMutableBufferPointer { ap in
            try x.withUnsafeMutableBufferPointer { bp in
                guard let ab = ap.baseAddress, let bb = bp.baseAddress else { return }
                try solver(n, nrhs, ab, n, bb, nrhs)
            }
        }
        return x
    }
}

/// Naive references of the LAPACK entries, for tests only (small matrices).
public enum NaiveLAPACK {
    /// Cyclic Jacobi eigenvalue iteration for a symmetric n×n row-major matrix. Returns ascending
    /// eigenvalues and the eigenvectors as columns of a row-major n×n matrix (the `dsyevd` layout).
    public static func jacobiEigen(_ a: [Double], n: Int, sweeps: Int = 100) -> (values: [Double], vectors: [Double]) {
        var m = a
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<sweeps {
            var off = 0.0
            for p in 0..<n { for q in (p + 1)..<max(p + 1, n) { off += m[p * n + q] * m[p * n + q] } }
            if off < 1e-30 { break }
            for p in 0..<n {
                for q in (p + 1)..<max(p + 1, n) where m[p * n + q] != 0 {
                    // Rotation angle that zeroes m[p][q] (Golub & Van Loan, Algorithm 8.4.1).
                    let theta = (m[q * n + q] - m[p * n + p]) / (2 * m[p * n + q])
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {  // m ← m J (columns p, q)
                        let mkp = m[k * n + p], mkq = m[k * n + q]
                        m[k * n + p] = c * mkp - s * mkq
                        m[k * n + q] = s * mkp + c * mkq
                    }
                    for k in 0..<n {  // m ← Jᵀ m (rows p, q)
                        let mpk = m[p * n + k], mqk = m[q * n + k]
                        m[p * n + k] = c * mpk - s * mqk
                        m[q * n + k] = s * mpk + c * mqk
                    }
                    for k in 0..<n {  // v ← v J
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        let order = (0..<n).sorted { m[$0 * n + $0] < m[$1 * n + $1] }
        var values = [Double](repeating: 0, count: n)
        var vectors = [Double](repeating: 0, count: n * n)
        for (j, src) in order.enumerated() {
            values[j] = m[src * n + src]
            for i in 0..<n { vectors[i * n + j] = v[i * n + src] }
        }
        return (values, vectors)
    }

    /// Textbook Cholesky A = L Lᵀ then forward/back substitution; nil when A is not positive definite.
    public static func choleskySolve(_ a: [Double], n: Int, _ b: [Double], nrhs: Int) -> [Double]? {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var s = a[min(i, j) * n + max(i, j)]  // upper triangle, like dposv
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard s > 0 else { return nil }
                    l[i * n + i] = s.squareRoot()
                } else {
                    l[i * n + j] = s / l[j * n + j]
                }
            }
        }
        var x = b
        for c in 0..<nrhs {
            for i in 0..<n {  // L y = b
                var s = x[i * nrhs + c]
                for k in 0..<i { s -= l[i * n + k] * x[k * nrhs + c] }
                x[i * nrhs + c] = s / l[i * n + i]
            }
            for i in stride(from: n - 1, through: 0, by: -1) {  // Lᵀ x = y
                var s = x[i * nrhs + c]
                for k in (i + 1)..<max(i + 1, n) { s -= l[k * n + i] * x[k * nrhs + c] }
                x[i * nrhs + c] = s / l[i * n + i]
            }
        }
        return x
    }
}
