// Byte-level BPE (GPT-2 family; SmolLM2's `tokenizer.ggml.model = gpt2`, `pre = smollm`).
// Encoding: split out literal special tokens, pre-tokenize the text between them (`SmolLMPreTokenizer`),
// then run BPE on the UTF-8 bytes of each piece. BPE works on token ids, not strings: byte b starts as
// the id of the vocabulary token spelling `ByteLevel.scalars[b]`, and a merge maps an id pair to
// (rank, merged id). Results are cached per piece because natural text repeats its words.

import GGUF
import Foundation

/// A byte-level BPE tokenizer built from a GGUF-style vocabulary.
///
/// **Merge order.** Within a piece, the adjacent pair whose merge has the lowest rank (its line index in
/// `merges`) is merged first; when that pair occurs several times, the leftmost occurrence goes first.
/// This repeats until no adjacent pair has a merge. It is the order of HF tokenizers' `BPE` model and of
/// llama.cpp's `llm_tokenizer_bpe`, and equals GPT-2's original "merge every occurrence of the best
/// bigram left to right". A binary heap keeps it O(n log n) in the piece length n.
///
/// **Special tokens.** Tokens of type 3 (control) and 4 (user-defined) written literally in the text
/// become their ids (at each position the longest such token wins); the text between them is tokenized
/// normally. They decode to their own text. Nothing (no BOS) is added.
///
/// **Strictness.** Construction throws `TokenizerError` for a token/type count mismatch, a merge that is
/// not "a b", a merge whose parts or result are not in the vocabulary (such a merge could never fire
/// in a byte-level BPE and signals a corrupt file; HF tokenizers rejects it too), or special ids outside
/// the vocabulary. Duplicate token strings keep their first id. Encoding never fails: a byte whose
/// byte-level token is missing becomes `unknownID`, or is dropped when there is none. Decoding skips
/// ids outside the vocabulary.
///
/// **Threads.** Immutable after construction except for the piece cache, which an `NSLock` guards, so
/// one instance can be shared across threads. The cache is cleared when it reaches `cacheLimit` pieces.
public final class BPETokenizer: Tokenizer, @unchecked Sendable {
    public let bosID: Int32?
    public let eosID: Int32?
    public let unknownID: Int32?

    /// Vocabulary strings, byte-level encoded (GGUF `tokenizer.ggml.tokens`).
    public let tokens: [String]
    /// GGUF / llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    public let tokenTypes: [Int32]

    public var vocabularySize: Int { tokens.count }

    /// The id of the vocabulary token spelled exactly `token` (byte-level form for normal tokens).
    public func id(of token: String) -> Int32? { idOfToken[token] }

    private struct Merge {
        var rank: Int32
        var merged: Int32
    }

    private let idOfToken: [String: Int32]
    /// `byteIDs[b]`: the id of the token spelling byte b, or -1.
    private let byteIDs: [Int32]
    /// Keyed by `pairKey(left, right)`.
    private let merges: [UInt64: Merge]
    /// `pieceBytes[id]`: the bytes token `id` stands for.
    private let pieceBytes: [[UInt8]]
    /// Special tokens by first scalar, longest first.
    private let specials: [Unicode.Scalar: [(scalars: [Unicode.Scalar], id: Int32)]]
    /// `mayStartSpecial[v]`: some special token starts with scalar v (v < 128); or, at index 128, with
    /// some non-ASCII scalar. Skips a dictionary lookup per scalar (measured: ~10% of encoding time).
    private let mayStartSpecial: [Bool]

    private let cacheLock = NSLock()
    private var cache: [PieceKey: [Int32]] = [:]
    private let cacheLimit = 1 << 17

    private static let controlType: Int32 = 3
    private static let userDefinedType: Int32 = 4

    public init(tokens: [String], merges: [String], tokenTypes: [Int32],
                bosID: Int32?, eosID: Int32?, unknownID: Int32?) throws {
        guard !tokens.isEmpty else { throw TokenizerError.emptyVocabulary }
        guard tokens.count == tokenTypes.count else {
            throw TokenizerError.tokenTypeCountMismatch(tokens: tokens.count, tokenTypes: tokenTypes.count)
        }
        for (role, id) in [("bos", bosID), ("eos", eosID), ("unknown", unknownID)] {
            if let id, id < 0 || Int(id) >= tokens.count {
                throw TokenizerError.specialTokenOutOfRange(role: role, id: Int(id), vocabularySize: tokens.count)
            }
        }
        self.tokens = tokens
        self.tokenTypes = tokenTypes
        self.bosID = bosID
        self.eosID = eosID
        self.unknownID = unknownID

        var idOfToken: [String: Int32] = [:]
        idOfToken.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where idOfToken[token] == nil {
            idOfToken[token] = Int32(id)
        }
        self.idOfToken = idOfToken
        byteIDs = ByteLevel.scalars.map { idOfToken[String($0)] ?? -1 }
        self.merges = try Self.mergeTable(merges, idOfToken)

        var specials: [Unicode.Scalar: [(scalars: [Unicode.Scalar], id: Int32)]] = [:]
        var pieceBytes: [[UInt8]] = []
        pieceBytes.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() {
            let special = tokenTypes[id] == Self.controlType || tokenTypes[id] == Self.userDefinedType
            pieceBytes.append(special ? Array(token.utf8) : ByteLevel.decode(token))
            if special, let first = token.unicodeScalars.first {
                specials[first, default: []].append((Array(token.unicodeScalars), Int32(id)))
            }
        }
        self.specials = specials.mapValues { $0.sorted { $0.scalars.count > $1.scalars.count } }
        var mayStartSpecial = [Bool](repeating: false, count: 129)
        for first in specials.keys { mayStartSpecial[min(Int(first.value), 128)] = true }
        self.mayStartSpecial = mayStartSpecial
        self.pieceBytes = pieceBytes
    }

