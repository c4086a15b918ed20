// Preserved-knowledge key statistics, docs/algorithm.md §1: per edited layer the float64 sum S = Σ k kᵀ (f×f)
// and the token count n, so that C0 = S / n (the uncentred mean E[k kᵀ]) and partial results from
// many workers add up exactly.
//
// Storage: each layer's S is an f×f row-major buffer whose UPPER triangle (j ≥ i) is authoritative;
// the lower triangle stays zero. `dsyrk` updates only the upper triangle, so accumulation does half the
// flops of a full product and never needs a mirror pass; `sum`/`mean` return the symmetrised matrix.
// Products of float32 keys are exact in float64 (24 + 24 < 53 mantissa bits), so the only rounding is
// in the float64 additions: any split or order of partial sums agrees to ~1e-16 · (number of terms).
//
// Artifact (see Artifact.swift for the container), magic "AEKSTATS", version 1, body:
//   f (Int64), layer count m (Int64), provenance (length-prefixed UTF-8),
//   m × [layer index (Int64), token count n (Int64)],
//   m × packed upper triangle of S (f(f+1)/2 Float64, row by row).
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model

public enum KeyStatisticsError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownLayer(Int, known: [Int])
    case invalidShape(String)
    case mismatched(String)
    case noTokens(layer: Int)

    public var description: String {
        switch self {
        case let .unknownLayer(l, known): return "layer \(l) is not one of the statistics' layers \(known)"
        case let .invalidShape(text): return "key statistics: \(text)"
        case let .mismatched(text): return "cannot merge key statistics: \(text)"
        case let .noTokens(layer): return "layer \(layer) has no accumulated tokens: E[kkᵀ] is undefined"
        }
    }
}

public struct KeyStatistics: Sendable, ArtifactCodable {
    public static let magic = "AEKSTATS"
    public static let formatVersion: UInt32 = 1
    /// Tokens converted to float64 per `dsyrk` call: large enough for dsyrk to run near its peak,
    /// small enough that the scratch block (rows × f × 8 bytes, 12 MiB at f = 1536) stays modest.
    public static let blockRows = 1024
    static let maxDimension = 1 << 16
    static let maxLayers = 4096
    /// Tokens one layer's statistics may count: 2⁵³ (beyond it the count is no longer exact as the
    /// Double that divides S); a file or a merge that claims more is refused.
    public static let maxTokens = 1 << 53

    /// Model layer indices, ascending as given.
    public let layers: [Int]
    /// Key dimension (the MLP intermediate size).
    public let f: Int
    /// Free text naming model, corpus and settings, carried into the artifact.
    public var provenance: String
    /// Token count n per layer, parallel to `layers`.
    public private(set) var counts: [Int]
    /// Per layer f×f row-major, upper triangle authoritative (see the file comment).
    private var sums: [[Double]]

    public init(layers: [Int], f: Int, provenance: String = "") throws {
        guard f > 0, f <= Self.maxDimension else { throw KeyStatisticsError.invalidShape("f = \(f)") }
        guard !layers.isEmpty, layers.count <= Self.maxLayers, Set(layers).count == layers.count else {
            throw KeyStatisticsError.invalidShape("layers \(layers) must be non-empty and distinct")
        }
        self.layers = layers
        self.f = f
        self.provenance = provenance
        counts = [Int](repeating: 0, count: layers.count)
        sums = [[Double]](repeating: [Double](repeating: 0, count: f * f), count: layers.count)
    }

    /// Statistics of disjoint layer sets over the same tokens (a K₀ build made in passes of a few layers
    /// each, DistributedCovariance), as one: the layers in the parts' order, the sums moved, not copied.
    public static func joined(_ parts: [KeyStatistics], provenance: String) throws -> KeyStatistics {
        guard let first = parts.first else { throw KeyStatisticsError.invalidShape("no statistics to join") }
        let layers = parts.flatMap(\.layers)
        guard parts.allSatisfy({ $0.f == first.f }), Set(layers).count == layers.count else {
            throw KeyStatisticsError.mismatched("joining layers \(parts.map(\.layers)) of f \(parts.map(\.f)): the layers must be disjoint, f equal")
        }
        return KeyStatistics(layers: layers, f: first.f, provenance: provenance, counts: parts.flatMap(\.counts), sums: parts.flatMap(\.sums))
    }

    private init(layers: [Int], f: Int, provenance: String, counts: [Int], sums: [[Double]]) {
        self.layers = layers; self.f = f; self.provenance = provenance; self.counts = counts; self.sums = sums
    }

