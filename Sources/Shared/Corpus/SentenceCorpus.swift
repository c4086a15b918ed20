// Preserved-knowledge text: JSON lines with a `sentence` field (the Wikipedia triplets), or plain
// text with one sentence a line.
import Support
import Foundation

public enum CorpusError: Error, CustomStringConvertible {
    case cannotRead(String, reason: String)
    case badLine(path: String, line: Int, detail: String)
    case tooShort(path: String, sentences: Int, wanted: Int)
    public var description: String {
        switch self {
        case .cannotRead(let p, let why): "cannot read corpus \(p): \(why)"
        case let .tooShort(p, n, wanted): "corpus \(p) has \(n) sentences; the range needs \(wanted)"
        case .badLine(let p, let l, let d): "corpus \(p) line \(l): \(d)"
        }
    }
}

public enum SentenceCorpus {
    /// Sentences `range`, every one of them: a corpus that ends first is an error giving its real size
    /// (an offset past the end reads nothing, so the whole file is counted then).
    public static func read(path: String, range: Range<Int>) throws -> [String] {
        let s = try read(path: path, offset: range.lowerBound, limit: range.count)
        guard s.count == range.count else {
            throw CorpusError.tooShort(path: path, sentences: s.isEmpty ? try read(path: path).count : range.lowerBound + s.count,
                                       wanted: range.upperBound)
        }
        return s
    }

    /// Reads up to `limit` sentences (all when nil), skipping `offset` first. Lines are scanned one at
    /// a time and the scan stops at the last one wanted: a K₀ build of 500 sentences no longer splits
    /// the whole 94,790-line corpus first (measured: that split was ≈ 5 % of a 500-sentence build).
    public static func read(path: String, offset: Int = 0, limit: Int? = nil) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { throw CorpusError.cannotRead(path, reason: FileIO.whyUnreadable(path) ?? "read failed") }
        let jsonl = path.hasSuffix(".jsonl") || path.hasSuffix(".json")
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> [String] in
            guard let base = raw.baseAddress else { return [] }
            var out: [String] = []
            var index = 0, lineNo = 0, start = 0
            while start < raw.count {
                if let limit, out.count >= limit { break }
                let hit: UnsafeMutableRawPointer? = memchr(base + start, 0x0A, raw.count - start)
                let end: Int = hit.map { UnsafeRawPointer($0) - base } ?? raw.count
                let line = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                start = end + 1
                lineNo += 1
                if line.isEmpty { continue }
                defer { index += 1 }
                if index < offset { continue }
                if jsonl {
                    guard let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                        throw CorpusError.badLine(path: path, line: lineNo, detail: "not a JSON object")
                    }
                    guard let s = obj["sentence"] as? String, !s.isEmpty else {
                        throw CorpusError.badLine(path: path, line: lineNo, detail: "missing or empty \"sentence\"")
                    }
                    out.append(s)
                } else {
                    // A binary file given by mistake (a GGUF, an artifact) would otherwise become K₀ "sentences".
                    guard !line.contains(0), let s = String(validating: line, as: UTF8.self) else {
                        throw CorpusError.badLine(path: path, line: lineNo, detail: "not UTF-8 text (a binary file? a corpus is JSON lines "
                                                  + "with a \"sentence\" field, .jsonl, or plain text with one sentence a line)")
                    }
                    out.append(s)
                }
            }
            return out
        }
    }
}
