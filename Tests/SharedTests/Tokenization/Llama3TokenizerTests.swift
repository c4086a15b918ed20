// Llama 3's byte-level BPE (`tokenizer.ggml.pre = llama-bpe`) against llama.cpp on the same vocabulary:
// qwen2's split with digits in runs of up to three, whole pieces that are tokens taken before any
// merge (`ignore_merges`), and BOS added by default. The vocabulary is small and made up so that each
// rule shows: digit merges ("12", "123", "45", "000"), and tokens no merge builds (" capital",
// " France"). `scripts/llamacpp-fixtures.sh` tokenizes the texts below with llama.cpp's own tokenizer on
// the file this test writes (its FNV-1a-64 checked) into Fixtures/llama3_tokenizer_llamacpp.json.
import Foundation
import Shared
import XCTest

final class Llama3TokenizerTests: XCTestCase {
    static let texts = [
        "12345 apples and 1000000 pears",
        "The capital of France is Paris.",
        "IT'S here, they'll GO; we'VE 99 problems",
        "  spaces\n\nnewlines\t 1234567\r\n",
        "x=1000;y=12.345",
        "café ١٢٣٤ 𝟘𝟙𝟚𝟛",
        " capital capitals the theme",
    ]

    /// A gpt2 vocabulary: BOS/EOS, the 256 byte tokens, what the merges build, and two whole words.
    static func file(pre: String = "llama-bpe", addBOS: Bool? = true) throws -> [UInt8] {
        let merges = ["1 2", "12 3", "4 5", "0 0", "00 0", "Ġ t", "h e", "Ġt he", "Ġ c", "a p", "Ġc ap", "i t", "a l"]
        var tokens = ["<|begin_of_text|>", "<|end_of_text|>"] + ByteLevel.scalars.map { String(Character($0)) }
        for m in merges { tokens.append(m.split(separator: " ").joined()) }
        tokens += ["Ġcapital", "ĠFrance"]
        var w = try SyntheticModel.writer(SyntheticConfig(layers: 1))
        try w.set(GGUFNames.tokenizerPre, .string(pre))
        try w.set(GGUFNames.tokens, .array(.string, tokens.map { .string($0) }))
        try w.set(GGUFNames.tokenType, .array(.int32, tokens.indices.map { .int32($0 < 2 ? 3 : 1) }))
        try w.set(GGUFNames.merges, .array(.string, merges.map { .string($0) }))
        try w.set(GGUFNames.bosTokenID, .uint32(0))
        try w.set(GGUFNames.eosTokenID, .uint32(1))
        try w.set(GGUFNames.unknownTokenID, .uint32(1))
        try w.set(GGUFNames.paddingTokenID, .uint32(1))
        if let addBOS { try w.set(GGUFNames.addBOSToken, .bool(addBOS)) } else { w.remove(GGUFNames.addBOSToken) }
        return w.bytes()
    }

    func tokenizer(_ bytes: [UInt8]) throws -> BPETokenizer { try BPETokenizer(gguf: GGUFFile(bytes: bytes)) }

    struct Fixture: Decodable {
        let producer: String
        let checksum: String
        let texts: [String]
        let tokens: [[Int32]]
    }

    /// With ALPHAEDIT_LLAMA3_CASES=DIR, writes the file and the texts there for the fixture script.
    func testWriteFileForTheFixtureScript() throws {
        guard let dir = ProcessInfo.processInfo.environment["ALPHAEDIT_LLAMA3_CASES"] else {
            throw XCTSkip("ALPHAEDIT_LLAMA3_CASES not set (used by scripts/llamacpp-fixtures.sh)")
        }
        try Data(Self.file()).write(to: URL(fileURLWithPath: dir + "/llama3-tokenizer.gguf"))
        try JSONEncoder().encode(Self.texts).write(to: URL(fileURLWithPath: dir + "/texts.json"))
    }

    func testTokensMatchLlamaCpp() throws {
        let url = TestPaths.fixtures.appendingPathComponent("llama3_tokenizer_llamacpp.json")
        let f = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        let bytes = try Self.file()
        XCTAssertEqual(String(format: "%016llx", bytes.withUnsafeBytes { FNV1a64.hash($0) }), f.checksum, "the fixture was made from other bytes")
        XCTAssertEqual(f.texts, Self.texts)
        let t = try tokenizer(bytes)
        for (text, expected) in zip(f.texts, f.tokens) {
            XCTAssertEqual(t.encode(text, addSpecial: true), expected, text.debugDescription)
        }
    }

    /// What each rule does, stated without llama.cpp (so a changed fixture cannot hide a changed rule).
    func testTheRules() throws {
        XCTAssertEqual(try PreTokenizer(ggufName: "llama-bpe"), .llama3)
        XCTAssertEqual(try PreTokenizer(ggufName: "llama3"), .llama3)
        XCTAssertEqual(try PreTokenizer(ggufName: "llama-v3"), .llama3)
        XCTAssertEqual(PreTokenizer.llama3.pieces("12345 x1234567"), ["123", "45", " x", "123", "456", "7"])
        XCTAssertEqual(PreTokenizer.qwen2.pieces("12345"), ["1", "2", "3", "4", "5"])
        let t = try tokenizer(Self.file())
        let id = { (s: String) in Int32(try XCTUnwrap(t.tokens.firstIndex(of: s))) }
        // " capital" is a token but no merge builds it: taken whole. " capitals" is not: merged.
        XCTAssertEqual(t.encode(" capital"), [try id("Ġcapital")])
        XCTAssertEqual(t.encode(" capitals"), [try id("Ġcap"), try id("it"), try id("al"), try id("s")])
        XCTAssertEqual(t.encode("12345"), [try id("123"), try id("45")])
        // qwen2's rules on the same vocabulary: single digits, no whole pieces.
        let q = try tokenizer(Self.file(pre: "qwen2"))
        XCTAssertEqual(q.encode(" capital"), [try id("Ġcap"), try id("it"), try id("al")])
        XCTAssertEqual(q.encode("12345"), ["1", "2", "3", "4", "5"].map { try! id($0) })
        // BOS: added when the file says so, and by default for llama-bpe (llama.cpp's default).
        XCTAssertEqual(try tokenizer(Self.file(addBOS: nil)).encode("x", addSpecial: true).first, 0)
        XCTAssertEqual(try tokenizer(Self.file(addBOS: false)).encode("x", addSpecial: true).first, try id("x"))
    }
}
