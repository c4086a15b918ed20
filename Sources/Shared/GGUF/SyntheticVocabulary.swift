// The synthetic model's byte-level BPE vocabulary, laid out like SmolLM2's: control tokens first
// (0 `<|endoftext|>` = unk, 1 `<|im_start|>` = bos, 2 `<|im_end|>` = eos), then the 256 byte tokens in
// GPT-2's `bytes_to_unicode` order, then one token per merge in rank order. Derived here independently
// of the tokenizer's own byte mapping, so tokenizer tests on this model cross-check it.
import Support

public enum SyntheticVocabulary {
    public static let controlTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

    /// GPT-2's printable stand-ins for the 256 bytes, in vocabulary order: bytes that are printable
    /// Latin-1 map to themselves, the other 68 to U+0100 onward in byte order (so space is "Ġ").
    public static let byteTokens: [String] = {
        let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        let printableSet = Set(printable)
        let others = (0..<256).filter { !printableSet.contains($0) }
        let scalars = printable.map { Unicode.Scalar(UInt8($0)) }
            + others.indices.compactMap { Unicode.Scalar(UInt32(256 + $0)) }
        return scalars.map { String(Character($0)) }
    }()

    /// Merges in rank order ("left right"); enough to spell a few words of the test prompts
    /// (" the", " of", " is", " capital", " Paris", " Fran…") in fewer tokens than bytes.
    public static let merges: [String] = [
        "Ġ t", "h e", "Ġ a", "i n", "Ġt he", "e r", "o n", "Ġ s", "r e", "a t",
        "e n", "Ġ c", "o r", "Ġ o", "i s", "Ġ w", "e s", "Ġ p", "a n", "Ġ f",
        "Ġ b", "i t", "a l", "Ġ m", "a r", "Ġ i", "e d", "Ġo f", "Ġ d", "Ġ in",
        "Ġ is", "Ġ P", "Ġ F", "a p", "Ġc ap", "Ġcap it", "Ġcapit al", "ĠP ar", "ĠPar is", "ĠF r",
        "ĠFr an",
    ]

    /// Control, byte and merged tokens: 3 + 256 + 41 = 300.
    public static let tokens: [String] =
        controlTokens + byteTokens + merges.map { $0.split(separator: " ").joined() }

    public static let tokenTypes: [GGUFNames.TokenType] =
        tokens.indices.map { $0 < controlTokens.count ? .control : .normal }
}
