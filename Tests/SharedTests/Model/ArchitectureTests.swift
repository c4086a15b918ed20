// The qwen2 and gemma3 traits on tiny synthetic models written by our GGUF writer (no download):
// strict loading names a missing tensor, the sliding window hides what it should, and the KV-cached
// decoder equals the full forward (windows and per-layer RoPE bases included).
import Foundation
import Shared
import XCTest

final class ArchitectureTests: XCTestCase {
    func load(_ c: SyntheticConfig) throws -> LlamaModel { try LlamaModel(gguf: GGUFFile(bytes: SyntheticModel.writer(c).bytes())) }

    func testTraitsFollowTheArchitecture() throws {
        let q = try load(SyntheticConfig(architecture: "qwen2")).config.traits
        XCTAssertTrue(q.attentionBias); XCTAssertEqual(q.ropeOrder, .halves); XCTAssertFalse(q.sandwichNorms)
        let g = try load(SyntheticConfig(layers: 6, architecture: "gemma3", headDim: 24)).config
        XCTAssertTrue(g.traits.qkNorm); XCTAssertTrue(g.traits.sandwichNorms); XCTAssertEqual(g.traits.activation, .geluTanh)
        XCTAssertEqual(g.headDim, 24); XCTAssertEqual(g.qDim, 96)
        XCTAssertEqual(g.traits.embeddingScale ?? 0, 8, accuracy: 1e-6)
        XCTAssertEqual((0..<6).map { g.traits.isLocal($0) }, [true, true, true, true, true, false])
        let l = try load(SyntheticConfig()).config.traits
        var plain = ArchitectureTraits(name: "llama")
        plain.ropeFactorsTensor = true
        XCTAssertEqual(l, plain)
    }

    func testMissingArchitectureTensorIsNamed() throws {
        // A gemma3 file without the sandwich norms: written as llama, then relabelled.
        var w = try SyntheticModel.writer(SyntheticConfig())
        try w.set(GGUFNames.architecture, .string("gemma3"))
        for k in ["block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
                  "attention.head_count_kv", "rope.freq_base", "attention.layer_norm_rms_epsilon", "attention.key_length"] {
            let src = try GGUFFile(bytes: w.bytes()).metadata["llama.\(k)"]
            if let src { try w.set("gemma3.\(k)", src) }
        }
        XCTAssertThrowsError(try LlamaModel(gguf: GGUFFile(bytes: w.bytes()))) { e in
            XCTAssertEqual("\(e)", "model tensor blk.0.attn_q_norm.weight is missing")
        }
        // Extra bias tensors on a llama model are refused by name.
        var w2 = try SyntheticModel.writer(SyntheticConfig())
        try w2.add(tensor: GGUFNames.attnQBias(0), dims: [64], floats: [Float](repeating: 0, count: 64))
        XCTAssertThrowsError(try LlamaModel(gguf: GGUFFile(bytes: w2.bytes()))) { e in
            XCTAssertEqual("\(e)", "model tensor blk.0.attn_q.bias is not part of this model's architecture")
        }
    }

    /// phi3's fused matrices: the kernels read Q, K, V and the gate and up halves as row ranges of the
    /// stored `attn_qkv` and `ffn_up`, the float32 path reads the copies split at load; both agree.
    func testFusedMatricesReadTheSameRowsOnBothPaths() throws {
        var c = SyntheticConfig(layers: 2, architecture: "phi3")
        c.matrixType = .q8_0
        let m = try load(c)
        XCTAssertTrue(m.config.traits.fusedQKV && m.config.traits.fusedGateUp)
        let batch = TokenBatch([[5, 80, 120, 33, 7, 19, 44, 91, 12]])
        let quantized = try m.forward(batch, logitRows: [8]).logits
        m.quantized.enabled = false
        let float = try m.forward(batch, logitRows: [8]).logits
        m.quantized.enabled = true
        let worst = zip(quantized, float).map { abs($0 - $1) }.max() ?? .infinity
        print("phi3 Q8_0: kernels on the fused rows vs float32 on the split copies: max |diff| \(worst)")
        if QuantizedLinear.bestISA != nil { XCTAssertNotNil(m.quantized.layers[0].wv) }
        XCTAssertLessThan(worst, 1e-4)
    }

    /// One local layer with a window of 4: the last position sees tokens 6…9 only, so changing tokens
    /// 0…5 changes nothing there; with a window of 16 it does.
    func testSlidingWindowHidesOlderPositions() throws {
        let tail: [Int32] = [44, 91, 12, 230]
        for (window, same) in [(4, true), (16, false)] {
            let m = try load(SyntheticConfig(layers: 1, architecture: "gemma3", slidingWindow: window))
            let a = try m.forward(TokenBatch([[5, 80, 120, 33, 7, 19] + tail]), logitRows: [9]).logits
            let b = try m.forward(TokenBatch([[9, 200, 17, 64, 101, 3] + tail]), logitRows: [9]).logits
            let diff = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            if same { XCTAssertLessThan(diff, 1e-5, "window \(window)") } else { XCTAssertGreaterThan(diff, 1e-3, "window \(window)") }
        }
    }

