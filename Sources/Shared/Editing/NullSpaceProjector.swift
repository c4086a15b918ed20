// The null-space projector of docs/algorithm.md §1: eigen-decompose C0 = U Λ Uᵀ (dsyevd), keep the
// eigenvectors whose eigenvalue is below the threshold τ (an absolute value on the normalised C0,
// reference 2e-2), Û = those columns (f×r), P = Û Ûᵀ. Û is what we store: the solve of §4 works in
// the kept r-dimensional space, and P is one product away when a test or a log needs it.
//
// Artifact (see Artifact.swift for the container), magic "AENSPROJ", version 1, body:
//   provenance (length-prefixed UTF-8), f (Int64), layer count m (Int64),
//   m × [layer index (Int64), threshold τ (Float64), kept dimension r (Int64),
//        f eigenvalues ascending (Float64), Û row-major f×r (Float64)].
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model

/// Where the spectrum of C0 lies: the figure to log next to the kept dimension.
public struct SpectrumSummary: Equatable, Sendable, CustomStringConvertible {
    public let min: Double
    public let median: Double
    public let max: Double
    /// Sum of the eigenvalues = trace of C0.
    public let trace: Double

    /// Summary of eigenvalues sorted ascending.
    public init(ascending values: [Double]) {
        let n = values.count
        min = values.first ?? 0
        max = values.last ?? 0
        median = n == 0 ? 0 : (n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2)
        trace = values.reduce(0, +)
    }

    /// Three significant digits: these are for reading (the exact values are in `--json` and the artifacts).
    public var description: String {
        String(format: "eigenvalues min %.3g, median %.3g, max %.3g, trace %.4g", min, median, max, trace)
    }
}

/// One layer's C0 = U Λ Uᵀ (dsyevd): eigenvalues ascending, U row-major with eigenvector j in column j.
public struct C0Eigen: Sendable {
    public let layer: Int
    public let values: [Double]
    public let vectors: [Double]

    public init(c0: Matrix64, layer: Int) throws {
        guard c0.rows == c0.cols else {
            throw LinearAlgebraError.shapeMismatch("C0 of layer \(layer) is \(c0.rows)×\(c0.cols), not square")
        }
        try self.init(symmetric: c0.values, n: c0.rows, layer: layer)
    }

    /// C0 as n×n row-major values; handed over (`consume`), its storage becomes the eigenvectors'.
    public init(symmetric c0: consuming [Double], n: Int, layer: Int) throws {
        guard c0.allSatisfy({ $0.isFinite }) else {
            throw LinearAlgebraError.nonFinite("C0 of layer \(layer)")
        }
        (values, vectors) = try LAPACK.symmetricEigen(consume c0, n: n)
        self.layer = layer
    }

    /// Every layer of the statistics (C0 = S / n).
    public static func of(_ statistics: KeyStatistics) throws -> [C0Eigen] {
        try statistics.layers.map { try C0Eigen(c0: try statistics.mean(layer: $0), layer: $0) }
    }
}

/// How a layer's null-space threshold τ is set from C0's eigenvalues: the eigenvectors with eigenvalue
/// below τ are kept.
public enum NullSpaceRule: Equatable, Sendable, CustomStringConvertible {
    /// τ itself (docs/algorithm.md §1; the paper's 2e-2).
    case absolute(Double)
    /// τ = ρ · λ_max of the layer.
    case relative(Double)
    /// The most directions, smallest eigenvalues first, whose eigenvalues sum to at most s · tr(C0): the
    /// kept directions carry at most a share s of the preserved keys' energy E‖k‖² (= tr C0), which bounds
    /// what the update can do to them on average. On Qwen ρ 1e-3 kept 17.5-30 % of the trace at layers 2-3
    /// and preserved worse than MEMIT over 500 edits, where τ 2e-2 kept 4e-4-1.4e-3 there (README).
    case traceShare(Double)

    /// τ for eigenvalues sorted ascending.
    public func threshold(ascending values: [Double]) -> Double {
        switch self {
        case .absolute(let t): return t
        case .relative(let rho): return rho * Swift.max(values.last ?? 0, 0)
        case .traceShare(let share):
            let budget = share * values.reduce(0, +)
            var sum = 0.0, k = 0
            while k < values.count, sum + values[k] <= budget { sum += values[k]; k += 1 }
            // τ is the first eigenvalue left out (just above the largest when all fit): ties with it go too.
            return k < values.count ? values[k] : (values.last ?? 0).nextUp
        }
    }

    public var isFinite: Bool {
        switch self {
        case .absolute(let x), .relative(let x), .traceShare(let x): return x.isFinite
        }
    }

    /// "τ 0.02", "ρ 0.001", "trace 0.001": how reports name the threshold.
    public var description: String {
        switch self {
        case .absolute(let t): return String(format: "τ %g", t)
        case .relative(let r): return String(format: "ρ %g", r)
        case .traceShare(let s): return String(format: "trace %g", s)
        }
    }
}

/// One layer's null-space basis.
public struct NullSpaceProjector: Equatable, Sendable {
    public static let defaultThreshold = 2e-2

