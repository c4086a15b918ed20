// The tokenizer seen by the rest of the toolkit: text in, token ids out, and back.
// One implementation today (`BPETokenizer`, byte-level BPE as in GPT-2 / SmolLM2); the protocol keeps
// callers independent of it so SentencePiece-style vocabularies can be added beside it.
import GGUF

/// Turns text into token ids and token ids back into text.
public protocol Tokenizer: Sendable {
    /// Token ids for `text`. Special tokens written literally in the text (e.g. `<|im_start|>`) become
    /// their ids; no BOS/EOS is added.
    func encode(_ text: String) -> [Int32]

    /// Text for `ids`. Invalid UTF-8 (e.g. a multi-byte character cut between calls) becomes U+FFFD.
    func decode(_ ids: [Int32]) -> String

    /// Raw bytes of one token, for streaming printers that must buffer incomplete UTF-8 themselves.
    func decodePiece(_ id: Int32) -> [UInt8]
}
