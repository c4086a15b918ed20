// SentencePiece-style BPE (GGUF `tokenizer.ggml.model = llama`: Gemma 3, Llama 2, Mistral v0.1), the
// encoder behind `BPETokenizer` for those files. Reference behaviour: llama.cpp's `llm_tokenizer_spm`.
// For each stretch of text between special tokens:
//   1. every U+0020 becomes "▁" (U+2581); with `add_space_prefix` a "▁" is also put in front of the
//      stretch when it starts the text or follows a special token;
//   2. the stretch is split into one symbol per Unicode scalar;
//   3. repeatedly, the adjacent pair whose concatenation is a vocabulary token with the highest score is
//      merged (ties: the leftmost pair), until no adjacent pair concatenates to a token;
//   4. each symbol that is a token is emitted; any other (a character outside the vocabulary) is emitted
//      as the `<0xXX>` tokens of its UTF-8 bytes (byte fallback).
// There are no merge rules: any two symbols whose text is a token may merge, so candidates are looked
// up by text (`VocabularyIndex`) on the escaped bytes. Symbols live in a linked list over the stretch
// and candidates in a heap (stale ones skipped when popped), so a stretch of n scalars costs O(n log n).

/// The SentencePiece BPE encoder: scores, byte-fallback ids and the space-prefix rule.
final class SentencePieceBPE: Sendable {
    private let index: VocabularyIndex
    private let scores: [Float]
    /// `byteIDs[b]`: the token for byte b in byte fallback (`<0xXX>`, else the one-byte token spelling
    /// b), or -1.
    private let byteIDs: [Int32]
    private let unknownID: Int32?
    let addSpacePrefix: Bool

    /// "▁" (U+2581), SentencePiece's stand-in for a space, in UTF-8.
    static let spaceMarker: [UInt8] = [0xE2, 0x96, 0x81]

    init(index: VocabularyIndex, scores: [Float], unknownID: Int32?, addSpacePrefix: Bool) {
        self.index = index
        self.scores = scores
        self.unknownID = unknownID
        self.addSpacePrefix = addSpacePrefix
        byteIDs = (0..<256).map { byte in
            let hex = String(UInt8(byte), radix: 16, uppercase: true)
            if let id = index.id("<0x\(hex.count == 1 ? "0" : "")\(hex)>") { return id }
            return index.id([UInt8(byte)]) ?? -1
        }
    }

    // MARK: Encoding

    /// Appends the ids of `input`, split into `fragments`, to `ids`.
    func encode(_ input: TokenizerInput, _ fragments: [TextFragment], into ids: inout [Int32]) {
        var afterSpecial = true  // llama.cpp: the text start counts as "after a special token"
        for fragment in fragments {
            switch fragment {
            case .token(let id):
                ids.append(id)
                afterSpecial = true
            case .text(let range):
                encodeText(input, range, spacePrefix: addSpacePrefix && afterSpecial, into: &ids)
                afterSpecial = false
            }
        }
    }

    /// A merge candidate: `key` orders by score (highest first), then by left symbol (lowest first);
    /// `size` is the byte length of the pair when pushed, to recognise stale entries.
    private struct Bigram: Comparable {
        var key: UInt64
        var size: Int32
        var left: Int { Int(key & 0xFFFF_FFFF) }

        init(score: Float, left: Int, size: Int) {
            key = UInt64(~Self.orderable(score)) << 32 | UInt64(UInt32(left))
            self.size = Int32(size)
        }

        static func < (a: Bigram, b: Bigram) -> Bool { a.key < b.key }

        /// An unsigned integer with the order of the floats (−0 taken as +0).
        private static func orderable(_ score: Float) -> UInt32 {
            let bits = (score == 0 ? 0 : score).bitPattern
            return bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
        }
    }

    private func encodeText(_ input: TokenizerInput, _ range: Range<Int>, spacePrefix: Bool,
                            into ids: inout [Int32]) {
        // The escaped text and one symbol per scalar: symbol k is bytes[start[k] ..< start[k] + length[k]].
        var bytes: [UInt8] = []
        var start: [Int] = []
        var length: [Int] = []
        bytes.reserveCapacity(input.offsets[range.upperBound] - input.offsets[range.lowerBound] + 3)
        start.reserveCapacity(range.count + 1)
        length.reserveCapacity(range.count + 1)
        if spacePrefix {
            start.append(0)
            length.append(3)
            bytes.append(contentsOf: Self.spaceMarker)
        }
        for i in range {
            start.append(bytes.count)
            if input.scalars[i] == " " {
                bytes.append(contentsOf: Self.spaceMarker)
            } else {
                bytes.append(contentsOf: input.bytes(i..<(i + 1)))
            }
            length.append(bytes.count - start[start.count - 1])
        }
        let n = start.count
        guard n > 0 else { return }
        var previous = Array(-1..<(n - 1))  // -1 = none
        var next = Array(1...n)             // n = none

        bytes.withUnsafeBufferPointer { text in
            func token(_ from: Int, _ count: Int) -> Int32? {
                index.id(UnsafeBufferPointer(rebasing: text[from..<(from + count)]))
            }
            var heap = MinHeap<Bigram>(capacity: 2 * n)
            func consider(_ left: Int, _ right: Int) {
                guard left >= 0, right < n else { return }
                let size = length[left] + length[right]
                guard let id = token(start[left], size) else { return }
                heap.push(Bigram(score: scores[Int(id)], left: left, size: size))
            }
            for k in 1..<n { consider(k - 1, k) }
            while let bigram = heap.pop() {
                let left = bigram.left
                let right = next[left]
                // Stale unless both symbols are unchanged since the push (lengths only grow, and a
                // symbol merged into its left neighbour has length 0).
                guard length[left] > 0, right < n, length[left] + length[right] == Int(bigram.size)
                else { continue }
                length[left] += length[right]
                length[right] = 0
                next[left] = next[right]
                if next[right] < n { previous[next[right]] = left }
                consider(previous[left], left)
                consider(left, next[left])
            }
            var k = 0
            while k < n {
                if let id = token(start[k], length[k]) {
                    ids.append(id)
                } else {
                    for byte in text[start[k]..<(start[k] + length[k])] { appendByte(byte, to: &ids) }
                }
                k = next[k]
            }
        }
    }

    /// Byte fallback for one byte: its `<0xXX>` token, else `unknownID`, else nothing.
    @inline(__always)
    private func appendByte(_ byte: UInt8, to ids: inout [Int32]) {
        appendByteToken(byte, byteIDs: byteIDs, unknownID: unknownID, to: &ids)
    }
}
