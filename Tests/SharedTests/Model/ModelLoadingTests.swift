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

    /// A model whose matrices (the tied embedding and LM head among them) are stored in the formats
    /// without a kernel of ours (Q2_K, Q3_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0, MXFP4) loads, and its forward
    /// gives the logits of the same model with those matrices written as F32 (the dequantized values,
    /// which GGUFReferenceTests checks against gguf-py), bit for bit, at 1, 3 and 12 token rows.
    func testModelsInTheFormatsWithoutAKernelRunAsTheirFloatCopy() throws {
        let c = SyntheticConfig(layers: 2, hidden: 256, ffn: 512, heads: 4, kvHeads: 2)
        let base = try GGUFFile(bytes: SyntheticModel.writer(c).bytes())
        let types: [GGMLType] = [.q2_K, .q3_K, .iq4_nl, .iq4_xs, .tq1_0, .tq2_0, .mxfp4]
        // Where each format keeps its scales: f16 fields set to 1e-3…1e-2 (MXFP4: its exponent byte).
        let scaleFields: [GGMLType: [Int]] = [.q2_K: [80, 82], .q3_K: [108], .iq4_nl: [0], .iq4_xs: [0], .tq1_0: [52], .tq2_0: [64]]
        var rng = SplitMix64(seed: 12)
        var stored = GGUFWriter(), used = Set<GGMLType>()
        for k in base.metadataKeys { try stored.set(k, base.metadata[k]!) }
        for (i, info) in base.tensors.enumerated() {
            guard info.dims.count == 2 else { try stored.add(tensor: info, from: base); continue }
            let type = types[i % types.count]
            used.insert(type)
            let blocks = info.elementCount / type.blockSize
            var raw = (0..<(blocks * type.blockBytes)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            for b in 0..<blocks {
                let o = b * type.blockBytes
                if type == .mxfp4 { raw[o] = 118 + UInt8(truncatingIfNeeded: rng.next() % 4) }
                for f in scaleFields[type] ?? [] {
                    let scale = Float16(0.001 * Float(1 + rng.next() % 10)).bitPattern
                    raw[o + f] = UInt8(scale & 0xFF); raw[o + f + 1] = UInt8(scale >> 8)
                }
            }
            try stored.add(tensor: info.name, dims: info.dims, type: type, raw: raw)
        }
        XCTAssertEqual(used, Set(types))
        let storedFile = try GGUFFile(bytes: stored.bytes())
        var floats: [String: [Float]] = [:]
        for info in storedFile.tensors where info.dims.count == 2 { floats[info.name] = try storedFile.floats(info) }
        let asFloat = try GGUFFile(bytes: GGUFWriter.copy(from: storedFile, replacing: floats).bytes())
        XCTAssertTrue(asFloat.tensors.allSatisfy { $0.type == .f32 })
        let quantized = try LlamaModel(gguf: storedFile), reference = try LlamaModel(gguf: asFloat)
        for tokens: [Int32] in [[7], [5, 80, 120], Array(40..<52)] {
            let batch = TokenBatch([tokens])
            let a = try quantized.forward(batch, logitRows: batch.lastRows).logits
            let b = try reference.forward(batch, logitRows: batch.lastRows).logits
            XCTAssertEqual(a.count, c.vocab)
            XCTAssertTrue(a.allSatisfy(\.isFinite), "\(tokens.count) tokens")
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "\(tokens.count) tokens")
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
