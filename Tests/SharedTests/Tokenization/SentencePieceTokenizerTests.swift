// Unit tests that need no model: SentencePiece BPE on a tiny hand-made vocabulary (score order, ties,
// byte fallback, the space prefix, special tokens), the `qwen2` pre-tokenizer's pieces, special tokens
// claimed longest first, and loading from GGUF metadata (the algorithm chosen by `tokenizer.ggml.model`;
// unknown kinds are named errors).

import Foundation
import Shared
import XCTest

final class SentencePieceTokenizerTests: XCTestCase {
    // MARK: A tiny SentencePiece vocabulary

    /// Ids: 0 <unk>, 1 <s>, 2 </s>, 3 "\n\n" (user-defined), 4...259 the byte tokens <0x00>…<0xFF>,
    /// then the normal pieces below with their scores.
    static let pieces: [(String, Float)] = [
        ("▁", -6), ("a", -5), ("b", -5), ("c", -5), ("ab", -2), ("bc", -1), ("▁a", -3), ("aa", -4),
        ("▁ab", -0.5), ("é", -5),
    ]

    func tiny(addSpacePrefix: Bool = false, byteTokens: Bool = true, unknown: Int32? = 0) throws -> BPETokenizer {
        var tokens = ["<unk>", "<s>", "</s>", "\n\n"]
        var types: [Int32] = [2, 3, 3, 4]
        var scores: [Float] = [0, 0, 0, 0]
        if byteTokens {
            tokens += (0..<256).map { String(format: "<0x%02X>", $0) }
            types += [Int32](repeating: 6, count: 256)
            scores += [Float](repeating: 0, count: 256)
        }
        tokens += Self.pieces.map(\.0)
        types += [Int32](repeating: 1, count: Self.pieces.count)
        scores += Self.pieces.map(\.1)
        return try BPETokenizer(sentencePieceTokens: tokens, scores: scores, tokenTypes: types,
                                bosID: 1, eosID: 2, unknownID: unknown, addSpacePrefix: addSpacePrefix)
    }

    func ids(_ tokenizer: BPETokenizer, _ tokens: String...) -> [Int32] {
        tokens.map { tokenizer.id(of: $0) ?? -1 }
    }

    func testHighestScoreMergesFirstThenLeftmost() throws {
        let t = try tiny()
        XCTAssertEqual(t.algorithm, .sentencePiece(addSpacePrefix: false))
        // "bc" (−1) beats "ab" (−2); "abc" is no token, so "a" stays alone.
        XCTAssertEqual(t.encode("abc"), ids(t, "a", "bc"))
        // Equal scores: the leftmost pair merges first.
        XCTAssertEqual(t.encode("aaa"), ids(t, "aa", "a"))
        // Not left to right: "ab" (−2) merges before "▁a" (−3), then "▁" + "ab" = "▁ab".
        XCTAssertEqual(t.encode(" ab"), ids(t, "▁ab"))
        XCTAssertEqual(t.encode(" a b"), ids(t, "▁a", "▁", "b"))
        XCTAssertEqual(t.encode(""), [])
    }

    func testCharactersOutsideTheVocabularyFallBackToBytes() throws {
        let t = try tiny()
        XCTAssertEqual(t.encode("é"), ids(t, "é"))
        XCTAssertEqual(t.encode("ü"), ids(t, "<0xC3>", "<0xBC>"))
        XCTAssertEqual(t.encode("a🙂"), ids(t, "a", "<0xF0>", "<0x9F>", "<0x99>", "<0x82>"))
        XCTAssertEqual(t.decode(t.encode("a🙂 ü\tx")), "a🙂 ü\tx")
        XCTAssertEqual(t.decodePiece(t.id(of: "<0x0A>")!), [0x0A])
        XCTAssertEqual(t.decodePiece(t.id(of: "▁ab")!), Array(" ab".utf8))
        // Without byte tokens: the unknown id per byte, or nothing.
        let noBytes = try tiny(byteTokens: false)
        XCTAssertEqual(noBytes.encode("aü"), [noBytes.id(of: "a")!, 0, 0])
        let noUnknown = try tiny(byteTokens: false, unknown: nil)
        XCTAssertEqual(noUnknown.encode("aü"), [noUnknown.id(of: "a")!])
    }

