// Byte-level BPE (GPT-2 family; GGUF `tokenizer.ggml.model = gpt2`: SmolLM2, Qwen2.5), the encoder
// behind `BPETokenizer` for those files. The text between special tokens is pre-tokenized (`PreTokenizer`)
// and BPE runs on the UTF-8 bytes of each piece. BPE works on token ids, not strings: byte b starts as
// the id of the vocabulary token spelling `ByteLevel.scalars[b]`, and a merge maps an id pair to
// (rank, merged id). Results are cached per piece because natural text repeats its words.
//
// Merge order: within a piece, the adjacent pair whose merge has the lowest rank (its line index in
// `merges`) is merged first; when that pair occurs several times, the leftmost occurrence goes first.
// This repeats until no adjacent pair has a merge. It is the order of HF tokenizers' `BPE` model and of
// llama.cpp's `llm_tokenizer_bpe`, and equals GPT-2's original "merge every occurrence of the best
// bigram left to right". A binary heap keeps it O(n log n) in the piece length n.
import Foundation

/// The byte-level BPE encoder: merge table, byte ids, pre-tokenizer and piece cache.
///
/// Immutable after construction except for the piece cache, which an `NSLock` guards, so one instance
/// can be shared across threads. The cache is cleared when it reaches `cacheLimit` pieces.
final class ByteLevelBPE: @unchecked Sendable {
    private struct Merge {
        var rank: Int32
        var merged: Int32
    }

    let preTokenizer: PreTokenizer
    private let unknownID: Int32?
    /// `byteIDs[b]`: the id of the token spelling byte b, or -1.
    private let byteIDs: [Int32]
    /// Keyed by `pairKey(left, right)`.
    private let merges: [UInt64: Merge]
    /// The vocabulary, where the pre-tokenizer takes whole pieces (`PreTokenizer.takesWholePieces`).
    private let wholePieces: VocabularyIndex?

    private let cacheLock = NSLock()
    private var cache: [PieceKey: [Int32]] = [:]
    private let cacheLimit = 1 << 17

    /// Throws `TokenizerError` for a merge that is not "a b" or whose parts or result are not in the
    /// vocabulary (such a merge could never fire in a byte-level BPE and signals a corrupt file; HF
    /// tokenizers rejects it too).
    init(index: VocabularyIndex, merges lines: [String], preTokenizer: PreTokenizer, unknownID: Int32?) throws {
        self.preTokenizer = preTokenizer
        self.unknownID = unknownID
        byteIDs = ByteLevel.scalars.map { index.id(String($0)) ?? -1 }
        merges = try Self.mergeTable(lines, index)
        wholePieces = preTokenizer.takesWholePieces ? index : nil
    }

    /// Parses "left right" merge lines into the id-pair table; rank = line index, first line wins.
    private static func mergeTable(_ lines: [String], _ index: VocabularyIndex) throws -> [UInt64: Merge] {
        var table: [UInt64: Merge] = [:]
        table.reserveCapacity(lines.count)
        var joined: [UInt8] = []
        for (lineIndex, line) in lines.enumerated() {
            var line = line
            let ids = line.withUTF8 { bytes -> Result<(Int32, Int32, Int32), TokenizerError> in
                // Byte-level tokens never contain U+0020, so the first space after the first scalar (as
                // in llama.cpp) separates the two parts.
                let firstWidth = bytes.isEmpty ? 0 : Self.utf8Width(lead: bytes[0])
                guard let space = bytes.indices.first(where: { $0 >= firstWidth && bytes[$0] == 0x20 }),
                      space > 0, space + 1 < bytes.count else {
                    return .failure(.malformedMerge(index: lineIndex, merge: String(decoding: bytes, as: UTF8.self)))
                }
                let left = UnsafeBufferPointer(rebasing: bytes[..<space])
                let right = UnsafeBufferPointer(rebasing: bytes[(space + 1)...])
                func missing(_ part: [UInt8]) -> Result<(Int32, Int32, Int32), TokenizerError> {
                    .failure(.mergeOutOfVocabulary(index: lineIndex, merge: String(decoding: bytes, as: UTF8.self),
                                                   missing: String(decoding: part, as: UTF8.self)))
                }
                guard let leftID = index.id(left) else { return missing(Array(left)) }
                guard let rightID = index.id(right) else { return missing(Array(right)) }
                joined.removeAll(keepingCapacity: true)
                joined.append(contentsOf: left)
                joined.append(contentsOf: right)
                guard let mergedID = index.id(joined) else { return missing(joined) }
                return .success((leftID, rightID, mergedID))
            }
            let (left, right, merged) = try ids.get()
            let key = pairKey(left, right)
            if table[key] == nil { table[key] = Merge(rank: Int32(lineIndex), merged: merged) }
        }
        return table
    }

