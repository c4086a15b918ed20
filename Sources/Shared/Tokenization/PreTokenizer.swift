// Pre-tokenizers: text is cut into pieces that byte-level BPE never merges across. `PreTokenizer` names
// the rules a GGUF file asks for (`tokenizer.ggml.pre`); the rules themselves are scanned by hand over
// Unicode scalars (no regex engine, no backtracking, one pass), one type per rule set:
// `SmolLMPreTokenizer` here, `Qwen2PreTokenizer` (qwen2 and llama3) in its own file.
//
// The `smollm` rules (llama.cpp's LLAMA_VOCAB_PRE_TYPE_SMOLLM; HF's
// Sequence[Digits(individual_digits), ByteLevel(use_regex)]), in two steps:
//   1. every \p{N} scalar is a piece of its own;
//   2. the rest is split by GPT-2's regex
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//      applied to each stretch between digits separately (a lookahead never sees past a digit).
// `\s+(?!\S)` is the subtle part: a whitespace run followed by a non-space gives up its last scalar,
// which then starts the next piece (" world" keeps its space; "\n\nword" is "\n", "\n", "word").
import GGUF

/// The pre-tokenizers this package implements, by their GGUF `tokenizer.ggml.pre` names.
public enum PreTokenizer: String, Sendable, CaseIterable {
    /// SmolLM2: digits one by one, then GPT-2's regex.
    case smollm
    /// Qwen2 / Qwen2.5: GPT-4-style regex with case-insensitive contractions and single digits.
    case qwen2
    /// Llama 3 (`llama-bpe`, also named `llama3` and `llama-v3`; llama.cpp's LLAMA_VOCAB_PRE_TYPE_LLAMA3):
    /// qwen2's rules with digits in runs of up to three (`\p{N}{1,3}`).
    case llama3 = "llama-bpe"

    /// The pre-tokenizer a GGUF file names; `TokenizerError.unsupportedPreTokenizer` for any other name.
    public init(ggufName name: String) throws {
        let aliases: [String: PreTokenizer] = ["llama3": .llama3, "llama-v3": .llama3]
        guard let known = PreTokenizer(rawValue: name) ?? aliases[name] else { throw TokenizerError.unsupportedPreTokenizer(name) }
        self = known
    }

    /// A piece that is itself a token is that token, merges or not (llama.cpp's and HF's `ignore_merges`,
    /// which Llama 3's tokenizer sets).
    public var takesWholePieces: Bool { self == .llama3 }

    /// Whether BOS is added when the file does not say (`tokenizer.ggml.add_bos_token`): llama.cpp's default.
    public var addsBOSByDefault: Bool { self == .llama3 }

    /// The pieces of `text`, in order; concatenated they give `text` back.
    public func pieces(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        let classes = scalars.map(ScalarClass.init)
        var ranges: [Range<Int>] = []
        split(scalars, classes, 0..<scalars.count, into: &ranges)
        return ranges.map { range in
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[range])
            return String(view)
        }
    }

    /// Appends the pieces of `scalars[range]` to `pieces` as index ranges. `classes[i]` is the class
    /// of `scalars[i]`.
    func split(_ scalars: [Unicode.Scalar], _ classes: [ScalarClass], _ range: Range<Int>,
               into pieces: inout [Range<Int>]) {
        switch self {
        case .smollm: SmolLMPreTokenizer.split(scalars, classes, range, into: &pieces)
        case .qwen2: Qwen2PreTokenizer.split(scalars, classes, range, digits: 1, into: &pieces)
        case .llama3: Qwen2PreTokenizer.split(scalars, classes, range, digits: 3, into: &pieces)
        }
    }
}

/// The character classes the split regexes distinguish.
enum ScalarClass: UInt8 {
    case letter      // \p{L}
    case number      // \p{N}
    case whitespace  // \s (Unicode White_Space)
    case other       // everything else, including marks \p{M}

    init(_ scalar: Unicode.Scalar) {
        if scalar.value < 128 {
            self = ScalarClass.ascii[Int(scalar.value)]
            return
        }
        let properties = scalar.properties
        if properties.isWhitespace {
            self = .whitespace
            return
        }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            self = .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            self = .number
        default:
            self = .other
        }
    }

    private static let ascii: [ScalarClass] = (0..<128).map { value in
        switch UInt8(value) {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): return .letter
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        case 0x09...0x0D, 0x20: return .whitespace
        default: return .other
        }
    }
}

/// The `smollm` split of text into pieces.
public enum SmolLMPreTokenizer {
    /// The pieces of `text`, in order; concatenated they give `text` back.
    public static func pieces(_ text: String) -> [String] { PreTokenizer.smollm.pieces(text) }

    /// Appends the pieces of `scalars[range]` to `pieces` as index ranges. `classes[i]` is the class
    /// of `scalars[i]`.
    static func split(_ scalars: [Unicode.Scalar], _ classes: [ScalarClass], _ range: Range<Int>,
                      into pieces: inout [Range<Int>]) {
        var start = range.lowerBound
        for i in range where classes[i] == .number {
            splitGPT2(scalars, classes, start..<i, into: &pieces)
            pieces.append(i..<(i + 1))
            start = i + 1
        }
        splitGPT2(scalars, classes, start..<range.upperBound, into: &pieces)
    }

    /// GPT-2's regex over `scalars[range]`, alternatives tried in the regex's order at each position.
    static func splitGPT2(_ scalars: [Unicode.Scalar], _ classes: [ScalarClass], _ range: Range<Int>,
                          into pieces: inout [Range<Int>]) {
        let end = range.upperBound
        var i = range.lowerBound
        while i < end {
            // 's 't 'm 'd 're 've 'll (case-sensitive, as in GPT-2)
            if scalars[i] == "'", let length = contractionLength(scalars, i, end) {
                pieces.append(i..<(i + length))
                i += length
                continue
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional U+0020, then a run of one class.
            var first = i
            if scalars[i] == " ", i + 1 < end, classes[i + 1] != .whitespace { first = i + 1 }
            let kind = classes[first]
            var j = first + 1
            if kind != .whitespace {
                while j < end, classes[j] == kind { j += 1 }
                pieces.append(i..<j)
                i = j
                continue
            }
            // `\s+(?!\S)` then `\s+`: a run followed by a non-space leaves its last scalar behind,
            // unless the run is a single scalar.
            while j < end, classes[j] == .whitespace { j += 1 }
            if j < end, j - i > 1 { j -= 1 }
            pieces.append(i..<j)
            i = j
        }
    }

    private static func contractionLength(_ scalars: [Unicode.Scalar], _ i: Int, _ end: Int) -> Int? {
        guard i + 1 < end else { return nil }
        switch scalars[i + 1] {
        case "s", "t", "m", "d":
            return 2
        case "r", "v":
            return i + 2 < end && scalars[i + 2] == "e" ? 3 : nil
        case "l":
            return i + 2 < end && scalars[i + 2] == "l" ? 3 : nil
        default:
            return nil
        }
    }
}
