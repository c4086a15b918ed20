// Strict model loading and the forward hooks, on the synthetic model (no download needed).
import Foundation
import Shared
import XCTest

final class ModelLoadingTests: XCTestCase {
    func load(_ w: GGUFWriter) throws -> LlamaModel { try LlamaModel(gguf: GGUFFile(bytes: w.bytes())) }

    func testUnsupportedArchitectureIsNamed() throws {
        var w = try SyntheticModel.writer(SyntheticConfig())
        try w.set(GGUFNames.architecture, .string("mamba"))
        XCTAssertThrowsError(try load(w)) { e in
            XCTAssertEqual("\(e)", "unsupported model architecture \"mamba\" (supported: llama, qwen2, gemma3)")
        }
    }

    func testUnexpectedAndMisShapedTensorsAreNamed() throws {
        var w = try SyntheticModel.writer(SyntheticConfig())
        try w.add(tensor: "blk.0.attn_extra.weight", dims: [4], floats: [1, 2, 3, 4])
        XCTAssertThrowsError(try load(w)) { e in
            XCTAssertEqual("\(e)", "model tensor blk.0.attn_extra.weight is not part of this model's architecture")
        }
        var w2 = try SyntheticModel.writer(SyntheticConfig())
        try w2.set(GGUFNames.feedForwardLength("llama"), .uint32(96))
        XCTAssertThrowsError(try load(w2)) { e in
            XCTAssertTrue("\(e)".contains("blk.0.ffn_gate.weight has shape"), "\(e)")
        }
    }

    func testHooksReadKeysOutputsAndAddDeltas() throws {
        let m = try load(SyntheticModel.writer(SyntheticConfig(layers: 3)))
        let c = m.config
        let batch = TokenBatch([[5, 80, 120, 33], [9, 200, 17]])
        var key: [Float] = [], out: [Float] = []
        var hooks = ForwardHooks()
        hooks.keyLayers = [1]; hooks.outputLayers = [1]
        let row = batch.row(1, 1)
        hooks.onKeys = { _, k in key = Array(UnsafeBufferPointer(start: k + row * c.ffn, count: c.ffn)) }
        hooks.onOutput = { _, o in out = Array(UnsafeBufferPointer(start: o + row * c.hidden, count: c.hidden)) }
        let plain = try m.forward(batch, logitRows: batch.lastRows, hooks: hooks, keep: [1])
        let acts = try XCTUnwrap(plain.activations[1])
        XCTAssertEqual(key, Array(UnsafeBufferPointer(start: acts.key.ptr + row * c.ffn, count: c.ffn)))
        XCTAssertEqual(out, Array(UnsafeBufferPointer(start: acts.output.ptr + row * c.hidden, count: c.hidden)))
        // A vector added to block 1's output at (seq 1, pos 1) shows in that output and changes only
        // sequence 1's logits (sequences never interact).
        var add = ForwardHooks()
        let v = (0..<c.hidden).map { Float($0 % 5) * 0.1 }
        add.deltas = [1: [(row: row, vector: v)]]
        add.outputLayers = [1]
        var outAdded: [Float] = []
        add.onOutput = { _, o in outAdded = Array(UnsafeBufferPointer(start: o + row * c.hidden, count: c.hidden)) }
        let edited = try m.forward(batch, logitRows: batch.lastRows, hooks: add)
        for i in 0..<c.hidden { XCTAssertEqual(outAdded[i], out[i] + v[i], accuracy: 1e-6) }
        XCTAssertEqual(Array(edited.logits(at: 0)), Array(plain.logits(at: 0)))
        XCTAssertNotEqual(Array(edited.logits(at: 1)), Array(plain.logits(at: 1)))
    }
}