    func testSpecialTokensInTextAndBOS() throws {
        let t = try tiny()
        XCTAssertEqual(t.encode("ab<s>b\n\n</s>"), ids(t, "ab") + [1] + ids(t, "b") + [3, 2])
        XCTAssertEqual(t.decode(t.encode("ab<s>b\n\n</s>")), "ab<s>b\n\n</s>")
        XCTAssertEqual(t.encode("<s", addSpecial: true), [1] + ids(t, "<0x3C>", "<0x73>"))
        XCTAssertTrue(t.addsBOS)
        XCTAssertEqual(t.encode("a", addSpecial: false), ids(t, "a"))
    }

    func testSpacePrefixIsAddedAtTheStartAndAfterSpecialsAndRemovedByDecode() throws {
        let t = try tiny(addSpacePrefix: true)
        XCTAssertEqual(t.encode("ab"), ids(t, "▁ab"))
        XCTAssertEqual(t.encode("ab<s>a b"), ids(t, "▁ab") + [1] + ids(t, "▁a", "▁", "b"))
        for text in ["ab", "ab<s>a b", " a", "<s>", "é c"] {
            XCTAssertEqual(t.decode(t.encode(text)), text)
        }
    }

    func testScoreCountMustMatch() {
        XCTAssertThrowsError(try BPETokenizer(sentencePieceTokens: ["a", "b"], scores: [0], tokenTypes: [1, 1],
                                              bosID: nil, eosID: nil, unknownID: nil, addSpacePrefix: false)) { error in
            XCTAssertEqual(error as? TokenizerError, .scoreCountMismatch(tokens: 2, scores: 1))
            XCTAssertEqual("\(error)", "tokenizer: 2 tokens but 1 scores")
        }
    }

    // MARK: Special tokens: longest first over the whole text (llama.cpp's order)

    func testLongerSpecialTokenWinsEvenWhenItStartsLater() throws {
        // "<a" starts first, but the longer "a>>" is claimed first; "<" is then ordinary text.
        let tokens = ByteLevel.scalars.map { String($0) } + ["<a", "a>>"]
        let types = [Int32](repeating: 1, count: 256) + [4, 4]
        let t = try BPETokenizer(tokens: tokens, merges: [], tokenTypes: types, bosID: nil, eosID: nil, unknownID: nil)
        XCTAssertEqual(t.encode("<a>>"), [t.id(of: "<")!, 257])
        XCTAssertEqual(t.encode("<a>"), [256, t.id(of: ">")!])
    }

    // MARK: The qwen2 pre-tokenizer

    func testQwen2Pieces() {
        let p = Qwen2PreTokenizer.pieces
        XCTAssertEqual(p("In 2024, 12 people"), ["In", " ", "2", "0", "2", "4", ",", " ", "1", "2", " people"])
        XCTAssertEqual(p("IT'S don't WE'LL"), ["IT", "'S", " don", "'t", " WE", "'LL"])  // any ASCII case
        XCTAssertEqual(p("(foo) \tbar"), ["(foo", ")", " ", "\tbar"])  // one leading non-letter joins a word
        XCTAssertEqual(p("a;\n\nb"), ["a", ";\n\n", "b"])  // punctuation takes the newlines after it
        XCTAssertEqual(p("a  \n \n  b"), ["a", "  \n \n", " ", " b"])  // whitespace ends after its last newline
        XCTAssertEqual(p("a   b"), ["a", "  ", " b"])
        XCTAssertEqual(p("end  "), ["end", "  "])
        XCTAssertEqual(p("x²½ 東京"), ["x", "²", "½", " 東京"])
        XCTAssertEqual(p(""), [])
        XCTAssertEqual(PreTokenizer.qwen2.pieces("don't"), ["don", "'t"])
    }

    // MARK: Loading from GGUF

    /// A GGUF file holding only tokenizer metadata.
    func gguf(_ entries: [(String, GGUFValue)]) throws -> GGUFFile {
        var writer = GGUFWriter()
        for (key, value) in entries { try writer.set(key, value) }
        return try GGUFFile(bytes: writer.bytes())
    }