    /// Model layer index.
    public let layer: Int
    /// τ: eigenvalues strictly below it are kept.
    public let threshold: Double
    /// All f eigenvalues of C0, ascending.
    public let eigenvalues: [Double]
    /// Û, f×r row-major, orthonormal columns: the eigenvectors of C0 with eigenvalue < τ.
    public let basis: Matrix64

    public var f: Int { basis.rows }
    /// r, the kept dimension (docs/algorithm.md §1: "report how many directions were kept").
    public var keptDimension: Int { basis.cols }
    public var keptFraction: Double { f == 0 ? 0 : Double(keptDimension) / Double(f) }
    /// Share of C0's trace (of the preserved keys' energy E‖k‖²) in the kept directions: what the update
    /// may still reach of the preserved keys. A null space in the strict sense has ≈ 0; on Qwen, ρ 1e-3
    /// kept 97-99 % of the directions at layers 2-3 and with them 17.5-30 % of the trace (README).
    public var keptTraceShare: Double {
        let total = eigenvalues.reduce(0, +)
        return total > 0 ? eigenvalues.prefix(keptDimension).reduce(0, +) / total : 0
    }
    public var spectrum: SpectrumSummary { SpectrumSummary(ascending: eigenvalues) }

    /// Share of the directions, smallest eigenvalues first, that together hold at most `share` of C0's
    /// trace: the room a null space in the strict sense leaves to edit in, whatever τ is (README "Would
    /// other edited layers have one?": at most a third of any layer's directions hold 1 % on the packaged models).
    public func room(traceShare share: Double) -> Double {
        guard f > 0 else { return 0 }
        return Double(count(below: NullSpaceRule.traceShare(share).threshold(ascending: eigenvalues))) / Double(f)
    }

    /// The largest eigenvalue's share of the trace: near 1 where one massive-activation direction holds
    /// the keys' energy, and `room` then says little about the other directions.
    public var largestShare: Double {
        let total = eigenvalues.reduce(0, +)
        return total > 0 ? (eigenvalues.last ?? 0) / total : 0
    }

    /// Number of eigenvalues strictly below `t` (for logging other candidate thresholds).
    public func count(below t: Double) -> Int { eigenvalues.prefix { $0 < t }.count }

    /// docs/algorithm.md §1: C0 (f×f, symmetric) → Û = eigenvectors with eigenvalue < τ. With
    /// `relative` = ρ, τ = ρ · λ_max(C0) instead (stored as the absolute τ it came to, so the artifact
    /// and everything downstream are unchanged).
    public init(c0: Matrix64, threshold: Double = NullSpaceProjector.defaultThreshold, relative: Double? = nil, layer: Int) throws {
        try self.init(eigen: try C0Eigen(c0: c0, layer: layer), threshold: threshold, relative: relative)
    }

    /// The projector of an eigendecomposition already computed (a sweep over τ decomposes C0 once).
    public init(eigen: C0Eigen, threshold: Double = NullSpaceProjector.defaultThreshold, relative: Double? = nil) throws {
        try self.init(eigen: eigen, rule: relative.map { .relative($0) } ?? .absolute(threshold))
    }

    /// The projector of `rule`'s τ for this layer (stored as that absolute τ, so the artifact and everything
    /// downstream are the same whichever rule set it).
    public init(eigen: C0Eigen, rule: NullSpaceRule) throws {
        guard rule.isFinite else { throw LinearAlgebraError.nonFinite("null-space threshold") }
        let f = eigen.values.count, values = eigen.values
        let threshold = rule.threshold(ascending: values)
        // Ascending order puts the kept eigenvectors in the first r columns.
        let r = values.prefix { $0 < threshold }.count
        var u = Matrix64(zeros: f, r)
        for i in 0..<f { for j in 0..<r { u[i, j] = eigen.vectors[i * f + j] } }
        self.layer = eigen.layer
        self.threshold = threshold
        self.eigenvalues = values
        self.basis = u
    }

    /// Reassembles a stored projector, checking that its parts agree.
    public init(layer: Int, threshold: Double, eigenvalues: [Double], basis: Matrix64) throws {
        guard eigenvalues.count == basis.rows else {
            throw LinearAlgebraError.shapeMismatch("\(eigenvalues.count) eigenvalues for f = \(basis.rows)")
        }
        let r = eigenvalues.prefix { $0 < threshold }.count
        guard r == basis.cols else {
            throw LinearAlgebraError.shapeMismatch("basis has \(basis.cols) columns, \(r) eigenvalues are below \(threshold)")
        }
        self.layer = layer
        self.threshold = threshold
        self.eigenvalues = eigenvalues
        self.basis = basis
    }

    /// P = Û Ûᵀ (f×f), via dsyrk on the upper triangle then mirrored, so P is exactly symmetric.
    public func projectionMatrix() -> Matrix64 {
        var p = Matrix64(zeros: f, f)
        let r = keptDimension
        if r == 0 || f == 0 { return p }
        let ut = basis.transposed  // r×f: P = (Ûᵀ)ᵀ Ûᵀ is dsyrk's AᵀA form
        ut.values.withUnsafeBufferPointer { a in
            p.values.withUnsafeMutableBufferPointer { c in
                guard let ab = a.baseAddress, let cb = c.baseAddress else { return }
                BLAS.dsyrkUpperAtA(n: f, k: r, a: ab, lda: f, beta: 0, c: cb, ldc: f)
            }
        }
        p.symmetrizeFromUpper()
        return p
    }
}

