// The tiny synthetic LLaMA that the model and edit tests load: written, read back, every tensor shaped
// as its config says, tokenizer metadata consistent, bytes determined by the seed.
import Foundation
import XCTest
import Shared

final class SyntheticModelTests: XCTestCase {
    func testDefaultModelWritesAndReadsBackWithExpectedShapes() throws {
        let c = SyntheticConfig()
        let path = TestPaths.temporaryFile("synthetic.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SyntheticModel.write(to: path, config: c)
        let f = try GGUFFile(path: path)
        let a = try f.string(GGUFNames.architecture)
        XCTAssertEqual(a, "llama")
        XCTAssertEqual(try f.int(GGUFNames.blockCount(a)), c.layers)
        XCTAssertEqual(try f.int(GGUFNames.embeddingLength(a)), 64)
        XCTAssertEqual(try f.int(GGUFNames.feedForwardLength(a)), 128)
        XCTAssertEqual(try f.int(GGUFNames.headCount(a)), 4)
        XCTAssertEqual(try f.int(GGUFNames.headCountKV(a)), 2)
        XCTAssertEqual(try f.int(GGUFNames.keyLength(a)), 16)
        XCTAssertEqual(try f.int(GGUFNames.ropeDimensionCount(a)), 16)
        XCTAssertEqual(try f.double(GGUFNames.ropeFreqBase(a)), 10000)
        XCTAssertEqual(try f.double(GGUFNames.rmsEpsilon(a)), Double(Float(1e-5)))

        let expected = SyntheticModel.expectedShapes(c)
        XCTAssertEqual(f.tensors.map(\.name), expected.map(\.name))
        XCTAssertNil(f.tensorInfo(GGUFNames.output), "tied by default")
        for (name, dims) in expected {
            let info = try XCTUnwrap(f.tensorInfo(name), name)
            XCTAssertEqual(info.dims, dims, name)
            XCTAssertEqual(info.type, .f32, name)
            let x = try f.floats(info)
            XCTAssertTrue(x.allSatisfy { $0.isFinite && abs($0) <= 1.1 }, name)
        }
        XCTAssertEqual(f.tensorInfo(GGUFNames.tokenEmbd)?.dims, [64, 300])
        XCTAssertEqual(f.tensorInfo(GGUFNames.attnK(1))?.dims, [64, 32])
        XCTAssertEqual(f.tensorInfo(GGUFNames.ffnDown(0))?.dims, [128, 64])
    }

    func testVocabularyIsByteLevelBPELikeSmolLM2() throws {
        let f = try GGUFFile(bytes: SyntheticModel.writer().bytes())
        let tokens = try f.stringArray(GGUFNames.tokens)
        let merges = try f.stringArray(GGUFNames.merges)
        let types = try f.int32Array(GGUFNames.tokenType)
        XCTAssertEqual(tokens.count, 300)
        XCTAssertEqual(Set(tokens).count, tokens.count, "tokens are unique")
        XCTAssertEqual(Array(tokens.prefix(3)), ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        XCTAssertEqual(types, [3, 3, 3] + [Int32](repeating: 1, count: 297))
        XCTAssertEqual(try f.int(GGUFNames.bosTokenID), 1)
        XCTAssertEqual(try f.int(GGUFNames.eosTokenID), 2)
        XCTAssertEqual(try f.int(GGUFNames.unknownTokenID), 0)
        XCTAssertEqual(try f.string(GGUFNames.tokenizerModel), "gpt2")
        XCTAssertEqual(try f.string(GGUFNames.tokenizerPre), "smollm")

        // GPT-2 bytes_to_unicode: "!" first, space is "Ġ" (U+0120), byte 0 is "Ā" (U+0100), 0xFF is "ÿ".
        let bytes = Array(tokens[3..<259])
        XCTAssertEqual(bytes.first, "!")
        XCTAssertEqual(Set(bytes.map { $0.unicodeScalars.count }), [1])
        XCTAssertTrue(bytes.contains("Ġ")); XCTAssertTrue(bytes.contains("Ā")); XCTAssertTrue(bytes.contains("ÿ"))
        XCTAssertFalse(bytes.contains(" "))
        // Each merge joins two existing tokens into the token that follows in rank order.
        let index = Dictionary(uniqueKeysWithValues: tokens.enumerated().map { ($1, $0) })
        for (rank, m) in merges.enumerated() {
            let parts = m.split(separator: " ").map(String.init)
            XCTAssertEqual(parts.count, 2, m)
            XCTAssertNotNil(index[parts[0]], m); XCTAssertNotNil(index[parts[1]], m)
            XCTAssertEqual(index[parts.joined()], 259 + rank, m)
        }
    }

    func testSeedDeterminesBytes() throws {
        let a = try SyntheticModel.writer(SyntheticConfig(seed: 1)).bytes()
        XCTAssertEqual(a, try SyntheticModel.writer(SyntheticConfig(seed: 1)).bytes())
        XCTAssertNotEqual(a, try SyntheticModel.writer(SyntheticConfig(seed: 2)).bytes())
        let path = TestPaths.temporaryFile("seeded.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SyntheticModel.write(to: path, config: SyntheticConfig(seed: 99), seed: 1)
        XCTAssertEqual(try Array(Data(contentsOf: URL(fileURLWithPath: path))), a, "seed: overrides config.seed")
    }

    func testVariantsUntiedAndQuantized() throws {
        for type in [TensorEncoding.q8_0, .q4_1, .f16] {
            let c = SyntheticConfig(layers: 3, tied: false, matrixType: type)
            let f = try GGUFFile(bytes: SyntheticModel.writer(c).bytes())
            let expected = SyntheticModel.expectedShapes(c)
            XCTAssertEqual(f.tensors.count, 1 + 9 * 3 + 2)
            XCTAssertEqual(f.tensors.map(\.name), expected.map(\.name))
            for (name, dims) in expected {
                let info = try XCTUnwrap(f.tensorInfo(name))
                XCTAssertEqual(info.dims, dims, name)
                XCTAssertEqual(info.type, dims.count == 1 ? .f32 : type.ggmlType, "\(name) \(type)")
            }
            // Same seed, same draws: the quantized weights are the F32 ones within a quantization step.
            let ref = try GGUFFile(bytes: SyntheticModel.writer(SyntheticConfig(layers: 3, tied: false)).bytes())
            let diff = maxAbsDiff(try f.floats(GGUFNames.attnQ(2)), try ref.floats(GGUFNames.attnQ(2)))
            XCTAssertLessThanOrEqual(diff, 0.08 / 7 * 0.6, "\(type): max |Δ| = \(diff)")
        }
    }

    func testInvalidConfigIsATypedError() {
        XCTAssertThrowsError(try SyntheticModel.writer(SyntheticConfig(hidden: 60, heads: 8))) { XCTAssertTrue($0 is GGUFError) }
        XCTAssertThrowsError(try SyntheticModel.writer(SyntheticConfig(heads: 4, kvHeads: 3))) { XCTAssertTrue($0 is GGUFError) }
        XCTAssertThrowsError(try SyntheticModel.writer(SyntheticConfig(hidden: 48, heads: 4, matrixType: .q8_0))) { XCTAssertTrue($0 is GGUFError) }
        XCTAssertThrowsError(try SyntheticModel.writer(SyntheticConfig(layers: 0))) { XCTAssertTrue($0 is GGUFError) }
    }
}
