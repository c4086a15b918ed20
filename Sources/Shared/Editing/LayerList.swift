// Layer sets as users write them on command lines and in configs: a range "3-7", a list "3,5,7",
// or both mixed ("3-5,7"). The result is ascending and duplicate-free, the order docs/algorithm.md §4 edits in.
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model

public enum LayerListError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case badItem(text: String, item: String)
    case descending(text: String, item: String)
    case duplicate(text: String, layer: Int)
    case outOfRange(text: String, layer: Int, layers: Int)

    public var description: String {
        switch self {
        case .empty: return "layer list is empty (expected e.g. \"3-7\" or \"3,5,7\")"
        case let .badItem(text, item):
            return "layer list \"\(text)\": \"\(item)\" is not a layer number or a range like 3-7"
        case let .descending(text, item): return "layer list \"\(text)\": range \"\(item)\" runs backwards"
        case let .duplicate(text, layer): return "layer list \"\(text)\": layer \(layer) appears twice"
        case let .outOfRange(text, layer, n): return "layer list \"\(text)\": layer \(layer) is outside 0...\(n - 1)"
        }
    }
}

public enum LayerList {
    /// Bound on layer indices when the model is not known (as in `KeyStatistics`).
    public static let maxLayers = 4096

    /// Parses `text`; with `modelLayers`, every layer must lie in 0..<modelLayers.
    public static func parse(_ text: String, modelLayers: Int? = nil) throws -> [Int] {
        let trimmed = text.filter { !$0.isWhitespace }
        guard !trimmed.isEmpty else { throw LayerListError.empty }
        var out: [Int] = []
        for item in trimmed.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            let ends = item.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count), ends.allSatisfy({ $0.allSatisfy(\.isNumber) }),
                  let lo = Int(ends[0]), let hi = Int(ends[ends.count - 1]) else {
                throw LayerListError.badItem(text: text, item: item)
            }
            guard lo <= hi else { throw LayerListError.descending(text: text, item: item) }
            // Bounded before expanding, so "0-999999999" is an error, not a long loop.
            let n = modelLayers ?? Self.maxLayers
            if hi >= n { throw LayerListError.outOfRange(text: text, layer: hi, layers: n) }
            for l in lo...hi {
                if out.contains(l) { throw LayerListError.duplicate(text: text, layer: l) }
                out.append(l)
            }
        }
        return out.sorted()
    }

    /// The shortest text that parses back to `layers` ("3-7", "3,5,7", "3-5,7").
    public static func format(_ layers: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        let s = Array(Set(layers)).sorted()
        while i < s.count {
            var j = i
            while j + 1 < s.count, s[j + 1] == s[j] + 1 { j += 1 }
            parts.append(j - i >= 2 ? "\(s[i])-\(s[j])" : (i...j).map { "\(s[$0])" }.joined(separator: ","))
            i = j + 1
        }
        return parts.joined(separator: ",")
    }
}
