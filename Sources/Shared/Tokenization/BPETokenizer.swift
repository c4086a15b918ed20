// The tokenizer of a GGUF model, whichever of the two BPE families its file uses:
//   - byte-level BPE (`tokenizer.ggml.model = gpt2`: SmolLM2, Qwen2.5): ranked merges over UTF-8 bytes
//     after a regex pre-tokenizer (`ByteLevelBPE`, `PreTokenizer`);
//   - SentencePiece BPE (`tokenizer.ggml.model = llama`: Gemma 3): score-ordered merges over characters,
//     "▁" for spaces, `<0xXX>` byte fallback (`SentencePieceBPE`).
// One public type for both, so the rest of the toolkit holds a `BPETokenizer` whatever the model; the
// file's kind is chosen when loading (`init(gguf:)`). This type owns what the two share: the vocabulary,
// literal special tokens in the text (`SpecialTokenSplitter`), BOS/EOS and decoding (+Decoding).

import GGUF

/// A BPE tokenizer built from a GGUF-style vocabulary: byte-level (GPT-2 family) or SentencePiece.
///
/// **Special tokens.** Tokens of type 2 (unknown), 3 (control) and 4 (user-defined) written literally in
/// the text become their ids, longest first as in llama.cpp; the text between them goes to the model's
/// algorithm. They decode to their own text. `encode` adds no BOS/EOS; `encode(_:addSpecial:)` adds them
/// as the file asks (`addsBOS`, `addsEOS`), which is what the model expects at the start of a sequence.
///
/// **Strictness.** Construction throws `TokenizerError` for an empty vocabulary, a token/type (or
/// token/score) count mismatch, special ids outside the vocabulary, and (byte-level) merges that are
/// not "a b" or name a part or result the vocabulary lacks. Duplicate token strings keep their first
/// id. Encoding never fails: a byte with no token becomes `unknownID`, or is dropped when there is none.
/// Decoding skips ids outside the vocabulary.
///
/// **Threads.** Immutable after construction except for the byte-level piece cache, which a lock guards,
/// so one instance can be shared across threads.
public final class BPETokenizer: Tokenizer, Sendable {
    /// Which BPE family, with its settings.
    public enum Algorithm: Equatable, Sendable {
        /// Byte-level BPE with merge ranks, after the given pre-tokenizer (`gpt2`).
        case byteLevel(PreTokenizer)
        /// SentencePiece BPE with token scores and byte fallback (`llama`).
        case sentencePiece(addSpacePrefix: Bool)
    }

    public let algorithm: Algorithm
    public let bosID: Int32?
    public let eosID: Int32?
    /// The tokens that end a generation, as llama.cpp's `llama_vocab_is_eog` finds them: end-of-sequence,
    /// and the control tokens that close a turn or a text in the formats it knows (`<|im_end|>`,
    /// `<|endoftext|>`, `<end_of_turn>`, `<|eot_id|>`, `<|end|>`, …). A Qwen or Gemma file's end-of-sequence
    /// is one of several: generation went on past `<|endoftext|>` or `<end_of_turn>`.
    public let endOfGeneration: Set<Int32>
    public let unknownID: Int32?
    /// Whether the model expects BOS first in a sequence (GGUF `tokenizer.ggml.add_bos_token`).
    public let addsBOS: Bool
    /// Whether the model expects EOS after a sequence (GGUF `tokenizer.ggml.add_eos_token`).
    public let addsEOS: Bool

    /// Vocabulary strings as the file stores them (byte-level encoded, or with "▁" for spaces).
    public let tokens: [String]
    /// GGUF / llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    public let tokenTypes: [Int32]

    public var vocabularySize: Int { tokens.count }

    /// The id of the vocabulary token spelled exactly `token` (as stored: byte-level form, "▁" for
    /// spaces), compared byte for byte.
    public func id(of token: String) -> Int32? { index.id(token) }

    private enum Engine: Sendable {
        case byteLevel(ByteLevelBPE)
        case sentencePiece(SentencePieceBPE)
    }

    private let engine: Engine
    private let index: VocabularyIndex
    private let specials: SpecialTokenSplitter
    let pieces: PieceTable