    func sentencePieceEntries(model: String = "llama") -> [(String, GGUFValue)] {
        let tokens = ["<unk>", "<s>", "</s>", "▁", "a", "▁a"]
        return [
            (GGUFNames.tokenizerModel, .string(model)),
            (GGUFNames.tokens, .array(.string, tokens.map { .string($0) })),
            (BPETokenizer.scoresKey, .array(.float32, [0, 0, 0, -3, -2, -1].map { .float32($0) })),
            (GGUFNames.tokenType, .array(.int32, [2, 3, 3, 1, 1, 1].map { .int32($0) })),
            (GGUFNames.bosTokenID, .uint32(1)),
            (GGUFNames.eosTokenID, .uint32(2)),
            (GGUFNames.unknownTokenID, .uint32(0)),
        ]
    }

    func testGGUFWithLlamaModelLoadsSentencePiece() throws {
        // add_space_prefix and add_bos_token default to true, as in llama.cpp.
        let t = try BPETokenizer(gguf: try gguf(sentencePieceEntries()))
        XCTAssertEqual(t.algorithm, .sentencePiece(addSpacePrefix: true))
        XCTAssertEqual(t.encode("a a", addSpecial: true), [1, 5, 5])
        XCTAssertEqual(t.decode([5, 5]), "a a")
        let noPrefix = try BPETokenizer(gguf: try gguf(sentencePieceEntries() + [
            (GGUFNames.addSpacePrefix, .bool(false)), (GGUFNames.addBOSToken, .bool(false)),
            (GGUFNames.tokenizerPre, .string("default")),
        ]))
        XCTAssertEqual(noPrefix.encode("a a", addSpecial: true), [4, 5])
    }

    func testGGUFWithGPT2ModelLoadsByteLevel() throws {
        let t = try BPETokenizer(gguf: try GGUFFile(bytes: try SyntheticModel.writer(SyntheticConfig()).bytes()))
        XCTAssertEqual(t.algorithm, .byteLevel(.smollm))
        XCTAssertFalse(t.addsBOS)
        var qwen = try SyntheticModel.writer(SyntheticConfig())
        try qwen.set(GGUFNames.tokenizerPre, .string("qwen2"))
        XCTAssertEqual(try BPETokenizer(gguf: try GGUFFile(bytes: qwen.bytes())).algorithm, .byteLevel(.qwen2))
    }

    func testUnknownTokenizerModelOrPreTokenizerIsANamedError() throws {
        var bert = try SyntheticModel.writer(SyntheticConfig())
        try bert.set(GGUFNames.tokenizerModel, .string("bert"))
        XCTAssertThrowsError(try BPETokenizer(gguf: try GGUFFile(bytes: bert.bytes()))) { error in
            XCTAssertEqual(error as? TokenizerError, .unsupportedModel("bert"))
            XCTAssertEqual("\(error)", "tokenizer: model \"bert\" is not supported "
                           + "(supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece BPE)")
        }
        var gpt4o = try SyntheticModel.writer(SyntheticConfig())
        try gpt4o.set(GGUFNames.tokenizerPre, .string("gpt-4o"))
        XCTAssertThrowsError(try BPETokenizer(gguf: try GGUFFile(bytes: gpt4o.bytes()))) { error in
            XCTAssertEqual(error as? TokenizerError, .unsupportedPreTokenizer("gpt-4o"))
            XCTAssertEqual("\(error)", "tokenizer: pre-tokenizer \"gpt-4o\" is not supported "
                           + "(supported: \"smollm\", \"qwen2\", \"llama-bpe\" for \"gpt2\" files, \"default\" for \"llama\" files)")
        }
        XCTAssertThrowsError(try BPETokenizer(gguf: try gguf(sentencePieceEntries() + [
            (GGUFNames.tokenizerPre, .string("qwen2")),
        ]))) { error in
            XCTAssertEqual(error as? TokenizerError, .unsupportedPreTokenizer("qwen2"))
        }
        var noScores = sentencePieceEntries()
        noScores.removeAll { $0.0 == BPETokenizer.scoresKey }
        XCTAssertThrowsError(try BPETokenizer(gguf: try gguf(noScores))) { error in
            XCTAssertEqual(error as? GGUFError, .missingKey("tokenizer.ggml.scores"))
        }
    }
}
