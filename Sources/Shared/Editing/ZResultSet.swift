// The results of one v* job (a chunk of a batch), stored as an artifact (see Artifact.swift) so that
// a resumed campaign re-uses finished chunks and a corrupted file is caught by its checksum.
//
// Body: request count u (Int64), d (Int64), then per request: h0Norm, deltaNorm (Float64), the loss
// rows (count, then 4 Float64 each), z (d Float64). Float32 values widen exactly to float64.
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model

public struct ZResultSet: ArtifactCodable, Sendable {
    public static let magic = "AEZRESLT"
    public static let formatVersion: UInt32 = 1
    public var results: [ZResult]

    public init(_ results: [ZResult]) { self.results = results }

    public func encodeBody(into w: inout ArtifactWriter) {
        w.i64(results.count)
        w.i64(results.first?.z.count ?? 0)
        for r in results {
            w.f64(Double(r.h0Norm))
            w.f64(Double(r.deltaNorm))
            w.i64(r.losses.count)
            for l in r.losses { w.f64s([l.total, l.nll, l.kl, l.weightDecay].map(Double.init)) }
            w.f64s(r.z.map(Double.init))
        }
    }

    public static func decodeBody(_ r: inout ArtifactReader) throws -> ZResultSet {
        let u = try r.count("request count", limit: 1 << 20), d = try r.count("d", limit: 1 << 20)
        var out: [ZResult] = []
        for i in 0..<u {
            let h0 = Float(try r.f64("h0Norm \(i)")), dn = Float(try r.f64("deltaNorm \(i)"))
            let steps = try r.count("loss rows \(i)", limit: 1 << 16)
            var losses: [VStarLoss] = []
            for _ in 0..<steps {
                let v = try r.f64s(4, "losses \(i)").map(Float.init)
                losses.append(VStarLoss(total: v[0], nll: v[1], kl: v[2], weightDecay: v[3]))
            }
            let z = try r.f64s(d, "z \(i)").map(Float.init)
            out.append(ZResult(z: z, h0Norm: h0, deltaNorm: dn, losses: losses))
        }
        try r.finish()
        return ZResultSet(out)
    }
}
