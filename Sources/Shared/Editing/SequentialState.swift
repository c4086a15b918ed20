// The state that sequential editing carries between batches, docs/algorithm.md §4 (after the last layer):
// Cp_l = Σ K1 K1ᵀ over all previously edited keys, per edited layer, starting at zero. It enters the
// next solve through G = K1 K1ᵀ + Cp, which keeps later batches from undoing earlier edits.
//
// Cp is held as its packed upper triangle (f(f+1)/2 values a layer, row by row: the artifact's layout),
// half the memory of the full matrix (Qwen2.5-0.5B's 5 layers: 0.47 GB instead of 0.95), and made full
// one layer at a time where the solver multiplies with it (`previousKeys`) or dsyrk adds to it (`add`):
// dsyrk reads and writes only the upper triangle, so the sums are the bits they were when Cp was kept
// full. `keyCounts` counts the keys added per layer, so the first batch can pass Cp = nil and skip its
// product.
//
// Artifact (see Artifact.swift for the container), magic "AESEQSTA", version 1, body:
//   f (Int64), layer count m (Int64), m × [layer index (Int64), key count (Int64)],
//   m × packed upper triangle of Cp (f(f+1)/2 Float64, row by row).
// (The format is unchanged by the packed storage: files written before read the same.)
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model

public struct SequentialState: Equatable, Sendable, ArtifactCodable {
    public static let magic = "AESEQSTA"
    public static let formatVersion: UInt32 = 1

    public let layers: [Int]
    public let f: Int
    /// Keys added per layer since the last reset, parallel to `layers`.
    public private(set) var keyCounts: [Int]
    /// Cp per layer, the packed upper triangle (row i: columns i…f−1), parallel to `layers`.
    private var packed: [[Double]]

    public init(layers: [Int], f: Int) throws {
        guard f > 0, f <= KeyStatistics.maxDimension else { throw KeyStatisticsError.invalidShape("f = \(f)") }
        guard !layers.isEmpty, layers.count <= KeyStatistics.maxLayers, Set(layers).count == layers.count else {
            throw KeyStatisticsError.invalidShape("layers \(layers) must be non-empty and distinct")
        }
        self.layers = layers
        self.f = f
        keyCounts = [Int](repeating: 0, count: layers.count)
        packed = Self.zeros(layers.count, f)
    }

    /// One zero triangle shared by every layer until it is written (copy on write).
    private static func zeros(_ m: Int, _ f: Int) -> [[Double]] {
        [[Double]](repeating: [Double](repeating: 0, count: f * (f + 1) / 2), count: m)
    }

    private func slot(_ layer: Int) throws -> Int {
        guard let i = layers.firstIndex(of: layer) else { throw KeyStatisticsError.unknownLayer(layer, known: layers) }
        return i
    }

    /// Cp of `layer` as a full symmetric f×f matrix (made now, not kept), or nil while no key has been
    /// added (Cp = 0: the solver skips its term).
    public func previousKeys(layer: Int) throws -> Matrix64? {
        let s = try slot(layer)
        return keyCounts[s] == 0 ? nil : try Matrix64(rows: f, cols: f, values: unpacked(s, mirror: true))
    }

    /// The n×n row-major matrix of slot `s`'s triangle: its upper triangle, mirrored below when `mirror`.
    private func unpacked(_ s: Int, mirror: Bool) -> [Double] {
        let n = f
        return packed[s].withUnsafeBufferPointer { t in
            [Double](unsafeUninitializedCapacity: n * n) { m, count in
                var p = 0
                for i in 0..<n {
                    for j in 0..<i { m[i * n + j] = mirror ? t[j * n - j * (j - 1) / 2 + (i - j)] : 0 }
                    for j in i..<n { m[i * n + j] = t[p]; p += 1 }
                }
                count = n * n
            }
        }
    }

    /// Cp += K1 K1ᵀ for the keys K1 (f×u, one key per column) of an edited batch.
    public mutating func add(layer: Int, keys K1: Matrix64) throws {
        try update(layer: layer, keys: K1, sign: 1)
    }

