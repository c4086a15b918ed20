// K0 key statistics (the files a worker sends and `cov` writes), and what the coordinator does with
// them next: merge, C0 = S / n per layer, and for small f the eigendecomposition into projectors.
// Input: a statistics body, wrapped in a valid header and checksum (Framing).
import Editing

public enum KeysFuzz: FuzzTarget {
    public static func seeds() throws -> [(String, [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        for (i, (layers, f)) in [([3], 2), ([3, 4, 5], 3), ([7], 8)].enumerated() {
            var stats = try KeyStatistics(layers: layers, f: f, provenance: "seed \(i)")
            let keys = (0 ..< 3 * f).map { Float(($0 * 7) % 5) - 2 }
            try keys.withUnsafeBufferPointer { k in
                for layer in layers { try stats.accumulate(layer: layer, keys: k.baseAddress!, count: 3) }
            }
            seeds.append(("statistics-\(i)", Framing.body(of: stats.serialized())))
        }
        return seeds
    }

    public static func test(_ input: [UInt8]) {
        let bytes = Framing.framed(body: input, magic: KeyStatistics.magic, version: KeyStatistics.formatVersion)
        // The coordinator checks a shard's bytes with `summary` and adds them with `merge(serialized:)`:
        // both must take exactly what `read` takes, and give what it gives.
        let summary = try? KeyStatistics.summary(bytes: bytes)
        guard let stats = try? KeyStatistics.read(bytes: bytes) else {
            if summary != nil { fatalError("KeyStatistics.summary accepts what read refuses") }
            return
        }
        guard let summary, summary.layers == stats.layers, summary.f == stats.f, summary.counts == stats.counts,
              summary.provenance == stats.provenance else { fatalError("KeyStatistics.summary differs from read") }
        if stats.f <= 64, stats.layers.count <= 64, var fromBytes = try? KeyStatistics(layers: stats.layers, f: stats.f) {
            do { try fromBytes.merge(serialized: bytes) } catch { fatalError("merge(serialized:) refuses what read takes: \(error)") }
            for layer in stats.layers {
                guard let a = try? fromBytes.sum(layer: layer).values, let b = try? stats.sum(layer: layer).values,
                      zip(a, b).allSatisfy({ $0 == $1 || ($0.isNaN && $1.isNaN) }) else { fatalError("merge(serialized:) differs from read") }
            }
        }
        _ = try? stats + stats
        for layer in stats.layers { _ = try? stats.mean(layer: layer) }
        if stats.f <= 16 { _ = try? NullSpaceProjectorSet(statistics: stats, threshold: 1e-2) }
    }
}
