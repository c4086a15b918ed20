// Consistency (docs/algorithm.md §6): TF-IDF cosine between generated text and reference snippets, as
// scikit-learn's TfidfVectorizer used by the reference: lowercase, tokens = runs of 2+ word
// characters (`\b\w\w+\b`), raw term counts, smooth idf = ln((1+N)/(1+df)) + 1 fitted on the snippet
// corpus (one document per snippet), l2-normalised rows; words outside the corpus are ignored.
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store
import Foundation

public struct TFIDF: Sendable {
    /// idf of every word of the fitted corpus.
    public let idf: [String: Double]
    public let documents: Int

    public init(corpus: [String]) {
        var df: [String: Int] = [:]
        for d in corpus { for w in Set(Self.tokens(d)) { df[w, default: 0] += 1 } }
        let n = Double(corpus.count)
        idf = df.mapValues { log((1 + n) / (1 + Double($0))) + 1 }
        documents = corpus.count
    }

    /// Lowercased runs of 2+ letters, digits or underscores.
    public static func tokens(_ text: String) -> [String] {
        var out: [String] = [], cur = ""
        for c in text.lowercased() {
            if c.isLetter || c.isNumber || c == "_" { cur.append(c) } else {
                if cur.count >= 2 { out.append(cur) }
                cur = ""
            }
        }
        if cur.count >= 2 { out.append(cur) }
        return out
    }

    /// The l2-normalised tf·idf vector of `text` (sparse).
    public func vector(_ text: String) -> [String: Double] {
        var tf: [String: Double] = [:]
        for w in Self.tokens(text) where idf[w] != nil { tf[w, default: 0] += 1 }
        var v = tf.map { ($0.key, $0.value * (idf[$0.key] ?? 0)) }
        v.sort { $0.0 < $1.0 }   // fixed summation order
        let norm = v.reduce(0.0) { $0 + $1.1 * $1.1 }.squareRoot()
        guard norm > 0 else { return [:] }
        return Dictionary(uniqueKeysWithValues: v.map { ($0.0, $0.1 / norm) })
    }

    /// Cosine of the two texts' tf·idf vectors (0 when either has no known word).
    public func similarity(_ a: String, _ b: String) -> Double {
        let va = vector(a), vb = vector(b)
        return va.keys.sorted().reduce(0.0) { $0 + (va[$1] ?? 0) * (vb[$1] ?? 0) }
    }
}

public enum SnippetsError: Error, CustomStringConvertible {
    case cannotRead(String, reason: String)
    case badFormat(String)
    public var description: String {
        switch self {
        case .cannotRead(let p, let why): "cannot read attribute snippets \(p): \(why)"
        case .badFormat(let p): "\(p): expected {relation_id: {object: [sentences]}}"
        }
    }
}

/// `attribute_snippets.json`: {relation_id: {object: [sentences]}} and the TF-IDF fitted on all of it.
public struct AttributeSnippets: Sendable {
    public let snippets: [String: [String: [String]]]
    public let tfidf: TFIDF

    public init(snippets: [String: [String: [String]]]) {
        self.snippets = snippets
        // Documents in a fixed order (only df matters, but keep it reproducible).
        let docs = snippets.keys.sorted().flatMap { r in snippets[r].map { o in o.keys.sorted().flatMap { o[$0] ?? [] } } ?? [] }
        tfidf = TFIDF(corpus: docs)
    }

    public static func read(path: String) throws -> AttributeSnippets {
        guard let data = FileManager.default.contents(atPath: path) else { throw SnippetsError.cannotRead(path, reason: FileIO.whyUnreadable(path) ?? "read failed") }
        guard let s = try? JSONDecoder().decode([String: [String: [String]]].self, from: data) else { throw SnippetsError.badFormat(path) }
        return AttributeSnippets(snippets: s)
    }

    /// TF-IDF cosine of the joined texts with the joined snippets of (relation, object); nil without snippets.
    public func consistency(texts: [String], relation: String?, object: String) -> Double? {
        guard let relation, let refs = snippets[relation]?[object], !refs.isEmpty else { return nil }
        return tfidf.similarity(texts.joined(separator: " "), refs.joined(separator: " "))
    }
}
