// Context templates (docs/algorithm.md §2): `"{}"` plus short prefixes the model itself writes by seeded
// top-k sampling from the starts "The", "Therefore", "Because", "I", "You" (10 tokens in all,
// start included), each followed by ". {}". Braces in generated text are blanked as the reference does.
// Sampled on a KV cache (`CachedGenerator`: the same tokens as recomputing the sequence every step,
// `EvalShardTests.testContextTemplatesOnTheCacheEqualRecomputed`). Every campaign, eval and edit benchmark
// makes them; 3 runs each (2026-12-05, 2 threads, s): SmolLM2 0.44–0.51 → 0.28–0.30, Qwen 1.75–1.86 →
// 1.17–1.28, Gemma 0.79–0.86 → 0.54–0.61.

public struct ContextTemplates: Sendable, Equatable, Codable {
    /// Groups of templates; keys average within a group, then across groups.
    public var groups: [[String]]

    public init(groups: [[String]]) { self.groups = groups }

    public static let starts = ["The", "Therefore", "Because", "I", "You"]

    public var all: [String] { groups.flatMap { $0 } }

    public static func generate(model: LlamaModel, tokenizer: BPETokenizer, length: Int = 10, topK: Int = 5,
                                seed: UInt64 = 0) throws -> ContextTemplates {
        let cached = CachedGenerator(model: model, tokenizer: tokenizer)
        return try generate(tokenizer: tokenizer, length: length, topK: topK, seed: seed) { ids, maxTokens, sampler in
            try cached.generate(ids: ids, maxTokens: maxTokens, sampler: &sampler, stopAtEOS: false)
        }
    }

    /// The templates with `continuation(ids, maxTokens, &sampler)` writing each start's tokens (the
    /// tests pass `Generator`, which recomputes the sequence every step, to check the cached one).
    public static func generate(tokenizer: BPETokenizer, length: Int = 10, topK: Int = 5, seed: UInt64 = 0,
                                continuation: ([Int32], Int, inout Sampler) throws -> [Int32]) rethrows -> ContextTemplates {
        var group: [String] = []
        for (i, s) in starts.enumerated() {
            var sampler = Sampler(mode: .topK(topK), seed: seed &+ UInt64(i) &* 0x9E37_79B9)
            let plain = tokenizer.encode(s), ids = tokenizer.encode(s, addSpecial: true)  // BOS where the model wants it
            let out = try continuation(ids, max(0, length - plain.count), &sampler)
            let text = tokenizer.decode(plain + out).replacingOccurrences(of: "{", with: " ").replacingOccurrences(of: "}", with: " ")
            group.append(text + ". {}")
        }
        return ContextTemplates(groups: [["{}"], group])
    }
}

import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model
import Foundation
