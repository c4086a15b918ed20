// The weight deltas of one applied batch: per edited layer, ΔW (d × f float32, the `ffn_down` layout).
// Stored as an artifact (see Artifact.swift) so a resumed run or an export re-applies exactly
// what was applied, and a corrupted file is caught by its checksum before use.
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model

public struct BatchDeltas: Sendable, Equatable, ArtifactCodable {
    public static let magic = "AEDELTAS"
    public static let formatVersion: UInt32 = 1
    public var rows: Int
    public var cols: Int
    /// layer → ΔW, row-major rows × cols.
    public var deltas: [Int: [Float]]

    public init(rows: Int, cols: Int, deltas: [Int: [Float]]) {
        self.rows = rows; self.cols = cols; self.deltas = deltas
    }

    public func encodeBody(into w: inout ArtifactWriter) {
        w.i64(rows); w.i64(cols); w.i64(deltas.count)
        for l in deltas.keys.sorted() {
            w.i64(l)
            // Float32 values widen exactly to float64; the reader narrows them back bit for bit.
            w.f64s((deltas[l] ?? []).map(Double.init))
        }
    }

    public static func decodeBody(_ r: inout ArtifactReader) throws -> BatchDeltas {
        let rows = try r.count("rows", limit: 1 << 20), cols = try r.count("cols", limit: 1 << 20)
        let n = try r.count("layer count", limit: 4096)
        var d: [Int: [Float]] = [:]
        for _ in 0..<n {
            let l = try r.count("layer", limit: 1 << 16)
            d[l] = try r.f64s(rows * cols, "ΔW of layer \(l)").map(Float.init)
        }
        try r.finish()
        return BatchDeltas(rows: rows, cols: cols, deltas: d)
    }
}
