// A dense float64 matrix, row-major: the one currency of the edit math (docs/algorithm.md §1, §4), so that
// every function states its shapes once and checks them instead of trusting loose arrays.
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model

public struct Matrix64: Equatable, Sendable {
    public let rows: Int
    public let cols: Int
    /// rows × cols values, row-major: element (i, j) is `values[i * cols + j]`. Settable only inside
    /// Shared (and elementwise through the subscript), so the count always matches the shape that
    /// the BLAS calls trust.
    public internal(set) var values: [Double]

    public init(rows: Int, cols: Int, values: [Double]) throws {
        guard rows >= 0, cols >= 0, values.count == rows * cols else {
            throw LinearAlgebraError.shapeMismatch("\(values.count) values for a \(rows)×\(cols) matrix")
        }
        self.rows = rows
        self.cols = cols
        self.values = values
    }

    public init(zeros rows: Int, _ cols: Int) {
        self.rows = max(0, rows)
        self.cols = max(0, cols)
        self.values = [Double](repeating: 0, count: self.rows * self.cols)
    }

    public static func identity(_ n: Int) -> Matrix64 {
        var m = Matrix64(zeros: n, n)
        for i in 0..<m.rows { m.values[i * n + i] = 1 }
        return m
    }

    public subscript(i: Int, j: Int) -> Double {
        get { values[i * cols + j] }
        set { values[i * cols + j] = newValue }
    }

    public var transposed: Matrix64 {
        var t = Matrix64(zeros: cols, rows)
        for i in 0..<rows { for j in 0..<cols { t.values[j * rows + i] = values[i * cols + j] } }
        return t
    }

    /// Frobenius norm.
    public var norm: Double { values.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    /// Largest absolute entry (the "max difference" that tests print).
    public var maxAbs: Double { values.reduce(0) { max($0, abs($1)) } }

    /// self · other (or with either side transposed) through `BLAS.dgemm`.
    public func times(_ other: Matrix64, transposeSelf: Bool = false, transposeOther: Bool = false) throws -> Matrix64 {
        let m = transposeSelf ? cols : rows, k = transposeSelf ? rows : cols
        let k2 = transposeOther ? other.cols : other.rows, n = transposeOther ? other.rows : other.cols
        guard k == k2 else {
            throw LinearAlgebraError.shapeMismatch("product of \(m)×\(k) and \(k2)×\(n)")
        }
        var c = Matrix64(zeros: m, n)
        if m == 0 || n == 0 || k == 0 { return c }
        values.withUnsafeBufferPointer { a in
            other.values.withUnsafeBufferPointer { b in
                c.values.withUnsafeMutableBufferPointer { cp in
                    guard let ab = a.baseAddress, let bb = b.baseAddress, let cb = cp.baseAddress else { return }
                    BLAS.dgemm(transA: transposeSelf, transB: transposeOther, m: m, n: n, k: k,
                               a: ab, lda: cols, b: bb, ldb: other.cols, c: cb, ldc: n)
                }
            }
        }
        return c
    }

    /// s · self.
    public func scaled(_ s: Double) -> Matrix64 {
        var out = self
        for i in 0..<values.count { out.values[i] *= s }
        return out
    }

    /// Elementwise a·self + b·other.
    public func combined(_ a: Double, _ b: Double, _ other: Matrix64) throws -> Matrix64 {
        guard rows == other.rows, cols == other.cols else {
            throw LinearAlgebraError.shapeMismatch("sum of \(rows)×\(cols) and \(other.rows)×\(other.cols)")
        }
        var out = self
        for i in 0..<values.count { out.values[i] = a * values[i] + b * other.values[i] }
        return out
    }

    /// Copies the upper triangle onto the lower one (after a `dsyrk` that only wrote the upper).
    public mutating func symmetrizeFromUpper() {
        let n = rows
        guard n == cols else { return }
        for i in 0..<n { for j in 0..<i { values[i * n + j] = values[j * n + i] } }
    }
}