    /// Parses "left right" merge lines into the id-pair table; rank = line index, first line wins.
    private static func mergeTable(_ lines: [String], _ idOfToken: [String: Int32]) throws -> [UInt64: Merge] {
        var table: [UInt64: Merge] = [:]
        table.reserveCapacity(lines.count)
        for (index, line) in lines.enumerated() {
            // Byte-level tokens never contain U+0020, so the first space (after the first scalar, as in
            // llama.cpp) separates the two parts.
            let scalars = line.unicodeScalars
            guard let space = scalars.dropFirst().firstIndex(of: " ") else {
                throw TokenizerError.malformedMerge(index: index, merge: line)
            }
            let left = String(scalars[..<space])
            let right = String(scalars[scalars.index(after: space)...])
            guard !right.isEmpty else { throw TokenizerError.malformedMerge(index: index, merge: line) }
            var ids: [Int32] = []
            for part in [left, right, left + right] {
                guard let id = idOfToken[part] else {
                    throw TokenizerError.mergeOutOfVocabulary(index: index, merge: line, missing: part)
                }
                ids.append(id)
            }
            let key = pairKey(ids[0], ids[1])
            if table[key] == nil { table[key] = Merge(rank: Int32(index), merged: ids[2]) }
        }
        return table
    }

    @inline(__always)
    private static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    // MARK: Encoding

    public func encode(_ text: String) -> [Int32] {
        let utf8 = Array(text.utf8)
        var scalars: [Unicode.Scalar] = []
        var offsets: [Int] = []  // offsets[i]: UTF-8 offset of scalars[i]; one extra at the end
        scalars.reserveCapacity(utf8.count)
        offsets.reserveCapacity(utf8.count + 1)
        var offset = 0
        for scalar in text.unicodeScalars {
            scalars.append(scalar)
            offsets.append(offset)
            offset += UTF8.width(scalar)
        }
        offsets.append(offset)
        let classes = scalars.map(ScalarClass.init)

        var ids: [Int32] = []
        ids.reserveCapacity(utf8.count / 3 + 1)
        var pieces: [Range<Int>] = []
        var start = 0
        var i = 0
        while i < scalars.count {
            guard let (id, length) = special(at: i, in: scalars) else {
                i += 1
                continue
            }
            encodeOrdinary(start..<i, scalars, classes, offsets, utf8, &pieces, &ids)
            ids.append(id)
            i += length
            start = i
        }
        encodeOrdinary(start..<scalars.count, scalars, classes, offsets, utf8, &pieces, &ids)
        return ids
    }

    /// The longest special token spelled at `scalars[i...]`.
    private func special(at i: Int, in scalars: [Unicode.Scalar]) -> (Int32, Int)? {
        guard mayStartSpecial[min(Int(scalars[i].value), 128)], let candidates = specials[scalars[i]]
        else { return nil }
        for candidate in candidates where i + candidate.scalars.count <= scalars.count {
            if scalars[i..<(i + candidate.scalars.count)].elementsEqual(candidate.scalars) {
                return (candidate.id, candidate.scalars.count)
            }
        }
        return nil
    }

    private func encodeOrdinary(_ range: Range<Int>, _ scalars: [Unicode.Scalar], _ classes: [ScalarClass],
                                _ offsets: [Int], _ utf8: [UInt8],
                                _ pieces: inout [Range<Int>], _ ids: inout [Int32]) {
        guard !range.isEmpty else { return }
        pieces.removeAll(keepingCapacity: true)
        SmolLMPreTokenizer.split(scalars, classes, range, into: &pieces)
        for piece in pieces {
            let bytes = utf8[offsets[piece.lowerBound]..<offsets[piece.upperBound]]
            if bytes.count == 1 {
                appendByte(bytes[bytes.startIndex], to: &ids)
                continue
            }
            let key = PieceKey(bytes: Array(bytes))
            cacheLock.lock()
            let cached = cache[key]
            cacheLock.unlock()
            if let cached {
                ids.append(contentsOf: cached)
                continue
            }
            let merged = bpe(key.bytes)
            cacheLock.lock()
            if cache.count >= cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[key] = merged
            cacheLock.unlock()
            ids.append(contentsOf: merged)
        }
    }

    @inline(__always)
    private func appendByte(_ byte: UInt8, to ids: inout [Int32]) {
        let id = byteIDs[Int(byte)]
        if id >= 0 {
            ids.append(id)
        } else if let unknownID {
            ids.append(unknownID)
        }
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
        var heap = MinHeap()
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

    // MARK: Decoding

    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        for id in ids { bytes.append(contentsOf: decodePiece(id)) }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func decodePiece(_ id: Int32) -> [UInt8] {
        guard id >= 0, Int(id) < pieceBytes.count else { return [] }
        return pieceBytes[Int(id)]
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

/// A binary min-heap of UInt64, just enough for BPE's merge queue.
private struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ item: UInt64) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < items.count else { break }
            let right = left + 1
            let child = right < items.count && items[right] < items[left] ? right : left
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            parent = child
        }
        return top
    }
}
