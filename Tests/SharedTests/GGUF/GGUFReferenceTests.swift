// Our dequantizers, quantizers and file layout against an independent implementation: the `gguf`
// Python package (llama.cpp's gguf-py), through the fixture written by scripts/gen_quant_fixture.py.
import Foundation
import XCTest
import Shared

final class GGUFReferenceTests: XCTestCase {
    private struct Fixture: Decodable {
        struct Blocks: Decodable { let count: Int; let bytes: String; let expected: String }
        struct Quantized: Decodable {
            let input: String, count: Int
            let Q8_0: String, Q4_1: String
        }
        struct PyTensor: Decodable { let dims: [Int]; let type: String; let values: String; let raw: String? }
        struct PyFile: Decodable { let bytes: String; let tensors: [String: PyTensor] }
        let dequant: [String: Blocks]
        let block_geometry: [String: [Int]]
        let quantize: Quantized
        let python_gguf: PyFile
    }

    private func fixture() throws -> Fixture {
        let url = TestPaths.fixtures.appendingPathComponent("quant_blocks.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    private static func type(named name: String) -> GGMLType? {
        GGMLType.allCases.first { $0.description == name }
    }

    /// Types whose dequantizer repeats gguf-py's arithmetic in its order, so they must agree bit for bit;
    /// and Q1_0, whose expected values come from ggml's own C dequantizer (gguf-py 0.19 has none).
    private static let bitExact: Set<String> = ["Q2_K", "Q3_K", "IQ4_NL", "IQ4_XS", "TQ1_0", "TQ2_0", "MXFP4",
                                                "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "NVFP4",
                                                "Q1_0"]

    /// Every dequantizer within 1e-6·max|x| of gguf.quants (the only differences are float rounding
    /// order), and those of `bitExact` bit for bit.
    func testDequantizersMatchGGUFPy() throws {
        let f = try fixture()
        let expectedTypes = Set(["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "BF16", "F16"])
            .union(Self.bitExact)
        XCTAssertEqual(Set(f.dequant.keys), expectedTypes)
        for (name, blocks) in f.dequant.sorted(by: { $0.key < $1.key }) {
            let type = try XCTUnwrap(Self.type(named: name), name)
            let raw = Hex.bytes(blocks.bytes)
            let expected = Hex.floats(blocks.expected)
            XCTAssertEqual(raw.count, type.byteCount(elements: blocks.count), name)
            XCTAssertEqual(expected.count, blocks.count, name)
            var y = [Float](repeating: .nan, count: blocks.count)
            raw.withUnsafeBytes { src in y.withUnsafeMutableBufferPointer { Dequantize.run(type, from: src, into: $0.baseAddress!, count: blocks.count) } }
            let scale = expected.map(abs).max() ?? 0
            let diff = maxAbsDiff(y, expected)
            XCTAssertLessThanOrEqual(diff, 1e-6 * scale, "\(name): max |Δ| = \(diff), max |x| = \(scale)")
            XCTAssertTrue(y.allSatisfy(\.isFinite), name)
            XCTAssertTrue(type.canDequantize, name)
            if Self.bitExact.contains(name) {
                let bad = zip(y, expected).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }
                XCTAssertEqual(bad.count, 0, "\(name): \(bad.count) values differ in their bits, first at \(bad.first?.offset ?? -1)")
            }
        }
    }

    /// Every type gguf-py knows is known here with ggml's block geometry, so a file holding any of them
    /// parses and names the type. gguf-py sizes Q8_1 with float32 d and s (40 bytes); ggml's
    /// `block_q8_1` has two f16 (36 bytes, static-asserted in ggml-common.h), which is what we use.
    func testEveryGGMLTypeHasGGUFPysBlockGeometry() throws {
        let geometry = try fixture().block_geometry
        XCTAssertEqual(Set(geometry.keys), Set(GGMLType.allCases.map(\.description)))
        for type in GGMLType.allCases {
            let g = try XCTUnwrap(geometry[type.description], "\(type)")
            XCTAssertEqual(type.blockSize, g[0], "\(type) elements per block")
            XCTAssertEqual(type.blockBytes, type == .q8_1 ? 36 : g[1], "\(type) bytes per block")
        }
    }

    /// Our Q8_0 / Q4_1 encoders reproduce ggml's reference quantizers bit for bit (gguf-py ports them).
    func testQuantizersMatchGGUFPyBitForBit() throws {
        let q = try fixture().quantize
        let x = Hex.floats(q.input)
        XCTAssertEqual(x.count, q.count)
        for (encoding, hex) in [(TensorEncoding.q8_0, q.Q8_0), (.q4_1, q.Q4_1)] {
            let ours = try XCTUnwrap(Quantize.run(x, as: encoding))
            let theirs = Hex.bytes(hex)
            XCTAssertEqual(ours.count, theirs.count, "\(encoding)")
            let bad = zip(ours, theirs).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
            XCTAssertEqual(bad, [], "\(encoding): differing bytes (block = offset / \(encoding.ggmlType.blockBytes))")
        }
        XCTAssertNil(Quantize.run([1, 2, 3], as: .q8_0), "a partial block is refused")
    }

    /// A file written by gguf.GGUFWriter parses, and our writer given the same content writes the same bytes.
    func testFileFromGGUFPyParsesAndOurWriterReproducesIt() throws {
        let py = try fixture().python_gguf
        let bytes = Hex.bytes(py.bytes)
        let f = try GGUFFile(bytes: bytes)
        XCTAssertEqual(f.metadataKeys.first, GGUFNames.architecture)
        XCTAssertEqual(try f.string(GGUFNames.architecture), "testarch")
        XCTAssertEqual(f.metadata["test.u8"], .uint8(200))
        XCTAssertEqual(f.metadata["test.i8"], .int8(-100))
        XCTAssertEqual(f.metadata["test.u16"], .uint16(60000))
        XCTAssertEqual(f.metadata["test.i16"], .int16(-30000))
        XCTAssertEqual(f.metadata["test.u32"], .uint32(4_000_000_000))
        XCTAssertEqual(f.metadata["test.i32"], .int32(-2_000_000_000))
        XCTAssertEqual(f.metadata["test.f32"], .float32(0.15625))
        XCTAssertEqual(f.metadata["test.u64"], .uint64(1 << 63 + 5))
        XCTAssertEqual(f.metadata["test.i64"], .int64(-(1 << 62)))
        XCTAssertEqual(f.metadata["test.f64"], .float64(1e-300))
        XCTAssertEqual(f.metadata["test.bool"], .bool(true))
        XCTAssertEqual(f.metadata["test.str"], .string("héllo, 世界 🌍"))
        XCTAssertEqual(try f.stringArray("test.strs"), ["a", "", "Ġthe"])
        XCTAssertEqual(try f.int32Array("test.ints"), [1, -2, 3])
        XCTAssertEqual(f.tensors.map(\.name), ["a.f32", "b.f16", "c.q8_0"])

        var w = GGUFWriter()
        for k in f.metadataKeys { try w.set(k, try f.value(k)) }
        for t in f.tensors {
            let ref = try XCTUnwrap(py.tensors[t.name])
            XCTAssertEqual(t.dims, ref.dims, t.name)
            XCTAssertEqual(t.type.description, ref.type, t.name)
            let values = Hex.floats(ref.values)
            XCTAssertEqual(try f.floats(t), values, t.name)
            if let raw = ref.raw {
                try w.add(tensor: t.name, dims: t.dims, type: t.type, raw: Hex.bytes(raw))
            } else {
                try w.add(tensor: t.name, dims: t.dims, floats: values, as: t.type == .f16 ? .f16 : .f32)
            }
        }
        XCTAssertEqual(w.bytes(), bytes, "our writer lays the file out exactly as gguf-py does")
    }
}
