// The closed-form weight updates of docs/algorithm.md §4 step 3, in float64: AlphaEdit and the MEMIT baseline.
// Shapes (row-major): R d×u (residuals, one column per request), K1 f×u (keys, one column per
// request), Û f×r (null-space basis, NullSpaceProjector.basis), Cp and C0 f×f, ΔW d×f (the layout of
// `ffn_down`, out × in). d = hidden size, f = MLP intermediate size, u = requests, r = kept dimension.
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model

public enum EditSolver {
    /// λ of AlphaEdit's L2 term (docs/algorithm.md §5).
    public static let defaultLambda = 10.0
    /// λm of MEMIT's covariance term (docs/algorithm.md §5).
    public static let defaultMemitLambda = 15000.0

    /// AlphaEdit, docs/algorithm.md §4 step 3: ΔW = R K1ᵀ Û (Ûᵀ G Û + λ I)⁻¹ Ûᵀ with G = K1 K1ᵀ + Cp, which
    /// equals the reference's R K1ᵀ P (G P + λ I)⁻¹ for P = Û Ûᵀ (because (P G + λ I) Û = Û (Ûᵀ G Û + λ I)).
    /// The r×r system is SPD and solved by Cholesky. ΔW (I − P) = 0 holds by construction (ΔW ends in Ûᵀ).
    /// Order of products: B = ÛᵀK1 (r×u) once; Ûᵀ G Û = B Bᵀ + Ûᵀ (Cp Û), the second term skipped
    /// when `previousKeys` is nil (Cp = 0, the first batch); the right-hand side B Rᵀ (r×d) is solved
    /// for in place, and ΔW = (solution)ᵀ Ûᵀ is one last d×f product.
    ///
    /// `keptPenalty` (r values, ≥ 0) is added to the diagonal of Ûᵀ G Û + λ I: with Û the eigenvectors of C0
    /// and the values w·λ_j (their eigenvalues), that is + w Ûᵀ C0 Û, i.e. the objective gains
    /// w·tr(ΔW C0 ΔWᵀ), MEMIT's penalty on the preserved keys, restricted to the kept directions.
    public static func alphaEdit(residual R: Matrix64, keys K1: Matrix64, basis U: Matrix64,
                                 previousKeys Cp: Matrix64? = nil,
                                 lambda: Double = defaultLambda, keptPenalty: [Double]? = nil) throws -> Matrix64 {
        let d = R.rows, u = R.cols, f = K1.rows, r = U.cols
        try check(R: R, K1: K1, Cp: Cp)
        guard U.rows == f else { throw LinearAlgebraError.shapeMismatch("Û is \(U.rows)×\(r), K1 is \(f)×\(u)") }
        guard lambda > 0, lambda.isFinite else { throw LinearAlgebraError.nonFinite("λ = \(lambda) (must be > 0)") }
        if let kp = keptPenalty {
            guard kp.count == r else { throw LinearAlgebraError.shapeMismatch("\(kp.count) kept-direction penalties for r = \(r)") }
            guard kp.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw LinearAlgebraError.nonFinite("kept-direction penalty (must be finite and ≥ 0)") }
        }
        guard r > 0, u > 0, d > 0 else { return Matrix64(zeros: d, f) }  // empty null space: no edit possible