    /// C0 = S / n of `layer` (f×f row-major, symmetric), made in the sums' own storage, which this value
    /// gives up: for statistics about to be dropped (NullSpaceProjectorSet). Reading that layer's sum
    /// afterwards throws (a wrong shape); it does not give zeros.
    mutating func takeMean(layer: Int) throws -> [Double] {
        let s = try slot(layer)
        guard counts[s] > 0 else { throw KeyStatisticsError.noTokens(layer: layer) }
        var m: [Double] = []
        swap(&m, &sums[s])
        let f = self.f, scale = 1 / Double(counts[s])
        guard m.count == f * f else { throw KeyStatisticsError.invalidShape("layer \(layer)'s sums were already taken") }
        m.withUnsafeMutableBufferPointer { v in
            for i in 0..<f {
                for j in i..<f { v[i * f + j] *= scale }
                for j in 0..<i { v[i * f + j] = v[j * f + i] }
            }
        }
        return m
    }

    func slot(_ layer: Int) throws -> Int {
        guard let i = layers.firstIndex(of: layer) else {
            throw KeyStatisticsError.unknownLayer(layer, known: layers)
        }
        return i
    }

    public func count(layer: Int) throws -> Int { counts[try slot(layer)] }

    /// S += Kᵀ K for `count` keys stored row-major `count × f` in float32 (one key per row).
    /// The hot path of statistics building: converts blocks of `blockRows` keys to float64 and hands
    /// each to `dsyrk`; one scratch allocation per call. Pass many tokens per call (a batch of
    /// sentences, hundreds of tokens or more): dsyrk with k ≈ 40 rows runs at about half its k ≥ 512 rate.
    public mutating func accumulate(layer: Int, keys: UnsafePointer<Float>, count: Int) throws {
        let s = try slot(layer)
        guard count >= 0 else { throw KeyStatisticsError.invalidShape("negative key count \(count)") }
        if count == 0 { return }
        let f = self.f
        let block = min(count, Self.blockRows)
        var scratch = [Double](unsafeUninitializedCapacity: block * f) { _, n in n = block * f }
        scratch.withUnsafeMutableBufferPointer { sp in
            sums[s].withUnsafeMutableBufferPointer { cp in
                guard let a = sp.baseAddress, let c = cp.baseAddress else { return }
                var start = 0
                while start < count {
                    let rows = min(block, count - start)
                    let src = keys + start * f
                    for i in 0..<(rows * f) { a[i] = Double(src[i]) }
                    BLAS.dsyrkUpperAtA(n: f, k: rows, a: a, lda: f, beta: 1, c: c, ldc: f)
                    start += rows
                }
            }
        }
        counts[s] += count
    }

    /// Adds another partial result (same layers and f): sums and counts add, as docs/algorithm.md §1 requires.
    public mutating func merge(_ other: KeyStatistics) throws {
        guard other.layers == layers, other.f == f else {
            throw KeyStatisticsError.mismatched("layers \(layers) f \(f) vs layers \(other.layers) f \(other.f)")
        }
        // Checked first, so a refused merge changes nothing (a worker's result must not crash or poison
        // the coordinator's sum: found by fuzzing, an overflow trap).
        for s in 0..<layers.count where counts[s] > Self.maxTokens - other.counts[s] {
            throw KeyStatisticsError.mismatched("layer \(layers[s]): \(counts[s]) + \(other.counts[s]) tokens exceed \(Self.maxTokens)")
        }
        for s in 0..<layers.count {
            let o = other.sums[s]
            sums[s].withUnsafeMutableBufferPointer { mine in
                for i in 0..<mine.count { mine[i] += o[i] }
            }
            counts[s] += other.counts[s]
        }
    }

    public static func + (lhs: KeyStatistics, rhs: KeyStatistics) throws -> KeyStatistics {
        var out = lhs
        try out.merge(rhs)
        return out
    }

    /// S = Σ k kᵀ for `layer`, symmetrised (f×f).
    public func sum(layer: Int) throws -> Matrix64 {
        var m = try Matrix64(rows: f, cols: f, values: sums[try slot(layer)])
        m.symmetrizeFromUpper()
        return m
    }

    /// C0 = S / n = E[k kᵀ], the uncentred mean of docs/algorithm.md §1 (f×f, symmetric).
    public func mean(layer: Int) throws -> Matrix64 {
        let s = try slot(layer)
        guard counts[s] > 0 else { throw KeyStatisticsError.noTokens(layer: layer) }
        return try sum(layer: layer).scaled(1 / Double(counts[s]))
    }

    // MARK: - Artifact



    public func encodeBody(into w: inout ArtifactWriter) {
        encodeHead(into: &w)
        for s in sums { w.upperTriangle(s, n: f) }
    }

    private func encodeHead(into w: inout ArtifactWriter) {
        w.i64(f)
        w.i64(layers.count)
        w.string(provenance)
        for (l, n) in zip(layers, counts) {
            w.i64(l)
            w.i64(n)
        }
    }

