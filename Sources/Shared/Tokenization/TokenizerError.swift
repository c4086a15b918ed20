// Why a vocabulary could not be turned into a tokenizer. Loading is strict: a malformed vocabulary is
// rejected with the offending entry named, never half-loaded.
import GGUF

/// A vocabulary (tokens, merges, token types, special ids) that cannot be used.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// The vocabulary has no tokens.
    case emptyVocabulary
    /// `tokens` and `tokenTypes` differ in length.
    case tokenTypeCountMismatch(tokens: Int, tokenTypes: Int)
    /// `tokens` and the SentencePiece `scores` differ in length.
    case scoreCountMismatch(tokens: Int, scores: Int)
    /// Merge `index` is not two non-empty parts separated by a space.
    case malformedMerge(index: Int, merge: String)
    /// Merge `index` names a part, or produces a token, that the vocabulary lacks.
    case mergeOutOfVocabulary(index: Int, merge: String, missing: String)
    /// A special token id (`role` is "bos", "eos" or "unknown") outside the vocabulary.
    case specialTokenOutOfRange(role: String, id: Int, vocabularySize: Int)
    /// The file's `tokenizer.ggml.model` is a kind this package does not implement (e.g. `bert`).
    case unsupportedModel(String)
    /// The file's `tokenizer.ggml.pre` names a pre-tokenizer this package does not implement.
    case unsupportedPreTokenizer(String)

    public var description: String {
        switch self {
        case .emptyVocabulary:
            return "tokenizer: the vocabulary is empty"
        case let .tokenTypeCountMismatch(tokens, tokenTypes):
            return "tokenizer: \(tokens) tokens but \(tokenTypes) token types"
        case let .scoreCountMismatch(tokens, scores):
            return "tokenizer: \(tokens) tokens but \(scores) scores"
        case let .malformedMerge(index, merge):
            return "tokenizer: merge \(index) \(String(reflecting: merge)) is not two parts separated by a space"
        case let .mergeOutOfVocabulary(index, merge, missing):
            return "tokenizer: merge \(index) \(String(reflecting: merge)) needs \(String(reflecting: missing)), which is not in the vocabulary"
        case let .specialTokenOutOfRange(role, id, vocabularySize):
            return "tokenizer: \(role) token id \(id) is outside the vocabulary of \(vocabularySize) tokens"
        case let .unsupportedModel(model):
            return "tokenizer: model \(String(reflecting: model)) is not supported "
                + "(supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece BPE)"
        case let .unsupportedPreTokenizer(pre):
            let byteLevel = PreTokenizer.allCases.map { String(reflecting: $0.rawValue) }.joined(separator: ", ")
            return "tokenizer: pre-tokenizer \(String(reflecting: pre)) is not supported "
                + "(supported: \(byteLevel) for \"gpt2\" files, \"default\" for \"llama\" files)"
        }
    }
}
