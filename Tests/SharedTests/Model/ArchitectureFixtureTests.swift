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

    /// With int8 activations (`generate --activations int8`), the logits of a generation step (the prompt's
    /// last token decoded alone on the KV cache of the others: one-row products on the int8 kernels) are
    /// as close to the exact float32 logits as llama.cpp's are (the fixtures' tolerances, 0.35 / 0.8,
    /// calibrated on llama.cpp against exact references), and within twice that of llama.cpp's own (two
    /// independent roundings); top-1 and the first greedy token equal llama.cpp's outside near ties.
    func testInt8ActivationStepsMeetLlamaCppTolerances() throws {
        guard QuantizedLinear.bestISA != nil else { throw XCTSkip("no AVX2/AVX-512 on this CPU: no int8 kernels") }
        for (name, folder, tol) in [("qwen2.5-0.5b", "qwen2", Float(0.35)), ("gemma3-270m", "gemma3", 0.8), ("smollm2", "smollm2", 0.35)] {
            let m = try Self.model(name)
            let tok = try BPETokenizer(gguf: m.gguf)
            m.quantized.activations = .int8
            defer { m.quantized.activations = .float32 }
            var maxCpp: Float = 0, maxFloat: Float = 0
            for p in try reference(folder, "llamacpp_reference.json").prompts where p.ids.count >= 2 {
                let cache = KVCache(config: m.config, capacity: p.ids.count)
                _ = try m.decode([Array(p.ids.dropLast())], caches: [cache])
                let logits = try m.decode([[p.ids.last!]], caches: [cache])
                m.quantized.activations = .float32
                let exact = Array(try m.forward(TokenBatch([p.ids]), logitRows: [p.ids.count - 1]).logits(at: 0))
                m.quantized.activations = .int8
                let top = Sampler.topK(logits, 10)
                for (id, v) in zip(p.top10_ids, p.top10_logits) where top.contains(id) { maxCpp = max(maxCpp, abs(logits[id] - v)) }
                for id in Sampler.topK(exact, 10) { maxFloat = max(maxFloat, abs(logits[id] - exact[id])) }
                XCTAssertGreaterThanOrEqual(Set(top).intersection(p.top10_ids).count, 8, "\(name): top-10 overlap with llama.cpp, \(p.prompt)")
                if p.top10_logits[0] - p.top10_logits[1] >= tol { XCTAssertEqual(top.first, p.top10_ids[0], "\(name) top-1 of \(p.prompt)") }
                if let want = p.greedy10 {
                    var samplers = [Sampler()]
                    let got = try CachedGenerator(model: m, tokenizer: tok).generate(prompts: [p.ids], maxTokens: 1, samplers: &samplers, stopAtEOS: false)[0]
                    XCTAssertEqual(got.first, want.first, "\(name): first greedy token of \(p.prompt) with int8 activations")
                }
            }
            print("\(name) (int8 activations, one-token step): max |Δlogit| vs float32 activations \(maxFloat), vs llama.cpp \(maxCpp)")
            XCTAssertLessThanOrEqual(maxFloat, tol, "\(name): top-10 logits within \(tol) of the exact float32 ones")
            XCTAssertLessThanOrEqual(maxCpp, 2 * tol, "\(name): top-10 logits within \(2 * tol) of llama.cpp")
            XCTAssertGreaterThan(maxFloat, 0, "\(name): the int8 kernels ran (the logits differ from float32's)")
        }
    }
}
