// The tokenizer seen by the rest of the toolkit: text in, token ids out, and back.
// One implementation (`BPETokenizer`), which covers both BPE families found in GGUF files: byte-level
// (GPT-2 / SmolLM2 / Qwen2.5) and SentencePiece (Gemma 3); the protocol keeps callers independent of it.
import GGUF

/// Turns text into token ids and token ids back into text.
public protocol Tokenizer: Sendable {
    /// Token ids for `text`. Special tokens written literally in the text (e.g. `<|im_start|>`) become
    /// their ids; no BOS/EOS is added.
    func encode(_ text: String) -> [Int32]

    /// Token ids for `text`, with BOS (and EOS) added when `addSpecial` and the model's file asks for
    /// them (Gemma: BOS; SmolLM2, Qwen2.5: nothing): what to feed the model at the start of a sequence.
    func encode(_ text: String, addSpecial: Bool) -> [Int32]

    /// Text for `ids`. Invalid UTF-8 (e.g. a multi-byte character cut between calls) becomes U+FFFD.
    func decode(_ ids: [Int32]) -> String

    /// Raw bytes of one token, for streaming printers that must buffer incomplete UTF-8 themselves.
    func decodePiece(_ id: Int32) -> [UInt8]
}

public extension Tokenizer {
    /// For tokenizers whose models need no BOS/EOS: the same as `encode(text)`.
    func encode(_ text: String, addSpecial: Bool) -> [Int32] { encode(text) }
}