    private static func utf8Width(lead: UInt8) -> Int {
        lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
    }

    @inline(__always)
    private static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    // MARK: Encoding

    /// Appends the ids of `input`, split into `fragments`, to `ids`.
    func encode(_ input: TokenizerInput, _ fragments: [TextFragment], into ids: inout [Int32]) {
        let classes = input.scalars.map(ScalarClass.init)
        var pieces: [Range<Int>] = []
        for fragment in fragments {
            switch fragment {
            case .token(let id):
                ids.append(id)
            case .text(let range):
                pieces.removeAll(keepingCapacity: true)
                preTokenizer.split(input.scalars, classes, range, into: &pieces)
                for piece in pieces { encodePiece(input.bytes(piece), into: &ids) }
            }
        }
    }

    private func encodePiece(_ bytes: ArraySlice<UInt8>, into ids: inout [Int32]) {
        if bytes.count == 1 {
            appendByte(bytes[bytes.startIndex], to: &ids)
            return
        }
        let key = PieceKey(bytes: Array(bytes))
        cacheLock.lock()
        let cached = cache[key]
        cacheLock.unlock()
        if let cached {
            ids.append(contentsOf: cached)
            return
        }
        let merged = wholePiece(key.bytes) ?? bpe(key.bytes)
        cacheLock.lock()
        if cache.count >= cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[key] = merged
        cacheLock.unlock()
        ids.append(contentsOf: merged)
    }

    /// The token spelling the whole piece, where whole pieces are taken and the vocabulary has one.
    private func wholePiece(_ bytes: [UInt8]) -> [Int32]? {
        guard let index = wholePieces else { return nil }
        let spelled = Array(ByteLevel.encode(bytes).utf8)
        return spelled.withUnsafeBufferPointer { index.id($0) }.map { [$0] }
    }

    /// A byte whose byte-level token is missing becomes `unknownID`, or is dropped when there is none.
    @inline(__always)
    private func appendByte(_ byte: UInt8, to ids: inout [Int32]) {
        appendByteToken(byte, byteIDs: byteIDs, unknownID: unknownID, to: &ids)
    }

    /// BPE over one piece's bytes, lowest rank first, leftmost first among equal ranks.
    private func bpe(_ bytes: [UInt8]) -> [Int32] {
        let n = bytes.count
        guard n >= 2 else {
            var ids: [Int32] = []
            for byte in bytes { appendByte(byte, to: &ids) }
            return ids
        }
        var symbols = bytes.map { byteIDs[Int($0)] }
        var next = Array(1...n)            // n = none
        var previous = Array(-1..<(n - 1)) // -1 = none
        var alive = [Bool](repeating: true, count: n)
        // Candidate merges as rank << 32 | left position; stale ones are skipped when popped.
        var heap = MinHeap<UInt64>(capacity: n)
        func push(_ left: Int) {
            guard left >= 0, next[left] < n,
                  let merge = merges[Self.pairKey(symbols[left], symbols[next[left]])] else { return }
            heap.push(UInt64(UInt32(merge.rank)) << 32 | UInt64(left))
        }
        for position in 0..<(n - 1) { push(position) }
        while let top = heap.pop() {
            let rank = Int32(truncatingIfNeeded: top >> 32)
            let left = Int(top & 0xFFFF_FFFF)
            let right = next[left]
            // The rank identifies the pair, so a matching rank means the entry is still current.
            guard alive[left], right < n,
                  let merge = merges[Self.pairKey(symbols[left], symbols[right])], merge.rank == rank
            else { continue }
            symbols[left] = merge.merged
            alive[right] = false
            next[left] = next[right]
            if next[right] < n { previous[next[right]] = left }
            if previous[left] >= 0 { push(previous[left]) }
            push(left)
        }
        var ids: [Int32] = []
        ids.reserveCapacity(n)
        var position = 0
        while position < n {
            if symbols[position] >= 0 {
                ids.append(symbols[position])
            } else if let unknownID {
                ids.append(unknownID)
            }
            position = next[position]
        }
        return ids
    }
}

/// A cache key compared byte for byte. `String` keys would not do: Swift compares strings by canonical
/// equivalence, so "é" and "e\u{301}" would share an entry although their bytes tokenize differently.
private struct PieceKey: Hashable {
    let bytes: [UInt8]

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