    /// Cp −= K1 K1ᵀ: takes out the keys of a batch that `add` put in (a rollback, where the keys before
    /// them were not kept: Cp as before that batch to rounding, not bit for bit).
    public mutating func remove(layer: Int, keys K1: Matrix64) throws {
        let s = try slot(layer)
        guard keyCounts[s] >= K1.cols else {
            throw LinearAlgebraError.shapeMismatch("layer \(layer): removing \(K1.cols) keys from a Cp of \(keyCounts[s])")
        }
        try update(layer: layer, keys: K1, sign: -1)
    }

    private mutating func update(layer: Int, keys K1: Matrix64, sign: Double) throws {
        let s = try slot(layer)
        guard K1.rows == f else { throw LinearAlgebraError.shapeMismatch("K1 is \(K1.rows)×\(K1.cols), f = \(f)") }
        guard K1.values.allSatisfy({ $0.isFinite }) else { throw LinearAlgebraError.nonFinite("K1 of layer \(layer)") }
        let u = K1.cols
        if u == 0 { return }
        let k1t = K1.transposed  // u×f: K1 K1ᵀ = (K1ᵀ)ᵀ K1ᵀ is dsyrk's AᵀA form
        var full = try Matrix64(rows: f, cols: f, values: unpacked(s, mirror: false))
        EditSolver.withPointers(k1t, &full) { a, c in
            BLAS.dsyrkUpperAtA(n: f, k: u, alpha: sign, a: a, lda: f, beta: 1, c: c, ldc: f)
        }
        let n = f
        full.values.withUnsafeBufferPointer { m in
            packed[s].withUnsafeMutableBufferPointer { t in
                var p = 0
                for i in 0..<n { for j in i..<n { t[p] = m[i * n + j]; p += 1 } }
            }
        }
        keyCounts[s] += sign > 0 ? u : -u
    }

    /// Back to the unedited model: Cp = 0 everywhere.
    public mutating func reset() {
        keyCounts = [Int](repeating: 0, count: layers.count)
        packed = Self.zeros(layers.count, f)
    }

    /// The largest |a − b| over every layer's Cp divided by the largest |b| (0 when equal); nil when the
    /// shapes or key counts differ.
    public func relativeDifference(to other: SequentialState) -> Double? {
        guard layers == other.layers, f == other.f, keyCounts == other.keyCounts else { return nil }
        var diff = 0.0, scale = 0.0
        for s in packed.indices {
            for (a, b) in zip(packed[s], other.packed[s]) { diff = max(diff, abs(a - b)); scale = max(scale, abs(b)) }
        }
        return diff == 0 ? 0 : diff / max(scale, .leastNormalMagnitude)
    }

    // MARK: - Artifact



    public func encodeBody(into w: inout ArtifactWriter) {
        w.i64(f)
        w.i64(layers.count)
        for (l, n) in zip(layers, keyCounts) {
            w.i64(l)
            w.i64(n)
        }
        for t in packed { w.f64s(t) }  // the upper triangles, row by row: what `upperTriangle` writes
    }

    public var artifactBodyBytes: Int? { 16 + 16 * layers.count + layers.count * (f * (f + 1) / 2) * 8 }

    public static func decodeBody(_ r: inout ArtifactReader) throws -> SequentialState {
        let f = try r.count("f", limit: KeyStatistics.maxDimension)
        let m = try r.count("layer count", limit: KeyStatistics.maxLayers)
        var layers: [Int] = [], counts: [Int] = []
        for i in 0..<m {
            layers.append(try r.count("layer index \(i)", limit: Int(Int32.max)))
            counts.append(try r.count("key count \(i)", limit: KeyStatistics.maxTokens))
        }
        try r.expectTriangles(m, n: f, "Cp")
        var state: SequentialState
        do { state = try SequentialState(layers: layers, f: f) } catch { throw r.fail("\(error)") }
        for i in 0..<m { state.packed[i] = try r.f64s(f * (f + 1) / 2, "Cp of layer \(layers[i])") }
        state.keyCounts = counts
        try r.finish()
        return state
    }
}
