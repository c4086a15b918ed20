// The engine against the independent float32 reference (shared/fixtures/smollm2/forward_reference.json):
// top-10 ids equal, logits within 1e-3 absolute, greedy 10-token continuations identical,
// MLP-key norms within 1e-3 relative.
import Foundation
import Shared
import XCTest

final class ModelFixtureTests: XCTestCase {
    struct Prompt: Decodable {
        let prompt: String
        let ids: [Int32]
        let top10_ids: [Int]
        let top10_logits: [Float]
        let greedy10: [Int32]
        let mlp_key_last_token_first8: [String: [Float]]
        let mlp_key_last_token_norm: [String: Float]
    }
    struct Reference: Decodable { let prompts: [Prompt] }

    nonisolated(unsafe) static var shared: (LlamaModel, BPETokenizer)?
    static func load() throws -> (LlamaModel, BPETokenizer) {
        if let s = shared { return s }
        let m = try LlamaModel(path: try RepoPaths.requireModel())
        let t = try BPETokenizer(gguf: m.gguf)
        shared = (m, t)
        return (m, t)
    }

    func reference() throws -> Reference {
        let url = try RepoPaths.sharedFile("fixtures/smollm2/forward_reference.json")
        return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }

    func testConfigMatchesModelCard() throws {
        let (m, _) = try Self.load()
        let c = m.config
        XCTAssertEqual([c.layers, c.hidden, c.ffn, c.heads, c.kvHeads, c.headDim, c.vocab, c.ropeDims], [30, 576, 1536, 9, 3, 64, 49152, 64])
        XCTAssertEqual(c.ropeBase, 100000)
        XCTAssertEqual(c.eps, 1e-5, accuracy: 1e-9)
        XCTAssertTrue(c.tiedEmbeddings)
    }

    func testLogitsTop10AndKeysMatchReference() throws {
        let (m, tok) = try Self.load()
        let ref = try reference()
        var maxLogitDiff: Float = 0, maxNormRel: Float = 0, maxKeyDiff: Float = 0
        for p in ref.prompts {
            XCTAssertEqual(tok.encode(p.prompt), p.ids, "token ids of \(p.prompt)")
            var keys: [Int: [Float]] = [:]
            var hooks = ForwardHooks()
            hooks.keyLayers = Set(0..<m.config.layers)
            let last = p.ids.count - 1, f = m.config.ffn
            hooks.onKeys = { l, k in keys[l] = Array(UnsafeBufferPointer(start: k + last * f, count: f)) }
            let r = try m.forward(TokenBatch([p.ids]), logitRows: [last], hooks: hooks)
            let logits = Array(r.logits(at: 0))
            XCTAssertEqual(Sampler.topK(logits, 10), p.top10_ids, "top-10 ids of \(p.prompt)")
            for (id, v) in zip(p.top10_ids, p.top10_logits) { maxLogitDiff = max(maxLogitDiff, abs(logits[id] - v)) }
            for (ls, norm) in p.mlp_key_last_token_norm {
                guard let l = Int(ls), let k = keys[l] else { XCTFail("no key at layer \(ls)"); continue }
                let n = (k.reduce(0) { $0 + $1 * $1 }).squareRoot()
                maxNormRel = max(maxNormRel, abs(n - norm) / norm)
            }
            for (ls, first) in p.mlp_key_last_token_first8 {
                guard let l = Int(ls), let k = keys[l] else { continue }
                for (a, b) in zip(k.prefix(8), first) { maxKeyDiff = max(maxKeyDiff, abs(a - b)) }
            }
        }
        print("fixture: max |logit diff| \(maxLogitDiff), max key-norm rel diff \(maxNormRel), max key diff \(maxKeyDiff)")
        XCTAssertLessThanOrEqual(maxLogitDiff, 1e-3, "logits within 1e-3 absolute")
        XCTAssertLessThanOrEqual(maxNormRel, 1e-3, "MLP-key norms within 1e-3 relative")
        XCTAssertLessThanOrEqual(maxKeyDiff, 1e-4, "MLP-key first 8 values")
    }

    func testGreedyContinuationsMatchReference() throws {
        let (m, tok) = try Self.load()
        for p in try reference().prompts {
            var s = Sampler()
            let out = try Generator(model: m, tokenizer: tok).generate(ids: p.ids, maxTokens: 10, sampler: &s, stopAtEOS: false)
            XCTAssertEqual(out, p.greedy10, "greedy continuation of \(p.prompt)")
        }
    }

    /// Packing sequences of different lengths into one batch gives each the logits it gets alone.
    func testBatchedEqualsSingle() throws {
        let (m, _) = try Self.load()
        let ps = try reference().prompts.map(\.ids)
        let batch = TokenBatch(ps)
        let r = try m.forward(batch, logitRows: batch.lastRows)
        var maxDiff: Float = 0
        for (i, ids) in ps.enumerated() {
            let single = try m.forward(TokenBatch([ids]), logitRows: [ids.count - 1])
            for (a, b) in zip(r.logits(at: i), single.logits(at: 0)) { maxDiff = max(maxDiff, abs(a - b)) }
        }
        XCTAssertLessThanOrEqual(maxDiff, 1e-4, "batched vs single, max diff \(maxDiff)")
    }
}
