// The text being encoded, in the three views the encoders need: Unicode scalars (what the pre-tokenizer
// regexes and SentencePiece's "one symbol per character" work on), the UTF-8 bytes (what BPE merges and
// byte fallback work on), and the map between the two. Built once per `encode` call.

/// `text` as scalars and UTF-8 bytes; `offsets[i]` is the byte offset of `scalars[i]`, with one extra
/// entry (the byte count) at the end.
struct TokenizerInput {
    let scalars: [Unicode.Scalar]
    let offsets: [Int]
    let utf8: [UInt8]

    init(_ text: String) {
        let utf8 = Array(text.utf8)
        var scalars: [Unicode.Scalar] = []
        var offsets: [Int] = []
        scalars.reserveCapacity(utf8.count)
        offsets.reserveCapacity(utf8.count + 1)
        var offset = 0
        for scalar in text.unicodeScalars {
            scalars.append(scalar)
            offsets.append(offset)
            offset += UTF8.width(scalar)
        }
        offsets.append(offset)
        self.scalars = scalars
        self.offsets = offsets
        self.utf8 = utf8
    }

    /// The UTF-8 bytes of `scalars[range]`.
    func bytes(_ range: Range<Int>) -> ArraySlice<UInt8> {
        utf8[offsets[range.lowerBound]..<offsets[range.upperBound]]
    }
}

/// A stretch of the input: ordinary text for the model's algorithm, or a special token written
/// literally in the text.
enum TextFragment: Equatable {
    /// `scalars[range]` of the input.
    case text(Range<Int>)
    case token(Int32)
}
