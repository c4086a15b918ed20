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
            XCTAssertEqual("\(e)", "unsupported model architecture \"mamba\" (supported: llama, qwen2, qwen3, gemma3, phi3)")
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

    /// A synthetic model whose matrices (the tied embedding and LM head among them) are stored in `types`,
    /// taken in turn (random valid blocks, scales 1e-3…1e-2), and the same model with those matrices
    /// written as F32: the dequantized values, which GGUFReferenceTests checks against gguf-py.
    private func storedAndFloat(_ types: [GGMLType]) throws -> (stored: LlamaModel, float: LlamaModel, vocab: Int) {
        let c = SyntheticConfig(layers: 2, hidden: 256, ffn: 512, heads: 4, kvHeads: 2)
        let base = try GGUFFile(bytes: SyntheticModel.writer(c).bytes())
        // Where each format keeps its f16 scales (MXFP4: its exponent byte, set below).
        // IQ1_M: the top nibbles of its four scale words; NVFP4: its four E4M3 scale bytes, set below.
        let scaleFields: [GGMLType: [Int]] = [.q2_K: [80, 82], .q3_K: [108], .iq4_nl: [0], .iq4_xs: [0], .tq1_0: [52],
                                              .tq2_0: [64], .q4_0: [0], .q5_1: [0, 2], .q5_K: [0, 2],
                                              .iq2_xxs: [0], .iq2_xs: [0], .iq2_s: [0], .iq3_xxs: [0], .iq3_s: [0],
                                              .iq1_s: [0], .iq1_m: [], .nvfp4: [], .q1_0: [0]]
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
                if type == .nvfp4 { for s in 0..<4 { raw[o + s] = 8 + UInt8(truncatingIfNeeded: rng.next() % 16) } }
                if type == .iq1_m {
                    let d = Float16(0.001 * Float(1 + rng.next() % 10)).bitPattern
                    for k in 0..<4 { raw[o + 49 + 2 * k] = raw[o + 49 + 2 * k] & 0x0F | UInt8((d >> UInt16(4 * k)) & 0xF) << 4 }
                }
                for f in try XCTUnwrap(type == .mxfp4 ? [] : scaleFields[type], "\(type)") {
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
        return (try LlamaModel(gguf: storedFile), try LlamaModel(gguf: asFloat), c.vocab)
    }

    /// Formats without a few-token kernel (TQ1_0, TQ2_0, MXFP4, NVFP4) run on their float32 copy: the
    /// logits of the float model bit for bit, at 1, 3 and 12 token rows.
    func testModelsInTheFormatsWithoutAKernelRunAsTheirFloatCopy() throws {
        let (stored, float, vocab) = try storedAndFloat([.tq1_0, .tq2_0, .mxfp4, .nvfp4])
        for tokens: [Int32] in [[7], [5, 80, 120], Array(40..<52)] {
            let batch = TokenBatch([tokens])
            let a = try stored.forward(batch, logitRows: batch.lastRows).logits
            let b = try float.forward(batch, logitRows: batch.lastRows).logits
            XCTAssertEqual(a.count, vocab)
            XCTAssertTrue(a.allSatisfy(\.isFinite), "\(tokens.count) tokens")
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "\(tokens.count) tokens")
        }
    }

    /// The formats whose kernels were added on 2026-12-06 (Q4_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q5_K, IQ4_XS) and
    /// 2026-12-07 (the grid-coded i-quants; Q1_0, read as its Q4_0 copy), inside a model: the logits of the float model up to summation
    /// order (≤ 1e-4 of the largest logit; the kernels' products are checked against float64 in
    /// QuantizedKernelTypesTests). Two models: the synthetic one has fewer matrices than there are formats.
    func testModelsInTheAddedKernelFormatsMatchTheirFloatCopy() throws {
        for types: [GGMLType] in [[.q4_0, .q5_1, .iq4_nl, .q2_K, .q3_K, .q5_K, .iq4_xs, .q1_0],
                                  [.iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m]] {
            let (stored, float, _) = try storedAndFloat(types)
            for tokens: [Int32] in [[7], [5, 80, 120], Array(40..<52)] {
                let batch = TokenBatch([tokens])
                let a = try stored.forward(batch, logitRows: batch.lastRows).logits
                let b = try float.forward(batch, logitRows: batch.lastRows).logits
                let scale = b.map(abs).max() ?? 0
                let diff = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertGreaterThan(scale, 0.1)
                XCTAssertLessThanOrEqual(diff, 1e-4 * scale, "\(types) \(tokens.count) tokens")
            }
        }
    }

    /// A file holding a type we cannot dequantize (Q8_1, an activation format) parses, and loading the model names the tensor
    /// and its type.
    func testATypeWithoutADequantizerIsNamedWhenLoaded() throws {
        let c = SyntheticConfig(layers: 1, hidden: 256, ffn: 512, heads: 4, kvHeads: 2)
        let base = try GGUFFile(bytes: SyntheticModel.writer(c).bytes())
        var w = GGUFWriter()
        for k in base.metadataKeys { try w.set(k, base.metadata[k]!) }
        for info in base.tensors {
            if info.name == GGUFNames.ffnUp(0) {
                let bytes = try XCTUnwrap(GGMLType.q8_1.byteCount(elements: info.elementCount))
                try w.add(tensor: info.name, dims: info.dims, type: .q8_1, raw: [UInt8](repeating: 0, count: bytes))
            } else {
                try w.add(tensor: info, from: base)
            }
        }
        let file = try GGUFFile(bytes: w.bytes())
        XCTAssertEqual(file.tensors.first { $0.name == GGUFNames.ffnUp(0) }?.type, .q8_1)
        XCTAssertThrowsError(try LlamaModel(gguf: file)) { e in
            XCTAssertEqual("\(e)", "GGUF tensor blk.0.ffn_up.weight has type Q8_1, which cannot be dequantized")
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
