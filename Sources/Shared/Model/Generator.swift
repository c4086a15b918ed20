// Autoregressive generation from a prompt: greedy or seeded top-k, tokens handed out as they come.
import Support
import GGUF
import Tokenization
import Kernels

public struct Generator {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer

    public init(model: LlamaModel, tokenizer: BPETokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Generates up to `maxTokens` after the prompt's ids; stops at end-of-sequence or when the
    /// sequence fills the context. A prompt that leaves no room for a token is an error.
    /// `hooks` apply to every step (e.g. an edited model's deltas are in the weights, not here).
    public func generate(ids prompt: [Int32], maxTokens: Int, sampler: inout Sampler,
                         stopAtEOS: Bool = true, onToken: (Int32) -> Void = { _ in }) throws -> [Int32] {
        guard !prompt.isEmpty else { throw ModelError.emptyPrompt }
        if maxTokens > 0, prompt.count >= model.config.context {
            throw ModelError.contextOverflow(tokens: prompt.count, context: model.config.context)
        }
        var ids = prompt
        var out: [Int32] = []
        for _ in 0..<maxTokens {
            if ids.count >= model.config.context { break }
            let batch = TokenBatch([ids])
            let r = try model.forward(batch, logitRows: [batch.count - 1])
            let next = sampler.next(r.logits(at: 0))
            if stopAtEOS, tokenizer.endsGeneration(next) { break }
            out.append(next)
            ids.append(next)
            onToken(next)
        }
        return out
    }
}
