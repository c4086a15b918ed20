import ArgumentParser
import Foundation
import Shared

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a prompt with the model (greedy by default).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Tokens to generate.") var maxTokens = 20
    @Option(help: "Sample from the k most likely tokens instead of greedy.") var topK: Int?
    @Option(help: "Seed of the sampler.") var seed: UInt64 = 0
    @Option(help: "State directory of an edit campaign: answer with the edited model.") var state: String?
    @Option(help: "Activations of the few-token products: float32 (exact), or int8 (rounded per block of 32, as llama.cpp; faster where converting weights is the bottleneck).")
    var activations: Activations = .float32
    @Argument(help: "The prompt.") var prompt: String

    func run() throws {
        if let topK, topK < 1 { throw ValidationError("--top-k must be at least 1 (leave it out for greedy)") }
        if maxTokens < 0 { throw ValidationError("--max-tokens must be at least 0") }
        let cfg = try modelOptions.resolved(state: state)
        let model = try LlamaModel(path: cfg.model)
        let tok = try BPETokenizer(gguf: model.gguf)
        model.quantized.activations = activations
        if let state {
            let st = try EditState.load(directory: state)
            try st.checkModel(path: cfg.model, gguf: model.gguf)
            try st.apply(to: model)
        }
        let ids = tok.encode(prompt, addSpecial: true)
        var sampler = Sampler(mode: topK.map { .topK($0) } ?? .greedy, seed: seed)
        let out = StreamingPrinter(tokenizer: tok, prefix: prompt)  // the prompt once generation is under way, not before an error
        _ = try CachedGenerator(model: model, tokenizer: tok).generate(ids: ids, maxTokens: maxTokens, sampler: &sampler) { out.emit($0) }
        out.finish()
    }
}

/// Prints `prefix`, then tokens as they come, holding back bytes of an incomplete UTF-8 character.
final class StreamingPrinter {
    let tokenizer: BPETokenizer
    private var pending: [UInt8]
    init(tokenizer: BPETokenizer, prefix: String = "") { self.tokenizer = tokenizer; pending = Array(prefix.utf8) }

    func emit(_ id: Int32) {
        pending += tokenizer.decodePiece(id)
        var cut = pending.count
        // Back off to the start of a trailing incomplete sequence.
        var i = pending.count - 1, back = 0
        while i >= 0 && back < 4 && pending[i] & 0xC0 == 0x80 { i -= 1; back += 1 }
        if i >= 0 {
            let lead = pending[i]
            let need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
            if pending.count - i < need { cut = i }
        }
        FileHandle.standardOutput.write(Data(pending[..<cut]))
        pending.removeFirst(cut)
    }

    func finish() {
        FileHandle.standardOutput.write(Data(String(decoding: pending, as: UTF8.self).utf8) + Data("\n".utf8))
        pending = []
    }
}

extension Activations: ExpressibleByArgument {}
