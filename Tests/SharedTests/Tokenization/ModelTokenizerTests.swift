// Tokenizers of the Qwen2.5 and Gemma 3 GGUF files against llama.cpp's own tokenization
// (shared/fixtures/{qwen2,gemma3}/llamacpp_reference.json: 383 texts and 8 prompts, special tokens
// parsed, BOS as the file says). Ids must match exactly. The models are in models/ after set-up; a
// missing model or fixture fails the test with how to get it (no skip).

import Foundation
import Shared
import XCTest

final class ModelTokenizerTests: XCTestCase {
    // MARK: Loading

    struct Reference: Decodable {
        struct Case: Decodable {
            let text: String
            let ids: [Int32]
        }
        struct Prompt: Decodable {
            let prompt: String
            let ids: [Int32]
        }
        let add_bos: Bool
        let special_tokens_parsed: Bool
        let tokenizer_cases: [Case]
        let prompts: [Prompt]

        var all: [Case] { tokenizer_cases + prompts.map { Case(text: $0.prompt, ids: $0.ids) } }
    }

    static func reference(_ folder: String) throws -> Reference {
        let url = TestPaths.sharedFixtures.appendingPathComponent("\(folder)/llamacpp_reference.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("fixture not present at \(url.path) (shared/fixtures comes with the checkout's ../shared)")
            throw CocoaError(.fileNoSuchFile)
        }
        return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }

    /// Tokenizers loaded once for all tests, with the time `init(gguf:)` took (the GGUF parse excluded).
    static let qwen = Result { try load("qwen2.5-0.5b") }
    static let gemma = Result { try load("gemma3-270m") }

    static func load(_ name: String) throws -> (BPETokenizer, seconds: Double) {
        let file = try GGUFFile(path: try RepoPaths.requireModel(named: name))
        let start = Date()
        let tokenizer = try BPETokenizer(gguf: file)
        return (tokenizer, Date().timeIntervalSince(start))
    }

    /// Encodes (with the file's BOS) and round-trips every case; fails once with the count and the
    /// first few differences.
    func check(_ reference: Reference, with tokenizer: BPETokenizer, file: StaticString = #filePath, line: UInt = #line) {
        var diffs: [String] = []
        for (index, item) in reference.all.enumerated() {
            let ids = tokenizer.encode(item.text, addSpecial: true)
            if ids != item.ids {
                diffs.append("case \(index) \(String(reflecting: item.text)): encode \(ids), expected \(item.ids)")
            }
            let roundTrip = tokenizer.decode(tokenizer.encode(item.text))
            if roundTrip != item.text {
                diffs.append("case \(index): decode(encode) gives \(String(reflecting: roundTrip)), expected \(String(reflecting: item.text))")
            }
            let withoutBOS = reference.add_bos ? Array(item.ids.dropFirst()) : item.ids
            if tokenizer.decode(withoutBOS) != item.text {
                diffs.append("case \(index): decode of the reference ids gives \(String(reflecting: tokenizer.decode(withoutBOS)))")
            }
        }
        XCTAssertEqual(diffs.count, 0, "\(diffs.count) mismatches in \(reference.all.count) cases; first:\n"
                       + diffs.prefix(5).joined(separator: "\n"), file: file, line: line)
    }

    // MARK: Fixtures

    func testQwen2MatchesLlamaCpp() throws {
        let reference = try Self.reference("qwen2")
        XCTAssertEqual(reference.tokenizer_cases.count, 383)
        XCTAssertEqual(reference.prompts.count, 8)
        XCTAssertFalse(reference.add_bos)
        XCTAssertTrue(reference.special_tokens_parsed)
        check(reference, with: try Self.qwen.get().0)
    }

    func testGemma3MatchesLlamaCpp() throws {
        let reference = try Self.reference("gemma3")
        XCTAssertEqual(reference.tokenizer_cases.count, 383)
        XCTAssertEqual(reference.prompts.count, 8)
        XCTAssertTrue(reference.add_bos)
        XCTAssertTrue(reference.special_tokens_parsed)
        check(reference, with: try Self.gemma.get().0)
    }

    // MARK: Vocabulary facts

    func testQwen2VocabularyFacts() throws {
        let tokenizer = try Self.qwen.get().0
        XCTAssertEqual(tokenizer.algorithm, .byteLevel(.qwen2))
        XCTAssertEqual(tokenizer.vocabularySize, 151_936)
        XCTAssertEqual(tokenizer.bosID, 151_643)
        XCTAssertEqual(tokenizer.eosID, 151_645)
        XCTAssertFalse(tokenizer.addsBOS)
        XCTAssertEqual(tokenizer.id(of: "<|im_start|>"), 151_644)
        XCTAssertEqual(tokenizer.encode("<|im_start|>user\n<tool_call>"), [151_644, 872, 198, 151_657])
        XCTAssertEqual(tokenizer.encode("2024"), tokenizer.encode("2") + tokenizer.encode("0") + tokenizer.encode("2")
                       + tokenizer.encode("4"))
        XCTAssertEqual(tokenizer.decodePiece(151_645), Array("<|im_end|>".utf8))
        // Generation ends at <|im_end|> (end-of-sequence) and at <|endoftext|>, as in llama.cpp.
        XCTAssertEqual(tokenizer.endOfGeneration, [151_643, 151_645])
    }

    func testGemma3VocabularyFacts() throws {
        let tokenizer = try Self.gemma.get().0
        XCTAssertEqual(tokenizer.algorithm, .sentencePiece(addSpacePrefix: false))
        XCTAssertEqual(tokenizer.vocabularySize, 262_144)
        XCTAssertEqual(tokenizer.bosID, 2)
        XCTAssertEqual(tokenizer.eosID, 1)
        XCTAssertEqual(tokenizer.unknownID, 3)
        XCTAssertTrue(tokenizer.addsBOS)
        XCTAssertEqual(tokenizer.encode(""), [])
        XCTAssertEqual(tokenizer.encode("", addSpecial: true), [2])
        XCTAssertEqual(tokenizer.id(of: "▁Paris"), tokenizer.encode(" Paris").first)
        XCTAssertEqual(tokenizer.encode(" Paris").count, 1)
        // User-defined whitespace runs are matched whole; "\r" has no token and falls back to its byte.
        XCTAssertEqual(tokenizer.encode("\n\n"), [108])
        XCTAssertEqual(tokenizer.encode("   "), [139])
        XCTAssertEqual(tokenizer.encode("\r"), [tokenizer.id(of: "<0x0D>")!])
        XCTAssertEqual(tokenizer.decodePiece(tokenizer.id(of: "<0x0D>")!), [0x0D])
        XCTAssertEqual(tokenizer.decodePiece(tokenizer.id(of: "▁Paris")!), Array(" Paris".utf8))
        XCTAssertEqual(tokenizer.decode([2, 818]), "<bos>The")
        // Generation ends at <eos> and at <end_of_turn>, as in llama.cpp; <start_of_image> (which this base
        // model writes after "Rome, Italy", as llama.cpp's run of the same file does) does not end it.
        XCTAssertEqual(tokenizer.endOfGeneration, [1, try XCTUnwrap(tokenizer.id(of: "<end_of_turn>"))])
        XCTAssertFalse(tokenizer.endsGeneration(try XCTUnwrap(tokenizer.id(of: "<start_of_image>"))))
    }

    // MARK: Speed

    /// Prints load and encode timings and fails only when they are far off (a busy machine is slower).
    func testLoadAndEncodeAreFast() throws {
        let prompt = "The Eiffel Tower, which was completed in 1889 for the World's Fair, is located in the heart of beautiful Paris"
        XCTAssertEqual(prompt.split(separator: " ").count, 20)
        for (name, loaded) in [("qwen2.5", Self.qwen), ("gemma3", Self.gemma)] {
            let (tokenizer, loadSeconds) = try loaded.get()
            // A second, fresh tokenizer: load time again, and one encode with an empty piece cache.
            let (fresh, freshSeconds) = try Self.load(name == "qwen2.5" ? "qwen2.5-0.5b" : "gemma3-270m")
            let coldStart = Date()
            let coldIDs = fresh.encode(prompt)
            let cold = Date().timeIntervalSince(coldStart)
            XCTAssertEqual(coldIDs, tokenizer.encode(prompt))
            let rounds = 2_000
            let start = Date()
            var count = 0
            for i in 0..<rounds { count += tokenizer.encode(prompt + (i % 2 == 0 ? "" : ".")).count }
            let perPrompt = Date().timeIntervalSince(start) / Double(rounds)
            print("tokenizer \(name): " + String(format: "init(gguf:) %.0f ms (again %.0f ms); 20-word prompt: "
                         + "first %.1f µs, then %.1f µs each (%d tokens in %d encodes)",
                         loadSeconds * 1000, freshSeconds * 1000, cold * 1e6, perPrompt * 1e6, count, rounds))
            XCTAssertLessThan(min(loadSeconds, freshSeconds), 3, "\(name): building the tokenizer is too slow")
            XCTAssertLessThan(perPrompt, 0.002, "\(name): encoding a 20-word prompt is too slow")
        }
        // A long text stays linear-ish (no O(n²) merging): 200 kB of prose and 50 kB without spaces.
        let gemma = try Self.gemma.get().0
        for text in [String(repeating: "Paris is the capital of France. ", count: 6_000),
                     String(repeating: "abcdefghij", count: 5_000)] {
            let start = Date()
            let ids = gemma.encode(text)
            let seconds = Date().timeIntervalSince(start)
            print(String(format: "tokenizer gemma3: %d bytes → %d tokens in %.1f ms", text.utf8.count, ids.count, seconds * 1000))
            XCTAssertEqual(gemma.decode(ids), text)
            XCTAssertLessThan(seconds, 2)
        }
    }

    func testConcurrentEncodingMatchesSerial() throws {
        for tokenizer in [try Self.qwen.get().0, try Self.gemma.get().0] {
            let texts = (0..<64).map { "Sentence \($0): the café in Zürich opened in 19\($0 % 10)0, didn't it?\n\n  x" }
            let serial = texts.map { tokenizer.encode($0) }
            let results = TokenizerTests.ResultBox(count: texts.count)
            DispatchQueue.concurrentPerform(iterations: texts.count) { results.set($0, tokenizer.encode(texts[$0])) }
            XCTAssertEqual(results.values, serial)
        }
    }
}
