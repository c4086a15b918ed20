// Tokenizer tests. Fixture tests compare against ids produced by the reference tokenizer for
// SmolLM2-135M-Instruct (shared/fixtures/smollm2); they need the real model file in models/ and are
// skipped without it. The unit tests build a tiny vocabulary by hand and need nothing.

import Foundation
import Shared
import XCTest

final class TokenizerTests: XCTestCase {
    // MARK: Paths and the real tokenizer

    static let repoRoot = RepoPaths.repo
    static let shared = repoRoot.deletingLastPathComponent().appendingPathComponent("shared")
    static let modelPath = repoRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path

    /// Loaded once for all tests.
    static let smolLM: Result<BPETokenizer, any Error> = Result {
        try BPETokenizer(gguf: try GGUFFile(path: modelPath))
    }

    func realTokenizer() throws -> BPETokenizer {
        guard FileManager.default.fileExists(atPath: Self.modelPath) else {
            throw XCTSkip("model not found at \(Self.modelPath); run the set-up step first")
        }
        return try Self.smolLM.get()
    }

    struct Case: Decodable {
        let text: String
        let ids: [Int32]
    }

    func loadCases(_ file: String, _ extract: (Data) throws -> [Case]) throws -> [Case] {
        let url = Self.shared.appendingPathComponent("fixtures/smollm2/\(file)")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("fixture not found at \(url.path)")
        }
        return try extract(try Data(contentsOf: url))
    }

    /// Encodes and decodes every case; fails once with the count and the first few differences.
    func check(_ cases: [Case], with tokenizer: BPETokenizer, file: StaticString = #filePath, line: UInt = #line) {
        var diffs: [String] = []
        for (index, item) in cases.enumerated() {
            let ids = tokenizer.encode(item.text)
            if ids != item.ids {
                diffs.append("case \(index) \(String(reflecting: item.text)): encode \(ids), expected \(item.ids)")
            }
            let text = tokenizer.decode(item.ids)
            if text != item.text {
                diffs.append("case \(index): decode gives \(String(reflecting: text)), expected \(String(reflecting: item.text))")
            }
        }
        XCTAssertEqual(diffs.count, 0, "\(diffs.count) mismatches in \(cases.count) cases; first:\n"
                       + diffs.prefix(5).joined(separator: "\n"), file: file, line: line)
    }

    // MARK: Fixtures

    func testTokenizerCasesFixture() throws {
        struct File: Decodable { let cases: [Case] }
        let cases = try loadCases("tokenizer_cases.json") { try JSONDecoder().decode(File.self, from: $0).cases }
        XCTAssertEqual(cases.count, 383)
        check(cases, with: try realTokenizer())
    }

    func testForwardReferenceTokenizerCases() throws {
        struct File: Decodable { let tokenizer: [Case] }
        let cases = try loadCases("forward_reference.json") { try JSONDecoder().decode(File.self, from: $0).tokenizer }
        XCTAssertFalse(cases.isEmpty)
        check(cases, with: try realTokenizer())
    }

    func testRealVocabularyFacts() throws {
        let tokenizer = try realTokenizer()
        XCTAssertEqual(tokenizer.vocabularySize, 49_152)
        XCTAssertEqual(tokenizer.bosID, 1)
        XCTAssertEqual(tokenizer.eosID, 2)
        XCTAssertEqual(tokenizer.unknownID, 0)
        XCTAssertEqual(tokenizer.id(of: "<|im_start|>"), 1)
        XCTAssertEqual(tokenizer.encode(" Paris").count, 1)
        XCTAssertEqual(tokenizer.decodePiece(2), Array("<|im_end|>".utf8))
    }

    /// Tokenizes the first 10,000 T-REx sentences, checks the round trip and prints the throughput.
    func testWikipediaSentencesRoundTripAndThroughput() throws {
        _ = try realTokenizer()
        let url = Self.shared.appendingPathComponent("data/wiki-triplets/trex.jsonl")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw XCTSkip("data not found at \(url.path)")
        }
        struct Row: Decodable { let sentence: String }
        let decoder = JSONDecoder()
        let sentences = try data.split(separator: UInt8(ascii: "\n")).prefix(10_000).map {
            try decoder.decode(Row.self, from: Data($0)).sentence
        }
        // A fresh tokenizer so the timing includes filling the piece cache.
        let fresh = try BPETokenizer(gguf: try GGUFFile(path: Self.modelPath))
        let start = Date()
        let encoded = sentences.map(fresh.encode)
        let seconds = Date().timeIntervalSince(start)
        let count = encoded.reduce(0) { $0 + $1.count }
        print(String(format: "tokenizer: %d sentences, %d tokens in %.3f s = %.0f tokens/s",
                     sentences.count, count, seconds, Double(count) / seconds))
        let failures = zip(sentences, encoded).filter { fresh.decode($1) != $0 }.map(\.0)
        XCTAssertEqual(failures.count, 0, "round trip fails for: \(failures.prefix(3))")
    }

    func testConcurrentEncodingMatchesSerial() throws {
        let tokenizer = try realTokenizer()
        let texts = (0..<64).map { "Sentence \($0): the café in Zürich opened in 19\($0 % 10)0, didn't it?" }
        let serial = texts.map(tokenizer.encode)
        let results = ResultBox(count: texts.count)
        DispatchQueue.concurrentPerform(iterations: texts.count) { results.set($0, tokenizer.encode(texts[$0])) }
        XCTAssertEqual(results.values, serial)
    }

    final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private var storage: [[Int32]]
        init(count: Int) { storage = Array(repeating: [], count: count) }
        func set(_ index: Int, _ value: [Int32]) { lock.lock(); storage[index] = value; lock.unlock() }
        var values: [[Int32]] { lock.lock(); defer { lock.unlock() }; return storage }
    }

    // MARK: Pre-tokenizer

    func testDigitsAreSplitIndividually() {
        XCTAssertEqual(SmolLMPreTokenizer.pieces("In 2024, 12345 people"),
                       ["In", " ", "2", "0", "2", "4", ",", " ", "1", "2", "3", "4", "5", " people"])
        XCTAssertEqual(SmolLMPreTokenizer.pieces("$3.50"), ["$", "3", ".", "5", "0"])
        XCTAssertEqual(SmolLMPreTokenizer.pieces("x²½"), ["x", "²", "½"])  // \p{No} counts as a digit
    }

    func testWhitespaceBeforeAWordLeavesItsLastScalar() {
        XCTAssertEqual(SmolLMPreTokenizer.pieces("a   b"), ["a", "  ", " b"])
        XCTAssertEqual(SmolLMPreTokenizer.pieces("a\n\nb"), ["a", "\n", "\n", "b"])
        XCTAssertEqual(SmolLMPreTokenizer.pieces("a \tb"), ["a", " ", "\t", "b"])
        XCTAssertEqual(SmolLMPreTokenizer.pieces("a\tb"), ["a", "\t", "b"])
        XCTAssertEqual(SmolLMPreTokenizer.pieces("end  "), ["end", "  "])
        XCTAssertEqual(SmolLMPreTokenizer.pieces("  ,x"), [" ", " ,", "x"])
    }

    func testContractionsAndPunctuation() {
        XCTAssertEqual(SmolLMPreTokenizer.pieces("don't I'll we've"), ["don", "'t", " I", "'ll", " we", "'ve"])
        XCTAssertEqual(SmolLMPreTokenizer.pieces("IT'S"), ["IT", "'", "S"])  // case-sensitive, as GPT-2
        XCTAssertEqual(SmolLMPreTokenizer.pieces("ok?!' 's"), ["ok", "?!'", " '", "s"])
        XCTAssertEqual(SmolLMPreTokenizer.pieces("naïve 東京"), ["naïve", " 東京"])
        XCTAssertEqual(SmolLMPreTokenizer.pieces(""), [])
    }

    // MARK: BPE on a tiny vocabulary

    static let start = "<|im_start|>", end = "<|im_end|>"

    /// The 256 byte tokens, a few merged tokens and two control tokens.
    func tinyTokenizer(merges: [String] = ["Ġ t", "h e", "Ġt he", "b c", "a b", "a a"],
                       extra: [String] = ["Ġt", "he", "Ġthe", "bc", "ab", "aa"]) throws -> BPETokenizer {
        let tokens = ByteLevel.scalars.map { String($0) } + extra + [Self.start, Self.end]
        let types = [Int32](repeating: 1, count: tokens.count - 2) + [3, 3]
        return try BPETokenizer(tokens: tokens, merges: merges, tokenTypes: types,
                                bosID: Int32(tokens.count - 2), eosID: Int32(tokens.count - 1), unknownID: nil)
    }

    func ids(_ tokenizer: BPETokenizer, _ tokens: String...) -> [Int32] {
        tokens.map { tokenizer.id(of: $0) ?? -1 }
    }

    func testByteLevelTableIsGPT2s() {
        XCTAssertEqual(Set(ByteLevel.scalars).count, 256)
        XCTAssertEqual(ByteLevel.scalars[0x20], "Ġ")
        XCTAssertEqual(ByteLevel.scalars[0x0A], "Ċ")
        XCTAssertEqual(ByteLevel.scalars[0x41], "A")
        XCTAssertEqual(ByteLevel.encode(Array("é".utf8)), "Ã©")
        XCTAssertEqual(ByteLevel.decode(ByteLevel.encode(0...255)), Array(0...255))
    }

    func testMergesApplyLowestRankFirstThenLeftmost() throws {
        let tokenizer = try tinyTokenizer()
        XCTAssertEqual(tokenizer.encode(" the"), ids(tokenizer, "Ġthe"))
        XCTAssertEqual(tokenizer.encode("abc"), ids(tokenizer, "a", "bc"))  // "b c" outranks "a b"
        XCTAssertEqual(tokenizer.encode("aaa"), ids(tokenizer, "aa", "a"))  // leftmost occurrence first
        XCTAssertEqual(tokenizer.encode("é"), ids(tokenizer, "Ã", "©"))    // unmerged bytes stay bytes
        XCTAssertEqual(tokenizer.encode("the 1"), ids(tokenizer, "t", "he", "Ġ", "1"))
    }

    func testControlTokensInTextBecomeTheirIDs() throws {
        let tokenizer = try tinyTokenizer()
        let text = "\(Self.start)the\(Self.end)\n\(Self.start)"
        let ids = tokenizer.encode(text)
        XCTAssertEqual(ids, [tokenizer.bosID!] + self.ids(tokenizer, "t", "he") + [tokenizer.eosID!]
                       + self.ids(tokenizer, "Ċ") + [tokenizer.bosID!])
        XCTAssertEqual(tokenizer.decode(ids), text)
        // An unfinished control token is ordinary text.
        XCTAssertEqual(tokenizer.encode("<|im_sta"), self.ids(tokenizer, "<", "|", "i", "m", "_", "s", "t", "a"))
    }

    func testDecodeIsLossySafeAndPiecesAreRawBytes() throws {
        let tokenizer = try tinyTokenizer()
        let eAcute = tokenizer.encode("é")
        XCTAssertEqual(eAcute.flatMap(tokenizer.decodePiece), Array("é".utf8))
        XCTAssertEqual(tokenizer.decode(Array(eAcute.prefix(1))), "\u{FFFD}")
        XCTAssertEqual(tokenizer.decodePiece(-1), [])
        XCTAssertEqual(tokenizer.decodePiece(Int32(tokenizer.vocabularySize)), [])
        let text = "Zürich 東京 🙂 \u{0}\t\r\n e\u{301}"
        XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), text)
    }

    // MARK: Malformed vocabularies

    func testMalformedVocabulariesThrowNamedErrors() throws {
        XCTAssertThrowsError(try tinyTokenizer(merges: ["ab"])) { error in
            XCTAssertEqual(error as? TokenizerError, .malformedMerge(index: 0, merge: "ab"))
            XCTAssertEqual("\(error)", "tokenizer: merge 0 \"ab\" is not two parts separated by a space")
        }
        XCTAssertThrowsError(try tinyTokenizer(merges: ["h e", "a "])) { error in
            XCTAssertEqual(error as? TokenizerError, .malformedMerge(index: 1, merge: "a "))
        }
        XCTAssertThrowsError(try tinyTokenizer(merges: ["h e", "x yz"])) { error in
            XCTAssertEqual(error as? TokenizerError, .mergeOutOfVocabulary(index: 1, merge: "x yz", missing: "yz"))
            XCTAssertEqual("\(error)",
                           "tokenizer: merge 1 \"x yz\" needs \"yz\", which is not in the vocabulary")
        }
        XCTAssertThrowsError(try BPETokenizer(tokens: ["a", "b"], merges: [], tokenTypes: [1],
                                              bosID: nil, eosID: nil, unknownID: nil)) { error in
            XCTAssertEqual(error as? TokenizerError, .tokenTypeCountMismatch(tokens: 2, tokenTypes: 1))
            XCTAssertEqual("\(error)", "tokenizer: 2 tokens but 1 token types")
        }
        XCTAssertThrowsError(try BPETokenizer(tokens: ["a"], merges: [], tokenTypes: [1],
                                              bosID: 5, eosID: nil, unknownID: nil)) { error in
            XCTAssertEqual(error as? TokenizerError, .specialTokenOutOfRange(role: "bos", id: 5, vocabularySize: 1))
        }
        XCTAssertThrowsError(try BPETokenizer(tokens: [], merges: [], tokenTypes: [],
                                              bosID: nil, eosID: nil, unknownID: nil)) { error in
            XCTAssertEqual(error as? TokenizerError, .emptyVocabulary)
        }
    }

    func testMissingByteTokensBecomeUnknownOrAreDropped() throws {
        let withUnknown = try BPETokenizer(tokens: ["<unk>", "a"], merges: [], tokenTypes: [2, 1],
                                           bosID: nil, eosID: nil, unknownID: 0)
        XCTAssertEqual(withUnknown.encode("ab a"), [1, 0, 0, 1])
        let without = try BPETokenizer(tokens: ["a"], merges: [], tokenTypes: [1],
                                       bosID: nil, eosID: nil, unknownID: nil)
        XCTAssertEqual(without.encode("ab a"), [0, 0])
    }
}
