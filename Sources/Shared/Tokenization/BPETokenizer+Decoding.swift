// Token ids back to text. Each token's bytes are computed once at load into one flat table (262,144
// small arrays would cost more to build than the whole vocabulary index):
//   - byte-level: the GPT-2 alphabet decoded back to bytes ("Ġ" → 0x20);
//   - SentencePiece: "▁" → space for ordinary tokens, `<0xXX>` → that byte for byte tokens;
//   - both: unknown, control and user-defined tokens → their own text (as llama.cpp prints
//     user-defined tokens; control tokens such as `<bos>` are shown rather than hidden, so that a decoded
//     prompt shows what the model saw).
// With SentencePiece's `add_space_prefix`, `decode` drops the space that encoding put in front of the
// text and after each special token, so decode(encode(text)) == text; `decodePiece` is the raw piece.

extension BPETokenizer {
    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        let stripsPrefix = algorithm == .sentencePiece(addSpacePrefix: true)
        var afterSpecial = true
        for id in ids where id >= 0 && Int(id) < vocabularySize {
            let piece = pieces[Int(id)]
            if SpecialTokenSplitter.matchedTypes.contains(tokenTypes[Int(id)]) {
                afterSpecial = true
                bytes.append(contentsOf: piece)
                continue
            }
            if stripsPrefix, afterSpecial, piece.first == 0x20 {
                bytes.append(contentsOf: piece.dropFirst())
            } else {
                bytes.append(contentsOf: piece)
            }
            afterSpecial = false
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func decodePiece(_ id: Int32) -> [UInt8] {
        guard id >= 0, Int(id) < vocabularySize else { return [] }
        return Array(pieces[Int(id)])
    }
}

/// The bytes of every token, back to back: token `id` is `pool[starts[id]..<starts[id + 1]]`.
struct PieceTable: Sendable {
    private let pool: [UInt8]
    private let starts: [Int32]

    private init(count: Int, _ bytesOf: (Int, inout [UInt8]) -> Void) {
        var pool: [UInt8] = []
        var starts: [Int32] = []
        pool.reserveCapacity(count * 8)
        starts.reserveCapacity(count + 1)
        for id in 0..<count {
            starts.append(Int32(pool.count))
            bytesOf(id, &pool)
        }
        starts.append(Int32(pool.count))
        self.pool = pool
        self.starts = starts
    }

    subscript(id: Int) -> ArraySlice<UInt8> { pool[Int(starts[id])..<Int(starts[id + 1])] }

    static func isSpecial(_ type: Int32) -> Bool { SpecialTokenSplitter.matchedTypes.contains(type) }

    /// Byte-level: special tokens are stored unencoded (`<|im_start|>`), the rest in the GPT-2 alphabet.
    static func byteLevel(tokens: [String], tokenTypes: [Int32]) -> PieceTable {
        PieceTable(count: tokens.count) { id, pool in
            if isSpecial(tokenTypes[id]) {
                pool.append(contentsOf: tokens[id].utf8)
            } else {
                pool.append(contentsOf: ByteLevel.decode(tokens[id]))
            }
        }
    }

    /// SentencePiece: byte tokens are `<0xXX>`, ordinary tokens spell spaces as "▁".
    static func sentencePiece(tokens: [String], tokenTypes: [Int32]) -> PieceTable {
        let byteType: Int32 = 6
        return PieceTable(count: tokens.count) { id, pool in
            let type = tokenTypes[id]
            if type == byteType, let byte = byteValue(tokens[id]) {
                pool.append(byte)
            } else if isSpecial(type) {
                pool.append(contentsOf: tokens[id].utf8)
            } else {
                appendUnescaped(tokens[id], to: &pool)
            }
        }
    }

    /// The byte of a `<0xXX>` token.
    private static func byteValue(_ token: String) -> UInt8? {
        let utf8 = Array(token.utf8)
        guard utf8.count == 6, utf8[0] == UInt8(ascii: "<"), utf8[1] == UInt8(ascii: "0"),
              utf8[2] == UInt8(ascii: "x"), utf8[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: utf8[3...4], as: UTF8.self), radix: 16)
    }

    /// `token`'s UTF-8 with each "▁" (E2 96 81) replaced by a space.
    private static func appendUnescaped(_ token: String, to pool: inout [UInt8]) {
        var token = token
        token.withUTF8 { utf8 in
            var i = 0
            while i < utf8.count {
                if utf8[i] == 0xE2, i + 2 < utf8.count, utf8[i + 1] == 0x96, utf8[i + 2] == 0x81 {
                    pool.append(0x20)
                    i += 3
                } else {
                    pool.append(utf8[i])
                    i += 1
                }
            }
        }
    }
}
