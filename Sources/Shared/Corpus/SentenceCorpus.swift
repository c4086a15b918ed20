// Preserved-knowledge text: JSON lines with a `sentence` field (the Wikipedia triplets), or plain
// text with one sentence a line.
import Foundation

public enum CorpusError: Error, CustomStringConvertible {
    case cannotRead(String)
    case badLine(path: String, line: Int, detail: String)
    public var description: String {
        switch self {
        case .cannotRead(let p): "cannot read corpus \(p)"
        case .badLine(let p, let l, let d): "corpus \(p) line \(l): \(d)"
        }
    }
}

public enum SentenceCorpus {
    /// Reads up to `limit` sentences (all when nil), skipping `offset` first.
    public static func read(path: String, offset: Int = 0, limit: Int? = nil) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { throw CorpusError.cannotRead(path) }
        let jsonl = path.hasSuffix(".jsonl") || path.hasSuffix(".json")
        var out: [String] = []
        var index = 0
        for (i, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() {
            if line.isEmpty { continue }
            defer { index += 1 }
            if index < offset { continue }
            if let limit, out.count >= limit { break }
            if jsonl {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw CorpusError.badLine(path: path, line: i + 1, detail: "not a JSON object")
                }
                guard let s = obj["sentence"] as? String, !s.isEmpty else {
                    throw CorpusError.badLine(path: path, line: i + 1, detail: "missing or empty \"sentence\"")
                }
                out.append(s)
            } else {
                out.append(String(decoding: line, as: UTF8.self))
            }
        }
        return out
    }
}
