// What a K₀ statistics artifact was built from: the model file, the corpus file, the sentence range and
// the layers. `cov`, `edit` and `eval` write it as the first line of the artifact's provenance, so a file
// built once (say by `alphaedit cov` on a cluster) is reused only where it is the statistics the user
// asked for, and a stale one (another corpus, model, range or layer set under the same name) is never
// taken for them. Checksums are the store's FNV-1a-64 of the whole file (ArtifactFile.checksum).
//
// The forward's batch grouping is not part of it: it changes the sums only by float64 rounding
// (≈ 1e-15 relative, README "What is guaranteed").
public struct K0Source: Equatable, Sendable, CustomStringConvertible {
    public static let tag = "k0-source/1"
    public var modelChecksum: String
    public var corpusChecksum: String
    public var sentences: Range<Int>
    public var layers: [Int]
    /// Free text after the identity (file names, for people); not compared.
    public var note: String

    public init(modelChecksum: String, corpusChecksum: String, sentences: Range<Int>, layers: [Int], note: String = "") {
        self.modelChecksum = modelChecksum; self.corpusChecksum = corpusChecksum
        self.sentences = sentences; self.layers = layers; self.note = note
    }

    /// The provenance text: one identity line, then the note.
    public var provenance: String {
        "\(Self.tag) model \(modelChecksum) corpus \(corpusChecksum) sentences \(sentences.lowerBound)..<\(sentences.upperBound) "
            + "layers \(layers.map(String.init).joined(separator: ","))" + (note.isEmpty ? "" : "\n" + note)
    }

    public var description: String {
        "sentences \(sentences.lowerBound)..<\(sentences.upperBound) of corpus \(corpusChecksum), layers \(LayerList.format(layers)), "
            + "model \(modelChecksum)" + (note.isEmpty ? "" : " (\(note))")
    }

    /// The source a provenance text names, or nil for text without an identity line (files written
    /// before it existed, or by hand).
    public init?(provenance: String) {
        let line = provenance.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        let f = line[0].split(separator: " ").map(String.init)
        guard f.count == 9, f[0] == Self.tag, f[1] == "model", f[3] == "corpus", f[5] == "sentences", f[7] == "layers"
        else { return nil }
        let r = f[6].components(separatedBy: "..<")
        guard r.count == 2, let lo = Int(r[0]), let hi = Int(r[1]), lo >= 0, lo <= hi else { return nil }
        let ls = f[8].split(separator: ",").compactMap { Int($0) }
        guard !ls.isEmpty, ls.count == f[8].split(separator: ",").count else { return nil }
        self.init(modelChecksum: f[2], corpusChecksum: f[4], sentences: lo..<hi, layers: ls,
                  note: line.count > 1 ? String(line[1]) : "")
    }

    /// nil when `self` (a file's source) is what `wanted` asks for, else what differs, in words.
    public func mismatch(_ wanted: K0Source) -> String? {
        var d: [String] = []
        if modelChecksum != wanted.modelChecksum { d.append("model checksum \(modelChecksum), wanted \(wanted.modelChecksum)") }
        if corpusChecksum != wanted.corpusChecksum { d.append("corpus checksum \(corpusChecksum), wanted \(wanted.corpusChecksum)") }
        if sentences != wanted.sentences {
            d.append("sentences \(sentences.lowerBound)..<\(sentences.upperBound), wanted \(wanted.sentences.lowerBound)..<\(wanted.sentences.upperBound)")
        }
        if layers != wanted.layers { d.append("layers \(LayerList.format(layers)), wanted \(LayerList.format(wanted.layers))") }
        return d.isEmpty ? nil : d.joined(separator: "; ")
    }
}

extension KeyStatistics {
    /// The source its provenance names (nil: none recorded).
    public var source: K0Source? { K0Source(provenance: provenance) }

    /// nil when these statistics are those `wanted` names, else why not (a file without a recorded
    /// source is never taken for any).
    public func mismatch(_ wanted: K0Source) -> String? {
        guard let s = source else { return "it does not record what it was built from (written by an older version?)" }
        return s.mismatch(wanted)
    }
}
