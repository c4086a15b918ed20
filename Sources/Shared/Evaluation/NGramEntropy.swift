// Fluency (docs/algorithm.md §6): the weighted entropy of a text's word n-gram frequencies,
// (2/3·H2 + 4/3·H3) / 2 in bits, as the reference's `compute_n_gram_entropy` (ns [2, 3], weights
// [2/3, 4/3], arithmetic mean). Words follow NLTK's `word_tokenize` in its common cases: runs of
// letters/digits (with inner apostrophes, dots and hyphens kept, e.g. "U.S.", "well-known") and every
// other non-space character as a token of its own; the reference's rarer splits (n't, quotes) differ.
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store
import Foundation

public enum NGramEntropy {
    public static let orders = [2, 3]
    public static let weights = [2.0 / 3.0, 4.0 / 3.0]

    /// Word tokens of `text` (see the file comment).
    public static func words(_ text: String) -> [String] {
        var out: [String] = [], cur = ""
        let chars = Array(text)
        for (i, c) in chars.enumerated() {
            if c.isLetter || c.isNumber {
                cur.append(c)
            } else if (c == "'" || c == "." || c == "-") && !cur.isEmpty && i + 1 < chars.count
                        && (chars[i + 1].isLetter || chars[i + 1].isNumber) {
                cur.append(c)   // inner punctuation of a word
            } else {
                if !cur.isEmpty { out.append(cur); cur = "" }
                if !c.isWhitespace { out.append(String(c)) }
            }
        }
        if !cur.isEmpty { out.append(cur) }
        return out
    }

    /// Entropy in bits of the frequency distribution of the n-grams of `tokens` (0 when there are none).
    public static func entropy(_ tokens: [String], n: Int) -> Double {
        guard n > 0, tokens.count >= n else { return 0 }
        var counts: [[String]: Int] = [:]
        for i in 0...(tokens.count - n) { counts[Array(tokens[i..<(i + n)]), default: 0] += 1 }
        let total = Double(tokens.count - n + 1)
        // Summed in a fixed order (sorted counts) so the figure does not depend on hashing order.
        return counts.values.sorted().reduce(0.0) { acc, c in
            let p = Double(c) / total
            return acc - p * log2(p)
        }
    }

    /// (2/3·H2 + 4/3·H3) / 2 of one text, bits.
    public static func score(_ text: String) -> Double {
        let w = words(text)
        let parts = zip(orders, weights).map { entropy(w, n: $0.0) * $0.1 }
        return parts.reduce(0, +) / Double(parts.count)
    }
}
