// Token text → id, compared byte for byte. One open-addressing table over a single byte pool instead of
// a `[String: Int32]`: Swift hashes and compares strings by canonical equivalence (so "é" and "e\u{301}"
// would be one key, although they are different tokens), which is also slow on the 262,144 mostly
// non-ASCII tokens of a SentencePiece vocabulary. Here building is one pass over the UTF-8 bytes, and a
// lookup hashes a byte slice of the text being tokenized without allocating: SentencePiece merging asks
// "is this substring a token?" for every candidate pair.

/// An immutable map from exact UTF-8 token text to the first id that spells it.
struct VocabularyIndex: Sendable {
    /// All token texts back to back; token `id` is `pool[starts[id]..<starts[id + 1]]`.
    private let pool: [UInt8]
    private let starts: [Int32]
    /// Open addressing with linear probing: `tag << 32 | id`, where the tag is the high half of the
    /// text's hash (most probes that miss are settled without reading the pool), or `empty`.
    private let slots: [UInt64]
    private let mask: Int

    init(_ tokens: [String]) {
        var pool: [UInt8] = []
        var starts: [Int32] = []
        pool.reserveCapacity(tokens.count * 8)
        starts.reserveCapacity(tokens.count + 1)
        for token in tokens {
            starts.append(Int32(pool.count))
            pool.append(contentsOf: token.utf8)
        }
        starts.append(Int32(pool.count))

        var capacity = 16
        while capacity < tokens.count * 2 { capacity <<= 1 }
        var slots = [UInt64](repeating: Self.empty, count: capacity)
        let mask = capacity - 1
        pool.withUnsafeBufferPointer { bytes in
            for id in 0..<tokens.count {
                let text = UnsafeBufferPointer(rebasing: bytes[Int(starts[id])..<Int(starts[id + 1])])
                let hash = Self.hash(text)
                var slot = Int(truncatingIfNeeded: hash) & mask
                var duplicate = false
                while slots[slot] != Self.empty {
                    let other = Int(slots[slot] & 0xFFFF_FFFF)
                    if slots[slot] >> 32 == hash >> 32,
                       Self.equal(text, bytes, Int(starts[other]), Int(starts[other + 1])) {
                        duplicate = true  // the first id keeps the text
                        break
                    }
                    slot = (slot + 1) & mask
                }
                if !duplicate { slots[slot] = hash & 0xFFFF_FFFF_0000_0000 | UInt64(id) }
            }
        }
        self.pool = pool
        self.starts = starts
        self.slots = slots
        self.mask = mask
    }

    private static let empty = UInt64.max

    /// The id of the token spelled exactly `text`.
    func id(_ text: UnsafeBufferPointer<UInt8>) -> Int32? {
        let hash = Self.hash(text)
        let tag = hash >> 32
        var slot = Int(truncatingIfNeeded: hash) & mask
        return pool.withUnsafeBufferPointer { bytes in
            while true {
                let entry = slots[slot]
                guard entry != Self.empty else { return nil }
                if entry >> 32 == tag {
                    let id = Int(entry & 0xFFFF_FFFF)
                    if Self.equal(text, bytes, Int(starts[id]), Int(starts[id + 1])) { return Int32(id) }
                }
                slot = (slot + 1) & mask
            }
        }
    }

    func id(_ text: String) -> Int32? {
        var text = text
        return text.withUTF8 { id($0) }
    }

    func id(_ bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBufferPointer { id($0) }
    }

    /// Whether `text` equals `pool[start..<end]`.
    @inline(__always)
    private static func equal(_ text: UnsafeBufferPointer<UInt8>, _ pool: UnsafeBufferPointer<UInt8>,
                              _ start: Int, _ end: Int) -> Bool {
        guard end - start == text.count else { return false }
        for k in 0..<text.count where text[k] != pool[start + k] { return false }
        return true
    }

    /// FNV-1a (64-bit), then a multiply-xorshift finish so that both halves depend on every byte (the
    /// low half picks the slot, the high half is the tag).
    @inline(__always)
    private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        h ^= h >> 32
        h = h &* 0xD6E8_FEB8_6659_FD93
        return h ^ (h >> 32)
    }
}

/// One byte as a token, shared by both algorithms: its byte token (`byteIDs[byte]`, −1 when the
/// vocabulary has none), else `unknownID`, else nothing.
@inline(__always)
func appendByteToken(_ byte: UInt8, byteIDs: [Int32], unknownID: Int32?, to ids: inout [Int32]) {
    let id = byteIDs[Int(byte)]
    if id >= 0 {
        ids.append(id)
    } else if let unknownID {
        ids.append(unknownID)
    }
}
