// The `qwen2` pre-tokenizer (Qwen2 / Qwen2.5; llama.cpp's LLAMA_VOCAB_PRE_TYPE_QWEN2): the split regex
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// scanned by hand, alternatives tried in the regex's order at each position. It differs from GPT-2's
// (`smollm`) in four ways: contractions ignore ASCII case ("IT'S" → "IT", "'S"); a word takes one
// leading non-letter, non-digit, non-newline scalar of any kind ("(foo", "\tfoo", " foo"); every digit
// is its own piece; and a punctuation run takes the newlines that follow it, while a whitespace run
// that contains newlines ends right after its last newline (`\s*[\r\n]+`).
// Llama 3's `llama-bpe` is the same regex with `\p{N}{1,3}`: digits in runs of up to three ("12345" →
// "123", "45"), scanned here with `digits: 3`.
import GGUF

/// The `qwen2` split of text into pieces.
public enum Qwen2PreTokenizer {
    /// The pieces of `text`, in order; concatenated they give `text` back.
    public static func pieces(_ text: String) -> [String] { PreTokenizer.qwen2.pieces(text) }

    /// Appends the pieces of `scalars[range]` to `pieces` as index ranges.
    /// `digits`: the longest run of \p{N} one piece takes (1: qwen2, 3: llama3).
    static func split(_ scalars: [Unicode.Scalar], _ classes: [ScalarClass], _ range: Range<Int>, digits: Int,
                      into pieces: inout [Range<Int>]) {
        let end = range.upperBound
        var i = range.lowerBound
        func isNewline(_ k: Int) -> Bool { scalars[k] == "\r" || scalars[k] == "\n" }
        while i < end {
            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if scalars[i] == "'", let length = contractionLength(scalars, i, end) {
                pieces.append(i..<(i + length))
                i += length
                continue
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !isNewline(i), classes[i] != .number,
               classes[i] == .letter || (i + 1 < end && classes[i + 1] == .letter) {
                var j = i + 1
                while j < end, classes[j] == .letter { j += 1 }
                pieces.append(i..<j)
                i = j
                continue
            }
            // \p{N} (qwen2) or \p{N}{1,3} (llama3)
            if classes[i] == .number {
                var j = i + 1
                while j < end, j - i < digits, classes[j] == .number { j += 1 }
                pieces.append(i..<j)
                i = j
                continue
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let first = scalars[i] == " " && i + 1 < end ? i + 1 : i
            if classes[first] == .other {
                var j = first + 1
                while j < end, classes[j] == .other { j += 1 }
                while j < end, isNewline(j) { j += 1 }
                pieces.append(i..<j)
                i = j
                continue
            }
            // `\s*[\r\n]+`, then `\s+(?!\S)`, then `\s+`: here scalars[i] is whitespace.
            var j = i
            var afterLastNewline = -1
            while j < end, classes[j] == .whitespace {
                if isNewline(j) { afterLastNewline = j + 1 }
                j += 1
            }
            if afterLastNewline > 0 {
                j = afterLastNewline
            } else if j < end, j - i > 1 {
                j -= 1  // leave the last whitespace scalar to the word or symbol that follows
            }
            pieces.append(i..<j)
            i = j
        }
    }

    /// 's 't 'm 'd 're 've 'll in any ASCII case.
    private static func contractionLength(_ scalars: [Unicode.Scalar], _ i: Int, _ end: Int) -> Int? {
        func lower(_ k: Int) -> UInt32 {
            let value = scalars[k].value
            return (65...90).contains(value) ? value + 32 : value
        }
        guard i + 1 < end else { return nil }
        switch lower(i + 1) {
        case 0x73, 0x74, 0x6D, 0x64:  // s t m d
            return 2
        case 0x72, 0x76:  // r v
            return i + 2 < end && lower(i + 2) == 0x65 ? 3 : nil  // e
        case 0x6C:  // l
            return i + 2 < end && lower(i + 2) == 0x6C ? 3 : nil  // l
        default:
            return nil
        }
    }
}