        let bt = try K1.times(U, transposeSelf: true)                        // Bᵀ = K1ᵀ Û, u×r
        var m = try Cp.map { cp in try U.times(try cp.times(U), transposeSelf: true) }  // Ûᵀ Cp Û, r×r
            ?? Matrix64(zeros: r, r)
        // M (upper triangle) += Bᵀᵀ Bᵀ = B Bᵀ; dposv reads only the upper triangle.
        withPointers(bt, &m) { a, c in BLAS.dsyrkUpperAtA(n: r, k: u, a: a, lda: r, beta: 1, c: c, ldc: r) }
        for i in 0..<r { m[i, i] += lambda + (keptPenalty?[i] ?? 0) }
        var y = try bt.times(R, transposeSelf: true, transposeOther: true)   // B Rᵀ, r×d
        try solveSPD(&m, &y)                                                  // (ÛᵀGÛ + λI)⁻¹ B Rᵀ
        return try y.times(U, transposeSelf: true, transposeOther: true)     // ΔW = yᵀ Ûᵀ, d×f
    }

    /// AlphaEdit with the basis of a stored projector.
    public static func alphaEdit(residual R: Matrix64, keys K1: Matrix64, projector: NullSpaceProjector,
                                 previousKeys Cp: Matrix64? = nil,
                                 lambda: Double = defaultLambda, keptC0Weight w: Double = 0) throws -> Matrix64 {
        // Û's columns are C0's eigenvectors with the smallest eigenvalues, ascending: ÛᵀC0Û = diag of those.
        let penalty = w > 0 ? projector.eigenvalues.prefix(projector.keptDimension).map { w * max($0, 0) } : nil
        return try alphaEdit(residual: R, keys: K1, basis: projector.basis, previousKeys: Cp, lambda: lambda, keptPenalty: penalty)
    }

    /// MEMIT, docs/algorithm.md §4: ΔW = R K1ᵀ A⁻¹ with A = λm C0 + Cp + K1 K1ᵀ (f×f, SPD). A is symmetric, so
    /// ΔWᵀ = A⁻¹ K1 Rᵀ: one Cholesky solve with d right-hand sides, then a transpose.
    public static func memit(residual R: Matrix64, keys K1: Matrix64, c0: Matrix64,
                             previousKeys Cp: Matrix64? = nil,
                             lambdaM: Double = defaultMemitLambda) throws -> Matrix64 {
        let d = R.rows, u = R.cols, f = K1.rows
        try check(R: R, K1: K1, Cp: Cp)
        guard c0.rows == f, c0.cols == f else {
            throw LinearAlgebraError.shapeMismatch("C0 is \(c0.rows)×\(c0.cols), f = \(f)")
        }
        guard c0.values.allSatisfy({ $0.isFinite }) else { throw LinearAlgebraError.nonFinite("C0") }
        guard lambdaM.isFinite, lambdaM >= 0 else { throw LinearAlgebraError.nonFinite("λm = \(lambdaM)") }
        guard u > 0, d > 0 else { return Matrix64(zeros: d, f) }

        var a = try Cp.map { try c0.combined(lambdaM, 1, $0) } ?? c0.combined(lambdaM, 0, c0)
        let k1t = K1.transposed                                              // u×f
        withPointers(k1t, &a) { k, c in BLAS.dsyrkUpperAtA(n: f, k: u, a: k, lda: f, beta: 1, c: c, ldc: f) }
        var x = try K1.times(R, transposeOther: true)                        // K1 Rᵀ, f×d
        try solveSPD(&a, &x)                                                  // ΔWᵀ = A⁻¹ K1 Rᵀ
        return x.transposed
    }

    // MARK: - Helpers

    static func check(R: Matrix64, K1: Matrix64, Cp: Matrix64?) throws {
        guard K1.cols == R.cols else {
            throw LinearAlgebraError.shapeMismatch("R is \(R.rows)×\(R.cols) but K1 is \(K1.rows)×\(K1.cols)")
        }
        if let cp = Cp, cp.rows != K1.rows || cp.cols != K1.rows {
            throw LinearAlgebraError.shapeMismatch("Cp is \(cp.rows)×\(cp.cols), f = \(K1.rows)")
        }
        guard R.values.allSatisfy({ $0.isFinite }) else { throw LinearAlgebraError.nonFinite("R") }
        guard K1.values.allSatisfy({ $0.isFinite }) else { throw LinearAlgebraError.nonFinite("K1") }
        if let cp = Cp, !cp.values.allSatisfy({ $0.isFinite }) { throw LinearAlgebraError.nonFinite("Cp") }
    }

    /// a (n×n SPD, upper triangle read, destroyed) · X = b (n×k, overwritten by X).
    static func solveSPD(_ a: inout Matrix64, _ b: inout Matrix64) throws {
        let n = a.rows, k = b.cols
        guard a.cols == n, b.rows == n else {
            throw LinearAlgebraError.shapeMismatch("solve with a \(a.rows)×\(a.cols) matrix and \(b.rows)×\(b.cols) right-hand side")
        }
        if n == 0 || k == 0 { return }
        try a.values.withUnsafeMutableBufferPointer { ap in
            try b.values.withUnsafeMutableBufferPointer { bp in
                guard let ab = ap.baseAddress, let bb = bp.baseAddress else { return }
                try LAPACK.dposv(n: n, nrhs: k, a: ab, lda: n, b: bb, ldb: k)
            }
        }
    }

    static func withPointers(_ a: Matrix64, _ c: inout Matrix64,
                             _ body: (UnsafePointer<Double>, UnsafeMutablePointer<Double>) -> Void) {
        a.values.withUnsafeBufferPointer { ap in
            c.values.withUnsafeMutableBufferPointer { cp in
                guard let ab = ap.baseAddress, let cb = cp.baseAddress else { return }
                body(ab, cb)
            }
        }
    }
}