    public var artifactBodyBytes: Int? {
        16 + 8 + provenance.utf8.count + 16 * layers.count + layers.count * (f * (f + 1) / 2) * 8
    }

    /// `serialized()`, releasing each layer's f×f sums once its triangle is written: a worker's shard then
    /// peaks at its sums (layers × f² × 8 bytes, `shardBytes`) instead of its sums plus the payload
    /// (Qwen2.5-0.5B, 5 layers: 0.95 GB instead of 1.8 GB). The bytes are `serialized()`'s, bit for bit.
    public consuming func serializedReleasingSums() -> [UInt8] {
        var w = ArtifactWriter(magic: Self.magic, version: Self.formatVersion, bodyBytes: artifactBodyBytes)
        encodeHead(into: &w)
        for s in sums.indices {
            w.upperTriangle(sums[s], n: f)
            sums[s] = []
        }
        return w.finish()
    }

    /// Bytes a shard's statistics hold while it is built and sent: the f×f float64 sums of every layer,
    /// the float64 scratch block of `accumulate`, and the payload that replaces the sums layer by layer
    /// (`serializedReleasingSums`; its pages are touched only as they are written).
    public static func shardBytes(layers: Int, f: Int) -> Int {
        layers * f * f * 8 + blockRows * f * 8
    }



    /// What a serialized artifact holds (layers, f, token counts, provenance), checked as `read` checks
    /// it (checksum, shape, the body's length), without building its f×f sums.
    public struct Summary: Equatable, Sendable {
        public var layers: [Int]
        public var f: Int
        public var counts: [Int]
        public var provenance: String
    }

    public static func summary(bytes: [UInt8], path: String = "<memory>") throws -> Summary {
        var r = try ArtifactReader(bytes: bytes, path: path, magic: magic, supportedVersion: formatVersion)
        return try readSummary(&r)
    }

    private static func readSummary(_ r: inout ArtifactReader) throws -> Summary {
        let f = try r.count("f", limit: maxDimension)
        let m = try r.count("layer count", limit: maxLayers)
        let provenance = try r.string("provenance")
        var layers: [Int] = [], counts: [Int] = []
        for i in 0..<m {
            layers.append(try r.count("layer index \(i)", limit: Int(Int32.max)))
            counts.append(try r.count("token count \(i)", limit: maxTokens))
        }
        guard f > 0, m > 0, Set(layers).count == m else { throw r.fail("key statistics: f = \(f), layers \(layers)") }
        try r.expectTriangles(m, n: f, "sums")
        try r.expectEnd(after: m * (f * (f + 1) / 2) * 8, "sums")
        return Summary(layers: layers, f: f, counts: counts, provenance: provenance)
    }

    /// Adds a serialized partial result (an artifact's bytes, as a worker sends them) straight from its
    /// packed triangles, without a second f×f copy per layer: bit for bit `merge(try read(bytes:))` (only
    /// the upper triangle is ever nonzero). Every check comes before the first addition, so a refused
    /// one changes nothing.
    public mutating func merge(serialized bytes: [UInt8], path: String = "<memory>") throws {
        var r = try ArtifactReader(bytes: bytes, path: path, magic: Self.magic, supportedVersion: Self.formatVersion)
        let other = try Self.readSummary(&r)
        guard other.layers == layers, other.f == f else {
            throw KeyStatisticsError.mismatched("layers \(layers) f \(f) vs layers \(other.layers) f \(other.f)")
        }
        for s in 0..<layers.count where counts[s] > Self.maxTokens - other.counts[s] {
            throw KeyStatisticsError.mismatched("layer \(layers[s]): \(counts[s]) + \(other.counts[s]) tokens exceed \(Self.maxTokens)")
        }
        let f = self.f
        for s in 0..<layers.count {
            try sums[s].withUnsafeMutableBufferPointer { mine in
                try r.addPackedUpper(n: f, into: mine.baseAddress!, "S of layer \(layers[s])")
            }
            counts[s] += other.counts[s]
        }
        try r.finish()
    }

    public static func decodeBody(_ r: inout ArtifactReader) throws -> KeyStatistics {
        let summary = try readSummary(&r)
        let (f, m, layers) = (summary.f, summary.layers.count, summary.layers)
        var stats: KeyStatistics
        do { stats = try KeyStatistics(layers: layers, f: f, provenance: summary.provenance) } catch {
            throw r.fail("\(error)")
        }
        for i in 0..<m {
            stats.sums[i] = try r.squareFromUpper(n: f, mirror: false, "S of layer \(layers[i])")
        }
        stats.counts = summary.counts
        try r.finish()
        return stats
    }
}
