// Tests of the edit's linear algebra (docs/algorithm.md §1 and §4) by its identities, and of the BLAS /
// LAPACK wrappers against naive references. Every assertion names the equation it checks, uses a
// literal tolerance and prints the max difference.
import Foundation
import Shared
import XCTest

final class EditMathTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        BLAS.setThreads(2)
    }

    // MARK: - BLAS wrappers vs naive references

    func testSgemmAllTransposesMatchNaive() {
        var rng = EditMathRNG(seed: 1)
        let m = 7, n = 5, k = 9
        for transA in [false, true] {
            for transB in [false, true] {
                let a = rng.floats(m * k), b = rng.floats(k * n), c0 = rng.floats(m * n)
                let lda = transA ? m : k, ldb = transB ? k : n
                var fast = c0, slow = c0
                a.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in
                        fast.withUnsafeMutableBufferPointer { cp in
                            BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.7,
                                       a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb,
                                       beta: 0.3, c: cp.baseAddress!, ldc: n)
                        }
                    }
                }
                NaiveBLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.7, a: a, lda: lda,
                                b: b, ldb: ldb, beta: 0.3, c: &slow, ldc: n)
                let diff = zip(fast, slow).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThan(diff, 1e-5, "C = 0.7·op(A)op(B) + 0.3·C, transA \(transA) transB \(transB): max diff \(diff)")
            }
        }
    }

    func testDgemmAllTransposesMatchNaive() {
        var rng = EditMathRNG(seed: 2)
        let m = 6, n = 8, k = 11
        for transA in [false, true] {
            for transB in [false, true] {
                let a = rng.doubles(m * k), b = rng.doubles(k * n), c0 = rng.doubles(m * n)
                let lda = transA ? m : k, ldb = transB ? k : n
                var fast = c0, slow = c0
                a.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in
                        fast.withUnsafeMutableBufferPointer { cp in
                            BLAS.dgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: -1.3,
                                       a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb,
                                       beta: 0.5, c: cp.baseAddress!, ldc: n)
                        }
                    }
                }
                NaiveBLAS.dgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: -1.3, a: a, lda: lda,
                                b: b, ldb: ldb, beta: 0.5, c: &slow, ldc: n)
                let diff = maxDiff64(fast, slow)
                XCTAssertLessThan(diff, 1e-13, "C = −1.3·op(A)op(B) + 0.5·C, transA \(transA) transB \(transB): max diff \(diff)")
            }
        }
    }

    func testSyrkUpperMatchesNaiveAtA() {
        var rng = EditMathRNG(seed: 3)
        let n = 9, k = 13
        let a = rng.doubles(k * n), c0 = rng.doubles(n * n)
        var c = c0
        a.withUnsafeBufferPointer { ap in
            c.withUnsafeMutableBufferPointer { cp in
                BLAS.dsyrkUpperAtA(n: n, k: k, alpha: 2, a: ap.baseAddress!, lda: n, beta: 1, c: cp.baseAddress!, ldc: n)
            }
        }
        let af = a.map(Float.init), cf0 = c0.map(Float.init)
        var cf = cf0
        af.withUnsafeBufferPointer { ap in
            cf.withUnsafeMutableBufferPointer { cp in
                BLAS.ssyrkUpperAtA(n: n, k: k, alpha: 2, a: ap.baseAddress!, lda: n, beta: 1, c: cp.baseAddress!, ldc: n)
            }
        }
        var dUpper = 0.0, sUpper = 0.0, lowerChanged = 0.0
        for i in 0..<n {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k { s += a[p * n + i] * a[p * n + j] }
                let want = 2 * s + c0[i * n + j]
                if j >= i {
                    dUpper = max(dUpper, abs(c[i * n + j] - want))
                    sUpper = max(sUpper, abs(Double(cf[i * n + j]) - want))
                } else {
                    lowerChanged = max(lowerChanged, abs(c[i * n + j] - c0[i * n + j]))
                }
            }
        }
        XCTAssertLessThan(dUpper, 1e-13, "dsyrk: upper(C) = 2·AᵀA + C: max diff \(dUpper)")
        XCTAssertLessThan(sUpper, 1e-4, "ssyrk: upper(C) = 2·AᵀA + C: max diff \(sUpper)")
        XCTAssertEqual(lowerChanged, 0, "dsyrk must leave the lower triangle alone: max change \(lowerChanged)")
    }

    // MARK: - LAPACK wrappers

    func testDsyevdReconstructsAndIsOrthonormal() throws {
        var rng = EditMathRNG(seed: 4)
        let n = 40
        let a = rng.symmetric(n)
        let (values, vectors) = try LAPACK.symmetricEigen(a, n: n)
        let u = try Matrix64(rows: n, cols: n, values: vectors)
        // A = U Λ Uᵀ
        var ul = u
        for i in 0..<n { for j in 0..<n { ul[i, j] *= values[j] } }
        let recon = try ul.times(u, transposeOther: true)
        let rDiff = maxDiff64(recon.values, a)
        XCTAssertLessThan(rDiff, 1e-12, "A = U Λ Uᵀ: max diff \(rDiff)")
        // Uᵀ U = I
        let gram = try u.times(u, transposeSelf: true)
        let oDiff = maxDiff64(gram.values, Matrix64.identity(n).values)
        XCTAssertLessThan(oDiff, 1e-13, "Uᵀ U = I: max diff \(oDiff)")
        XCTAssertEqual(values, values.sorted(), "dsyevd eigenvalues ascending")
        let (naive, _) = NaiveLAPACK.jacobiEigen(a, n: n)
        let eDiff = maxDiff64(values, naive)
        XCTAssertLessThan(eDiff, 1e-12, "dsyevd vs Jacobi eigenvalues: max diff \(eDiff)")
    }

    func testJacobiReferenceReconstructs() throws {
        var rng = EditMathRNG(seed: 5)
        let n = 12
        let a = rng.symmetric(n)
        let (values, vectors) = NaiveLAPACK.jacobiEigen(a, n: n)
        let u = try Matrix64(rows: n, cols: n, values: vectors)
        var ul = u
        for i in 0..<n { for j in 0..<n { ul[i, j] *= values[j] } }
        let diff = maxDiff64(try ul.times(u, transposeOther: true).values, a)
        XCTAssertLessThan(diff, 1e-12, "Jacobi: A = U Λ Uᵀ: max diff \(diff)")
    }

    func testDposvSolvesSPDSystem() throws {
        var rng = EditMathRNG(seed: 6)
        let n = 30, k = 4
        let a = rng.spd(n)
        let b = rng.doubles(n * k)
        let x = try LAPACK.choleskySolve(a, n: n, b, nrhs: k)
        let ax = try Matrix64(rows: n, cols: n, values: a).times(try Matrix64(rows: n, cols: k, values: x))
        let res = maxDiff64(ax.values, b)
        XCTAssertLessThan(res, 1e-12, "A X = B (dposv): max residual \(res)")
        let naive = try XCTUnwrap(NaiveLAPACK.choleskySolve(a, n: n, b, nrhs: k))
        let diff = maxDiff64(x, naive)
        XCTAssertLessThan(diff, 1e-12, "dposv vs naive Cholesky: max diff \(diff)")
    }

    func testDgesvSolvesGeneralSystem() throws {
        var rng = EditMathRNG(seed: 7)
        let n = 25, k = 3
        var a = rng.doubles(n * n)
        for i in 0..<n { a[i * n + i] += 5 }
        let b = rng.doubles(n * k)
        let x = try LAPACK.luSolve(a, n: n, b, nrhs: k)
        let ax = try Matrix64(rows: n, cols: n, values: a).times(try Matrix64(rows: n, cols: k, values: x))
        let res = maxDiff64(ax.values, b)
        XCTAssertLessThan(res, 1e-12, "A X = B (dgesv): max residual \(res)")
    }

    func testNotPositiveDefiniteIsTypedError() {
        let a: [Double] = [1, 0, 0, 0, -1, 0, 0, 0, 2]
        XCTAssertThrowsError(try LAPACK.choleskySolve(a, n: 3, [1, 1, 1], nrhs: 1)) { error in
            XCTAssertEqual(error as? LinearAlgebraError, .notPositiveDefinite(order: 3, info: 2))
            XCTAssertEqual("\(error)", "matrix of order 3 is not positive definite (leading minor 2 is not positive)")
        }
        XCTAssertNil(NaiveLAPACK.choleskySolve(a, n: 3, [1, 1, 1], nrhs: 1), "naive Cholesky rejects it too")
        XCTAssertThrowsError(try LAPACK.luSolve([1, 2, 2, 4], n: 2, [1, 1], nrhs: 1)) { error in
            XCTAssertEqual(error as? LinearAlgebraError, .singular(order: 2, info: 2))
        }
        XCTAssertThrowsError(try LAPACK.symmetricEigen([1, 2, 3], n: 2)) { error in
            guard case .shapeMismatch = error as? LinearAlgebraError else { return XCTFail("\(error)") }
        }
    }
}

// MARK: - Test support

/// Deterministic test data (Shared's SplitMix64), with the shapes these tests need.
struct EditMathRNG {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    /// Uniform in [-1, 1).
    mutating func uniform() -> Double { Double(generator.next() >> 11) / Double(1 << 53) * 2 - 1 }
    mutating func doubles(_ n: Int) -> [Double] { (0..<n).map { _ in uniform() } }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in Float(uniform()) } }

    mutating func matrix(_ rows: Int, _ cols: Int, scale: Double = 1) -> Matrix64 {
        var m = Matrix64(zeros: rows, cols)
        for i in 0..<rows { for j in 0..<cols { m[i, j] = uniform() * scale } }
        return m
    }

    mutating func symmetric(_ n: Int) -> [Double] {
        var a = doubles(n * n)
        for i in 0..<n { for j in 0..<i { a[i * n + j] = a[j * n + i] } }
        return a
    }

    /// BᵀB + I: symmetric positive definite.
    mutating func spd(_ n: Int) -> [Double] {
        let b = doubles(n * n)
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<n { s += b[p * n + i] * b[p * n + j] }
                a[i * n + j] = s + (i == j ? 1 : 0)
            }
        }
        return a
    }
}

func maxDiff64(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "compared arrays differ in length")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
