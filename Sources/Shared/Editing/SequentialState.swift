// The state that sequential editing carries between batches, docs/algorithm.md §4 (after the last layer):
// Cp_l = Σ K1 K1ᵀ over all previously edited keys, per edited layer, starting at zero. It enters the
// next solve through G = K1 K1ᵀ + Cp, which keeps later batches from undoing earlier edits.
//
// Cp is stored full and exactly symmetric (dsyrk on the upper triangle, then mirrored) because the
// solver multiplies it with a general product. `keyCounts` counts the keys added per layer, so the
// first batch can pass Cp = nil and skip its product.
//
// Artifact (see Artifact.swift for the container), magic "AESEQSTA", version 1, body:
//   f (Int64), layer count m (Int64), m × [layer index (Int64), key count (Int64)],
//   m × packed upper triangle of Cp (f(f+1)/2 Float64, row by row).
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
    /// Cp per layer, f×f, parallel to `layers`.
    public private(set) var cp: [Matrix64]

    public init(layers: [Int], f: Int) throws {
        guard f > 0, f <= KeyStatistics.maxDimension else { throw KeyStatisticsError.invalidShape("f = \(f)") }
        guard !layers.isEmpty, layers.count <= KeyStatistics.maxLayers, Set(layers).count == layers.count else {
            throw KeyStatisticsError.invalidShape("layers \(layers) must be non-empty and distinct")
        }
        self.layers = layers
        self.f = f
        keyCounts = [Int](repeating: 0, count: layers.count)
        cp = [Matrix64](repeating: Matrix64(zeros: f, f), count: layers.count)
    }

    private func slot(_ layer: Int) throws -> Int {
        guard let i = layers.firstIndex(of: layer) else { throw KeyStatisticsError.unknownLayer(layer, known: layers) }
        return i
    }

    /// Cp of `layer`, or nil while no key has been added (Cp = 0: the solver skips its term).
    public func previousKeys(layer: Int) throws -> Matrix64? {
        let s = try slot(layer)
        return keyCounts[s] == 0 ? nil : cp[s]
    }

    /// Cp += K1 K1ᵀ for the keys K1 (f×u, one key per column) of an edited batch.
    public mutating func add(layer: Int, keys K1: Matrix64) throws {
        let s = try slot(layer)
        guard K1.rows == f else { throw LinearAlgebraError.shapeMismatch("K1 is \(K1.rows)×\(K1.cols), f = \(f)") }
        guard K1.values.allSatisfy({ $0.isFinite }) else { throw LinearAlgebraError.nonFinite("K1 of layer \(layer)") }
        let u = K1.cols
        if u == 0 { return }
        let k1t = K1.transposed  // u×f: K1 K1ᵀ = (K1ᵀ)ᵀ K1ᵀ is dsyrk's AᵀA form
        EditSolver.withPointers(k1t, &cp[s]) { a, c in
            BLAS.dsyrkUpperAtA(n: f, k: u, a: a, lda: f, beta: 1, c: c, ldc: f)
        }
        cp[s].symmetrizeFromUpper()
        keyCounts[s] += u
    }

    /// Back to the unedited model: Cp = 0 everywhere.
    public mutating func reset() {
        keyCounts = [Int](repeating: 0, count: layers.count)
        cp = [Matrix64](repeating: Matrix64(zeros: f, f), count: layers.count)
    }

    // MARK: - Artifact



    public func encodeBody(into w: inout ArtifactWriter) {
        w.i64(f)
        w.i64(layers.count)
        for (l, n) in zip(layers, keyCounts) {
            w.i64(l)
            w.i64(n)
        }
        for m in cp { w.upperTriangle(m.values, n: f) }
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
        for i in 0..<m {
            let values = try r.squareFromUpper(n: f, mirror: true, "Cp of layer \(layers[i])")
            do { state.cp[i] = try Matrix64(rows: f, cols: f, values: values) } catch { throw r.fail("\(error)") }
        }
        state.keyCounts = counts
        try r.finish()
        return state
    }
}
