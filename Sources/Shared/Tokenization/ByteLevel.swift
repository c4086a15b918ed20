// GPT-2's byte-level alphabet: every byte 0...255 is shown as one printable Unicode scalar, so that
// byte-level BPE vocabularies can be stored as ordinary strings. Printable Latin-1 bytes stand for
// themselves; the other 68 bytes (controls, space, 0x7F–0xA0, 0xAD) are moved, in byte order, to
// U+0100… (space becomes "Ġ" U+0120, newline "Ċ" U+010A). Same table as `bytes_to_unicode()` in GPT-2's
// `encoder.py`, HF tokenizers' ByteLevel and llama.cpp's `unicode_byte_to_utf8`.
import GGUF

/// The GPT-2 byte ↔ scalar table.
public enum ByteLevel {
    /// `scalars[b]` is the scalar that stands for byte `b`.
    public static let scalars: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte)
                || (0xAE...0xFF).contains(byte)
            let value = printable ? UInt32(byte) : next
            if !printable { next += 1 }
            // Every value here is below U+0144, a valid scalar.
            table[byte] = Unicode.Scalar(value) ?? " "
        }
        return table
    }()

    /// Inverse of `scalars`: the byte a scalar stands for, or nil for scalars outside the alphabet.
    public static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let value = scalar.value
        guard value < UInt32(inverse.count) else { return nil }
        let byte = inverse[Int(value)]
        return byte < 0 ? nil : UInt8(byte)
    }

    /// The byte-level spelling of `bytes` (what a vocabulary stores).
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var view = String.UnicodeScalarView()
        for byte in bytes { view.append(scalars[Int(byte)]) }
        return String(view)
    }

    /// The bytes a byte-level string spells; scalars outside the alphabet contribute their own UTF-8
    /// (vocabularies store added tokens such as `<|im_start|>` unencoded).
    public static func decode(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            if let byte = byte(for: scalar) {
                bytes.append(byte)
            } else {
                bytes.append(contentsOf: String(scalar).utf8)
            }
        }
        return bytes
    }

    /// Indexed by scalar value (all table scalars are below 0x144); -1 where no byte maps there.
    private static let inverse: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (byte, scalar) in scalars.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()
}