    /// Token-by-token decoding with the KV cache equals the full forward at every position.
    func testCachedDecodeEqualsFullForward() throws {
        for c in [SyntheticConfig(layers: 2, architecture: "qwen2"),
                  SyntheticConfig(layers: 7, kvHeads: 1, architecture: "gemma3", headDim: 24, slidingWindow: 3)] {
            let m = try load(c)
            let ids: [Int32] = [5, 80, 120, 33, 7, 19, 44, 91, 12]
            let full = try m.forward(TokenBatch([ids]), logitRows: Array(0..<ids.count)).logits
            let cache = KVCache(config: m.config, capacity: ids.count)
            var worst: Float = 0
            for (i, id) in ids.enumerated() {
                let step = try m.decode([[id]], caches: [cache])
                let ref = full[(i * m.config.vocab)..<((i + 1) * m.config.vocab)]
                worst = max(worst, zip(step, ref).map { abs($0 - $1) }.max() ?? 0)
            }
            XCTAssertLessThan(worst, 1e-4, "\(c.architecture): cached decode vs full forward")
        }
    }

    /// Continuations that share a prompt (SharedPromptForward.swift) get the full forward's logits: two
    /// targets after each of three prompts of different lengths (one of a single token), windows included.
    func testSharedPromptForwardEqualsFullForward() throws {
        for c in [SyntheticConfig(layers: 2), SyntheticConfig(layers: 2, architecture: "qwen2"),
                  SyntheticConfig(layers: 7, kvHeads: 1, architecture: "gemma3", headDim: 24, slidingWindow: 3)] {
            let m = try load(c)
            let prompts: [[Int32]] = [[5, 80, 120, 33, 7, 19], [44], [91, 12, 230, 17]]
            let conts: [(prompt: Int, tokens: [Int32])] = [(0, [64, 101]), (0, [3]), (1, [200, 9, 8]), (2, [77]), (1, [6]), (2, [150, 2])]
            var rows: [(continuation: Int, position: Int)] = []
            for (j, cont) in conts.enumerated() {
                let n = prompts[cont.prompt].count
                for p in (n - 1)..<(n + cont.tokens.count) { rows.append((j, p)) }
            }
            let shared = try m.forward(prompts: prompts, continuations: conts, logitRows: rows)
            let batch = TokenBatch(conts.map { prompts[$0.prompt] + $0.tokens })
            let full = try m.forward(batch, logitRows: rows.map { batch.row($0.continuation, $0.position) }).logits
            XCTAssertEqual(shared.count, full.count)
            let worst = zip(shared, full).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(worst, 1e-4, "\(c.architecture): shared-prompt forward vs full forward")
            XCTAssertThrowsError(try m.forward(prompts: prompts, continuations: conts, logitRows: [(0, 4)]),
                                 "a row before the prompt's last is not computed by the second pass")
        }
    }

    /// The last block computes only the logit rows (`block(outputRows:)`): the same logits as the whole
    /// block, bit for bit on the quantized kernels (each row alone), to rounding on float32 sgemm; rows
    /// unordered and repeated, on every architecture. A hook on the last block turns it off.
    func testLastBlockAtTheLogitRowsOnly() throws {
        for arch in SyntheticModel.architectures {
            for type in [TensorEncoding.q8_0, .f32] {
                var c = SyntheticConfig(layers: 3, kvHeads: 1, architecture: arch)
                c.matrixType = type
                let m = try load(c)
                let batch = TokenBatch([[5, 80, 120, 33, 7, 19, 44, 91, 12], [44, 6, 200, 9, 8, 150, 2]])
                let rows = [8, 2, 8, 15, 0]
                let pruned = try m.forward(batch, logitRows: rows).logits
                var hooks = ForwardHooks()
                hooks.outputLayers = [c.layers - 1]
                hooks.onOutput = { _, _ in }
                let whole = try m.forward(batch, logitRows: rows, hooks: hooks).logits
                XCTAssertEqual(pruned.count, rows.count * m.config.vocab)
                if type == .q8_0 && QuantizedLinear.bestISA != nil {
                    XCTAssertTrue(pruned == whole, "\(arch) \(type): the kernels compute each row alone")
                } else {
                    let worst = zip(pruned, whole).map { abs($0 - $1) }.max() ?? .infinity
                    XCTAssertLessThan(worst, 1e-4, "\(arch) \(type)")
                }
                let v = m.config.vocab
                XCTAssertTrue(pruned[0..<v].elementsEqual(pruned[(2 * v)..<(3 * v)]), "\(arch): a repeated row gets the same logits")
            }
        }
    }
}
