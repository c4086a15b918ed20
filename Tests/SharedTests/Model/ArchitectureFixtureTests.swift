// qwen2 (Qwen2.5-Coder-0.5B) and gemma3 (Gemma 3 270M) against independent references on the same
// GGUF files (shared/fixtures/README.md): the exact float32 numpy forward (top-10 ids equal, logits
// within 2e-3) and llama.cpp (top-10 logits within 0.35 / 0.8, top-1 and first greedy token equal
// unless llama.cpp's own top-2 are within that tolerance). Token ids come from the fixtures here;
// the tokenizers have their own tests.
import Foundation
import Shared
import XCTest

final class ArchitectureFixtureTests: XCTestCase {
    struct Prompt: Decodable {
        let prompt: String
        let ids: [Int32]
        let top10_ids: [Int]
        let top10_logits: [Float]
        let greedy10: [Int32]?
    }
    struct Reference: Decodable { let prompts: [Prompt] }

    nonisolated(unsafe) static var models: [String: LlamaModel] = [:]
    static func model(_ name: String) throws -> LlamaModel {
        if let m = models[name] { return m }
        let m = try LlamaModel(path: try RepoPaths.requireModel(named: name))
        models[name] = m
        return m
    }

    func reference(_ folder: String, _ file: String) throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: try RepoPaths.sharedFile("fixtures/\(folder)/\(file)")))
    }

    func testQwen2Config() throws {
        let c = try Self.model("qwen2.5-0.5b").config
        XCTAssertEqual([c.layers, c.hidden, c.ffn, c.heads, c.kvHeads, c.headDim, c.vocab], [24, 896, 4864, 14, 2, 64, 151936])
        XCTAssertEqual(c.ropeBase, 1e6)
        XCTAssertFalse(c.tiedEmbeddings)
        XCTAssertTrue(c.traits.attentionBias)
        XCTAssertEqual(c.traits.ropeOrder, .halves)
    }

    func testGemma3Config() throws {
        let c = try Self.model("gemma3-270m").config
        XCTAssertEqual([c.layers, c.hidden, c.ffn, c.heads, c.kvHeads, c.headDim, c.vocab], [18, 640, 2048, 4, 1, 256, 262144])
        XCTAssertTrue(c.tiedEmbeddings)
        XCTAssertEqual(c.traits.slidingWindow, 512)
        XCTAssertEqual((0..<18).filter { !c.traits.isLocal($0) }, [5, 11, 17])
        XCTAssertEqual(c.traits.activation, .geluTanh)
    }

    func testQwen2MatchesReferences() throws { try check("qwen2.5-0.5b", folder: "qwen2", llamaTolerance: 0.35) }
    func testGemma3MatchesReferences() throws { try check("gemma3-270m", folder: "gemma3", llamaTolerance: 0.8) }

    /// Last-position logits of every fixture prompt, on the quantized few-token path and on float32 BLAS.
    func check(_ name: String, folder: String, llamaTolerance tol: Float) throws {
        let m = try Self.model(name)
        let exact = try reference(folder, "forward_reference.json"), cpp = try reference(folder, "llamacpp_reference.json")
        XCTAssertEqual(exact.prompts.map(\.ids), cpp.prompts.map(\.ids))
        for quantizedPath in [true, false] {
            m.quantized.enabled = quantizedPath
            defer { m.quantized.enabled = true }
            var maxExact: Float = 0, maxCpp: Float = 0
            for (e, l) in zip(exact.prompts, cpp.prompts) {
                let r = try m.forward(TokenBatch([e.ids]), logitRows: [e.ids.count - 1])
                let logits = Array(r.logits(at: 0))
                XCTAssertEqual(Sampler.topK(logits, 10), e.top10_ids, "\(name) top-10 of \(e.prompt)")
                for (id, v) in zip(e.top10_ids, e.top10_logits) { maxExact = max(maxExact, abs(logits[id] - v)) }
                for (id, v) in zip(l.top10_ids, l.top10_logits) where Sampler.topK(logits, 10).contains(id) {
                    maxCpp = max(maxCpp, abs(logits[id] - v))
                }
                let nearTie = l.top10_logits[0] - l.top10_logits[1] < tol
                if !nearTie { XCTAssertEqual(Sampler.topK(logits, 1), [l.top10_ids[0]], "\(name) top-1 of \(e.prompt)") }
            }
            print("\(name) (\(quantizedPath ? "quantized kernels" : "float32 BLAS")): max |Δlogit| vs numpy \(maxExact), vs llama.cpp \(maxCpp)")
            XCTAssertLessThanOrEqual(maxExact, 2e-3, "\(name): logits within 2e-3 of the exact float32 reference")
            XCTAssertLessThanOrEqual(maxCpp, tol, "\(name): top-10 logits within \(tol) of llama.cpp")
        }
    }

    /// Greedy continuations by the KV-cached decoder equal llama.cpp's up to its first near tie (at least the first token).
    func testGreedyContinuationsMatchLlamaCpp() throws {
        for (name, folder) in [("qwen2.5-0.5b", "qwen2"), ("gemma3-270m", "gemma3")] {
            let m = try Self.model(name)
            let tok = try BPETokenizer(gguf: m.gguf)
            for p in try reference(folder, "llamacpp_reference.json").prompts {
                guard let want = p.greedy10 else { continue }
                var samplers = [Sampler()]
                let got = try CachedGenerator(model: m, tokenizer: tok).generate(prompts: [p.ids], maxTokens: 10, samplers: &samplers, stopAtEOS: false)[0]
                XCTAssertEqual(got.first, want.first, "\(name): first greedy token of \(p.prompt)")
                let agree = zip(got, want).prefix { $0 == $1 }.count
                print("\(name): \(p.prompt.debugDescription) greedy agrees with llama.cpp for \(agree)/10 tokens")
            }
        }
    }
}