    /// A byte-level BPE tokenizer (GGUF `tokenizer.ggml.model = gpt2`); `merges` are "left right" lines,
    /// rank = line index.
    public convenience init(tokens: [String], merges: [String], tokenTypes: [Int32],
                            bosID: Int32?, eosID: Int32?, unknownID: Int32?,
                            preTokenizer: PreTokenizer = .smollm, addsBOS: Bool = false, addsEOS: Bool = false) throws {
        try Self.validate(tokens: tokens, tokenTypes: tokenTypes, bosID: bosID, eosID: eosID, unknownID: unknownID)
        let index = VocabularyIndex(tokens)
        let engine = try ByteLevelBPE(index: index, merges: merges, preTokenizer: preTokenizer, unknownID: unknownID)
        self.init(algorithm: .byteLevel(preTokenizer), engine: .byteLevel(engine), index: index,
                  pieces: .byteLevel(tokens: tokens, tokenTypes: tokenTypes),
                  tokens: tokens, tokenTypes: tokenTypes, bosID: bosID, eosID: eosID, unknownID: unknownID,
                  addsBOS: addsBOS, addsEOS: addsEOS)
    }

    /// A SentencePiece BPE tokenizer (GGUF `tokenizer.ggml.model = llama`): `scores[id]` orders merges
    /// (higher first); byte fallback uses the `<0x00>`…`<0xFF>` tokens.
    public convenience init(sentencePieceTokens tokens: [String], scores: [Float], tokenTypes: [Int32],
                            bosID: Int32?, eosID: Int32?, unknownID: Int32?,
                            addSpacePrefix: Bool, addsBOS: Bool = true, addsEOS: Bool = false) throws {
        try Self.validate(tokens: tokens, tokenTypes: tokenTypes, bosID: bosID, eosID: eosID, unknownID: unknownID)
        guard scores.count == tokens.count else {
            throw TokenizerError.scoreCountMismatch(tokens: tokens.count, scores: scores.count)
        }
        let index = VocabularyIndex(tokens)
        let engine = SentencePieceBPE(index: index, scores: scores, unknownID: unknownID,
                                      addSpacePrefix: addSpacePrefix)
        self.init(algorithm: .sentencePiece(addSpacePrefix: addSpacePrefix), engine: .sentencePiece(engine),
                  index: index, pieces: .sentencePiece(tokens: tokens, tokenTypes: tokenTypes),
                  tokens: tokens, tokenTypes: tokenTypes, bosID: bosID, eosID: eosID, unknownID: unknownID,
                  addsBOS: addsBOS, addsEOS: addsEOS)
    }

    private init(algorithm: Algorithm, engine: Engine, index: VocabularyIndex, pieces: PieceTable,
                 tokens: [String], tokenTypes: [Int32], bosID: Int32?, eosID: Int32?, unknownID: Int32?,
                 addsBOS: Bool, addsEOS: Bool) {
        self.algorithm = algorithm
        self.engine = engine
        self.index = index
        self.pieces = pieces
        self.specials = SpecialTokenSplitter(tokens: tokens, tokenTypes: tokenTypes)
        self.tokens = tokens
        self.tokenTypes = tokenTypes
        self.bosID = bosID
        self.eosID = eosID
        self.unknownID = unknownID
        self.addsBOS = addsBOS
        self.addsEOS = addsEOS
        var eog = Set(tokenTypes.indices.lazy.filter { tokenTypes[$0] == BPETokenizer.controlType && BPETokenizer.endOfGenerationTexts.contains(tokens[$0]) }.map { Int32($0) })
        if let eosID { eog.insert(eosID) }
        self.endOfGeneration = eog
    }

    /// Whether `id` ends a generation (`endOfGeneration`).
    public func endsGeneration(_ id: Int32) -> Bool { endOfGeneration.contains(id) }

    /// GGUF's token type of control tokens.
    static let controlType: Int32 = 3
    /// The texts of the control tokens llama.cpp counts as ending a generation (llama-vocab.cpp's list).
    static let endOfGenerationTexts: Set<String> = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
        "<｜end▁of▁sentence｜>", "<end_of_utterance>", "<|return|>", "<|call|>", "<|eom_id|>",
    ]

    private static func validate(tokens: [String], tokenTypes: [Int32],
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
    }

    // MARK: Encoding

    public func encode(_ text: String) -> [Int32] {
        let input = TokenizerInput(text)
        let fragments = specials.fragments(input.scalars)
        var ids: [Int32] = []
        ids.reserveCapacity(input.utf8.count / 3 + 1)
        switch engine {
        case .byteLevel(let encoder): encoder.encode(input, fragments, into: &ids)
        case .sentencePiece(let encoder): encoder.encode(input, fragments, into: &ids)
        }
        return ids
    }

    /// `encode(text)`, with BOS in front when `addSpecial` and the file says `add_bos_token` (and EOS
    /// after when it says `add_eos_token`): the ids llama.cpp feeds the model for a prompt.
    public func encode(_ text: String, addSpecial: Bool) -> [Int32] {
        var ids = encode(text)
        guard addSpecial else { return ids }
        if addsBOS, let bosID { ids.insert(bosID, at: 0) }
        if addsEOS, let eosID { ids.append(eosID) }
        return ids
    }
}
