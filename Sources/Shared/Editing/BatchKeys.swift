// The keys one committed batch added to the sequential state: per edited layer, in the order they were
// added, K1 (f × u float64, one column per request). Cp after batch k is the sum of K1 K1ᵀ over batches
// 1…k, added in that order (SequentialState.add), so these files are what it takes to rebuild Cp as it
// stood after any earlier batch: what `alphaedit rollback` needs (EditRollback.swift). ≈ f·u·8 bytes a
// layer: 19 MB a batch of 100 on Qwen2.5-0.5B's 5 layers, against 473 MB for its Cp.
//
// Artifact (see Artifact.swift for the container), magic "AEBKEYS1", version 1, body:
//   f (Int64), u (Int64), layer count m (Int64), m × [layer index (Int64), K1 row-major f×u (Float64)].
import Support
import Kernels

public struct BatchKeys: Sendable, Equatable, ArtifactCodable {
    public static let magic = "AEBKEYS1"
    public static let formatVersion: UInt32 = 1

    /// (layer, K1) in the order the keys went into Cp.
    public var keys: [(layer: Int, keys: Matrix64)]

    public init(keys: [(layer: Int, keys: Matrix64)]) throws {
        guard let first = keys.first else { self.keys = []; return }
        guard keys.allSatisfy({ $0.keys.rows == first.keys.rows && $0.keys.cols == first.keys.cols }) else {
            throw LinearAlgebraError.shapeMismatch("a batch's keys must have one shape at every layer")
        }
        guard Set(keys.map(\.layer)).count == keys.count else {
            throw LinearAlgebraError.shapeMismatch("layers \(keys.map(\.layer)) of a batch's keys must be distinct")
        }
        self.keys = keys
    }

    public var layers: [Int] { keys.map(\.layer) }

    /// Adds these keys to `state` exactly as the batch did (same layers, same order).
    public func add(to state: inout SequentialState) throws {
        for (l, k) in keys { try state.add(layer: l, keys: k) }
    }

    /// Takes these keys out of `state` (`SequentialState.remove`).
    public func remove(from state: inout SequentialState) throws {
        for (l, k) in keys.reversed() { try state.remove(layer: l, keys: k) }
    }

    public static func == (a: BatchKeys, b: BatchKeys) -> Bool {
        a.keys.count == b.keys.count && zip(a.keys, b.keys).allSatisfy { $0.layer == $1.layer && $0.keys == $1.keys }
    }

    // MARK: - Artifact

    public func encodeBody(into w: inout ArtifactWriter) {
        w.i64(keys.first?.keys.rows ?? 0)
        w.i64(keys.first?.keys.cols ?? 0)
        w.i64(keys.count)
        for (l, k) in keys {
            w.i64(l)
            w.f64s(k.values)
        }
    }

    public var artifactBodyBytes: Int? {
        24 + keys.reduce(0) { $0 + 8 + 8 * $1.keys.values.count }
    }

    public static func decodeBody(_ r: inout ArtifactReader) throws -> BatchKeys {
        let f = try r.count("f", limit: KeyStatistics.maxDimension)
        let u = try r.count("u", limit: 1 << 24)
        let m = try r.count("layer count", limit: KeyStatistics.maxLayers)
        var out: [(layer: Int, keys: Matrix64)] = []
        for i in 0..<m {
            let l = try r.count("layer index \(i)", limit: Int(Int32.max))
            let (n, overflow) = f.multipliedReportingOverflow(by: u)
            guard !overflow else { throw r.fail("keys of layer \(l): \(f)×\(u) is too large") }
            let values = try r.f64s(n, "keys of layer \(l)")
            do { out.append((l, try Matrix64(rows: f, cols: u, values: values))) } catch { throw r.fail("\(error)") }
        }
        try r.finish()
        do { return try BatchKeys(keys: out) } catch { throw r.fail("\(error)") }
    }
}
