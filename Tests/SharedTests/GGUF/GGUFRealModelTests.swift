// The default model (SmolLM2-135M-Instruct Q4_1, fetched by scripts/setup.sh) read through our reader:
// the facts of docs/model.md, and dequantized samples against the independent numpy implementation's
// dump in shared/fixtures/smollm2/forward_reference.json. Skipped when the model is absent.
import Foundation
import XCTest
import Shared

final class GGUFRealModelTests: XCTestCase {
    private func model() throws -> GGUFFile {
        let path = TestPaths.smolLM2.path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("model absent: \(path) (run scripts/setup.sh)") }
        return try GGUFFile(path: path)
    }

    func testMetadataMatchesModelCard() throws {
        let f = try model()
        let a = try f.string(GGUFNames.architecture)
        XCTAssertEqual(a, "llama")
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.alignment, 32)
        XCTAssertEqual(try f.int(GGUFNames.blockCount(a)), 30)
        XCTAssertEqual(try f.int(GGUFNames.embeddingLength(a)), 576)
        XCTAssertEqual(try f.int(GGUFNames.feedForwardLength(a)), 1536)
        XCTAssertEqual(try f.int(GGUFNames.headCount(a)), 9)
        XCTAssertEqual(try f.int(GGUFNames.headCountKV(a)), 3)
        XCTAssertEqual(try f.int(GGUFNames.contextLength(a)), 8192)
        XCTAssertEqual(try f.int(GGUFNames.ropeDimensionCount(a)), 64)
        XCTAssertEqual(try f.double(GGUFNames.ropeFreqBase(a)), 100_000)
        XCTAssertEqual(try f.double(GGUFNames.rmsEpsilon(a)), 1e-5, accuracy: 1e-12)
        XCTAssertEqual(try f.string(GGUFNames.tokenizerModel), "gpt2")
        XCTAssertEqual(try f.string(GGUFNames.tokenizerPre), "smollm")
        XCTAssertEqual(try f.stringArray(GGUFNames.tokens).count, 49152)
        XCTAssertEqual(try f.stringArray(GGUFNames.merges).count, 48900)
        XCTAssertEqual(try f.int(GGUFNames.bosTokenID), 1)
        XCTAssertEqual(try f.int(GGUFNames.eosTokenID), 2)
        XCTAssertEqual(try f.int(GGUFNames.unknownTokenID), 0)
        XCTAssertEqual(f.metadata[GGUFNames.addBOSToken], .bool(false))
        let types = try f.int32Array(GGUFNames.tokenType)
        let control = types.indices.filter { types[$0] == GGUFNames.TokenType.control.rawValue }
        XCTAssertEqual(control, Array(0..<17), "17 control tokens, ids 0–16")
    }

    func testTensorsMatchModelCard() throws {
        let f = try model()
        XCTAssertEqual(f.tensors.count, 272)
        XCTAssertNil(f.tensorInfo(GGUFNames.output), "the LM head is tied")
        XCTAssertEqual(f.tensorInfo(GGUFNames.tokenEmbd)?.dims, [576, 49152])
        XCTAssertEqual(f.tensorInfo(GGUFNames.tokenEmbd)?.type, .q8_0)
        XCTAssertEqual(f.tensorInfo(GGUFNames.outputNorm)?.type, .f32)
        let (C, F, D) = (576, 1536, 64)
        for l in 0..<30 {
            let shapes: [(String, [Int], GGMLType)] = [
                (GGUFNames.attnNorm(l), [C], .f32), (GGUFNames.attnQ(l), [C, 9 * D], .q4_1),
                (GGUFNames.attnK(l), [C, 3 * D], .q4_1), (GGUFNames.attnV(l), [C, 3 * D], .q4_1),
                (GGUFNames.attnOutput(l), [9 * D, C], .q4_1), (GGUFNames.ffnNorm(l), [C], .f32),
                (GGUFNames.ffnGate(l), [C, F], .q4_1), (GGUFNames.ffnUp(l), [C, F], .q4_1), (GGUFNames.ffnDown(l), [F, C], .q4_1),
            ]
            for (name, dims, type) in shapes {
                let info = try XCTUnwrap(f.tensorInfo(name), name)
                XCTAssertEqual(info.dims, dims, name); XCTAssertEqual(info.type, type, name)
            }
        }
        let params = f.tensors.reduce(0) { $0 + $1.elementCount }
        XCTAssertEqual(Double(params) / 1e6, 134.5, accuracy: 0.05)
    }

    private struct Reference: Decodable {
        struct Sample: Decodable {
            let type: String
            let shape_out_in: [Int]
            let first8_row0: [Float]
            let sum: Double
            let sum_abs: Double
        }
        let dequant_samples: [String: Sample]
    }

    func testDequantizedSamplesMatchNumpyReference() throws {
        let f = try model()
        let url = TestPaths.sharedFixtures.appendingPathComponent("smollm2/forward_reference.json")
        guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("reference absent: \(url.path)") }
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
        XCTAssertFalse(ref.dequant_samples.isEmpty)
        for (name, s) in ref.dequant_samples.sorted(by: { $0.key < $1.key }) {
            let info = try XCTUnwrap(f.tensorInfo(name), name)
            XCTAssertEqual(info.type.description, s.type, name)
            XCTAssertEqual(s.shape_out_in.count == 1 ? [info.cols] : [info.rows, info.cols], s.shape_out_in, name)
            let x = try f.floats(info)
            let first = Array(x.prefix(8))
            XCTAssertLessThanOrEqual(maxAbsDiff(first, s.first8_row0), 1e-6, "\(name) first8: \(first) vs \(s.first8_row0)")
            var sum = 0.0, sumAbs = 0.0
            for v in x { sum += Double(v); sumAbs += Double(abs(v)) }
            XCTAssertEqual(sum, s.sum, accuracy: 1e-3 * abs(s.sum), "\(name) sum")
            XCTAssertEqual(sumAbs, s.sum_abs, accuracy: 1e-3 * s.sum_abs, "\(name) sum_abs")
        }
    }

    /// Export's foundation: copying the model unchanged through our writer reproduces the file exactly.
    func testUnchangedCopyIsByteIdentical() throws {
        let f = try model()
        let path = TestPaths.temporaryFile("smollm2-copy.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try GGUFWriter.copy(from: f).write(to: path)
        let original = try Data(contentsOf: TestPaths.smolLM2, options: .alwaysMapped)
        let copy = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        XCTAssertEqual(copy.count, original.count)
        XCTAssertTrue(copy == original, "the copy differs from the original")
    }
}
