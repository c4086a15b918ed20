// Special tokens written literally in the text (`<|im_start|>`, Gemma's `<start_of_turn>`, and Gemma's
// user-defined whitespace runs such as "\n\n" or four spaces) become their own ids before the model's
// algorithm sees the text. This is llama.cpp's `tokenizer_st_partition` with special tokens parsed:
// every token of type control (3), user-defined (4) or unknown (2) takes part; they are tried longest
// first (by UTF-8 length, then by id), and each one claims, left to right, all its occurrences that do
// not overlap text an earlier (longer) token claimed. The text between claims is tokenized normally.
// (Longest-first over the whole text differs from "longest at each position" only when two special
// tokens overlap, e.g. "<a" and "a>" in "<a>"; llama.cpp's order is the one models were evaluated with.)
// Candidates are found with a trie over scalars, so the cost is proportional to the text, not to the
// 6,000-odd special tokens of a Gemma vocabulary.

/// Splits text into ordinary stretches and literal special tokens.
struct SpecialTokenSplitter: Sendable {
    /// Token types that are matched as whole strings: unknown, control, user-defined.
    static let matchedTypes: Set<Int32> = [2, 3, 4]

    /// Trie edges keyed by `node << 21 | scalar`; node 0 is the root.
    private let children: [UInt64: Int32]
    /// `terminal[node]`: the id of the special token spelled by the path to `node`, or -1.
    private let terminal: [Int32]
    /// `utf8Length[node]`: the UTF-8 length of that path (the sort key, as in llama.cpp).
    private let utf8Length: [Int32]
    /// `mayStart[v]`: some special token starts with scalar v (v < 128); index 128: with a non-ASCII one.
    private let mayStart: [Bool]

    init(tokens: [String], tokenTypes: [Int32]) {
        var children: [UInt64: Int32] = [:]
        var terminal: [Int32] = [-1]
        var utf8Length: [Int32] = [0]
        var mayStart = [Bool](repeating: false, count: 129)
        for (id, token) in tokens.enumerated() where Self.matchedTypes.contains(tokenTypes[id]) {
            guard let first = token.unicodeScalars.first else { continue }
            mayStart[min(Int(first.value), 128)] = true
            var node: Int32 = 0
            for scalar in token.unicodeScalars {
                let key = UInt64(node) << 21 | UInt64(scalar.value)
                if let next = children[key] {
                    node = next
                } else {
                    let next = Int32(terminal.count)
                    children[key] = next
                    terminal.append(-1)
                    utf8Length.append(utf8Length[Int(node)] + Int32(UTF8.width(scalar)))
                    node = next
                }
            }
            if terminal[Int(node)] < 0 { terminal[Int(node)] = Int32(id) }  // duplicates: first id
        }
        self.children = children
        self.terminal = terminal
        self.utf8Length = utf8Length
        self.mayStart = mayStart
    }

    /// One literal occurrence of a special token.
    private struct Match: Comparable {
        var start: Int
        var length: Int  // in scalars
        var utf8Length: Int32
        var id: Int32

        /// Processing order: longer first, then by id (all occurrences of one token together), then
        /// left to right.
        static func < (a: Match, b: Match) -> Bool {
            if a.utf8Length != b.utf8Length { return a.utf8Length > b.utf8Length }
            if a.id != b.id { return a.id < b.id }
            return a.start < b.start
        }
    }

    /// The fragments of `scalars`, in order. Without special tokens in the text: one `.text` fragment
    /// (none for empty text).
    func fragments(_ scalars: [Unicode.Scalar]) -> [TextFragment] {
        var matches: [Match] = []
        for start in scalars.indices where mayStart[min(Int(scalars[start].value), 128)] {
            var node: Int32 = 0
            var position = start
            while position < scalars.count,
                  let next = children[UInt64(node) << 21 | UInt64(scalars[position].value)] {
                node = next
                position += 1
                let id = terminal[Int(node)]
                if id >= 0 {
                    matches.append(Match(start: start, length: position - start,
                                         utf8Length: utf8Length[Int(node)], id: id))
                }
            }
        }
        guard !matches.isEmpty else { return scalars.isEmpty ? [] : [.text(0..<scalars.count)] }

        matches.sort()
        var claimed = [Bool](repeating: false, count: scalars.count)
        var accepted: [Match] = []
        for match in matches {
            let range = match.start..<(match.start + match.length)
            guard !range.contains(where: { claimed[$0] }) else { continue }
            for i in range { claimed[i] = true }
            accepted.append(match)
        }
        accepted.sort { $0.start < $1.start }

        var fragments: [TextFragment] = []
        var position = 0
        for match in accepted {
            if match.start > position { fragments.append(.text(position..<match.start)) }
            fragments.append(.token(match.id))
            position = match.start + match.length
        }
        if position < scalars.count { fragments.append(.text(position..<scalars.count)) }
        return fragments
    }
}