/// The projectors of all edited layers, with the artifact that stores them.
public struct NullSpaceProjectorSet: Equatable, Sendable, ArtifactCodable {
    public static let magic = "AENSPROJ"
    public static let formatVersion: UInt32 = 1

    public let projectors: [NullSpaceProjector]
    public var provenance: String

    public var layers: [Int] { projectors.map(\.layer) }

    public init(projectors: [NullSpaceProjector], provenance: String = "") throws {
        guard let f = projectors.first?.f, projectors.allSatisfy({ $0.f == f }),
              Set(projectors.map(\.layer)).count == projectors.count else {
            throw LinearAlgebraError.shapeMismatch("projector set needs distinct layers of one f")
        }
        self.projectors = projectors
        self.provenance = provenance
    }

    /// docs/algorithm.md §1 for every layer of the statistics: C0 = S / n, then the projector.
    public init(statistics: KeyStatistics, threshold: Double = NullSpaceProjector.defaultThreshold, relative: Double? = nil) throws {
        try self.init(statistics: statistics, rule: relative.map { .relative($0) } ?? .absolute(threshold))
    }

    /// Layer by layer: one layer's C0 and eigenvectors (2 f² float64) live at a time, not every layer's.
    /// Where the caller hands the statistics over (`consume stats`), each layer's C0 is made in its sums'
    /// storage and becomes the eigenvectors': no f×f copy is made, and a layer's memory goes with its
    /// projector (`cov` on Qwen's 5 layers peaked ≈ 0.6 GB lower with the sums freed alone).
    public init(statistics: consuming KeyStatistics, rule: NullSpaceRule) throws {
        var projectors: [NullSpaceProjector] = []
        for l in statistics.layers {
            let c0 = try statistics.takeMean(layer: l)
            projectors.append(try NullSpaceProjector(eigen: try C0Eigen(symmetric: consume c0, n: statistics.f, layer: l), rule: rule))
        }
        try self.init(projectors: projectors, provenance: statistics.provenance)
    }

    /// The projectors of decompositions already computed, one per layer.
    public init(eigen: [C0Eigen], threshold: Double = NullSpaceProjector.defaultThreshold, relative: Double? = nil, provenance: String) throws {
        try self.init(eigen: eigen, rule: relative.map { .relative($0) } ?? .absolute(threshold), provenance: provenance)
    }

    public init(eigen: [C0Eigen], rule: NullSpaceRule, provenance: String) throws {
        try self.init(projectors: try eigen.map { try NullSpaceProjector(eigen: $0, rule: rule) }, provenance: provenance)
    }

    /// The projectors the hyperparameters ask for (`EditHyperparameters.nullSpaceRule`).
    public init(statistics: KeyStatistics, hyperparameters hp: EditHyperparameters) throws {
        try self.init(statistics: statistics, rule: hp.nullSpaceRule)
    }

    public func projector(layer: Int) throws -> NullSpaceProjector {
        guard let p = projectors.first(where: { $0.layer == layer }) else {
            throw KeyStatisticsError.unknownLayer(layer, known: layers)
        }
        return p
    }

    // MARK: - Artifact



    public func encodeBody(into w: inout ArtifactWriter) {
        w.string(provenance)
        w.i64(projectors.first?.f ?? 0)
        w.i64(projectors.count)
        for p in projectors {
            w.i64(p.layer)
            w.f64(p.threshold)
            w.i64(p.keptDimension)
            w.f64s(p.eigenvalues)
            w.f64s(p.basis.values)
        }
    }



    public static func decodeBody(_ r: inout ArtifactReader) throws -> NullSpaceProjectorSet {
        let provenance = try r.string("provenance")
        let f = try r.count("f", limit: KeyStatistics.maxDimension)
        let m = try r.count("layer count", limit: KeyStatistics.maxLayers)
        var ps: [NullSpaceProjector] = []
        for i in 0..<m {
            let layer = try r.count("layer index \(i)", limit: Int(Int32.max))
            let threshold = try r.f64("threshold of layer \(layer)")
            let k = try r.count("kept dimension of layer \(layer)", limit: f)
            let values = try r.f64s(f, "eigenvalues of layer \(layer)")
            let basis = try r.f64s(f * k, "basis of layer \(layer)")
            do {
                ps.append(try NullSpaceProjector(layer: layer, threshold: threshold, eigenvalues: values,
                                                 basis: try Matrix64(rows: f, cols: k, values: basis)))
            } catch { throw r.fail("layer \(layer): \(error)") }
        }
        try r.finish()
        do { return try NullSpaceProjectorSet(projectors: ps, provenance: provenance) } catch {
            throw r.fail("\(error)")
        }
    }
}
