// Building the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata. Strict: a model kind or
// pre-tokenizer other than the one `BPETokenizer` implements is an error, because tokenizing with the
// wrong rules would silently give the model text it was never trained on.
import GGUF

public extension BPETokenizer {
    /// The tokenizer stored in `gguf`: requires `tokenizer.ggml.model = gpt2` and `pre = smollm`.
    /// Missing special-id keys mean "no such token"; missing vocabulary keys throw `GGUFError`.
    convenience init(gguf: GGUFFile) throws {
        let model = try gguf.string(GGUFNames.tokenizerModel)
        guard model == "gpt2" else { throw TokenizerError.unsupportedModel(model) }
        let pre = try gguf.string(GGUFNames.tokenizerPre)
        guard pre == "smollm" else { throw TokenizerError.unsupportedPreTokenizer(pre) }

        let tokens = try gguf.stringArray(GGUFNames.tokens)
        func optionalID(_ key: String, _ role: String) throws -> Int32? {
            guard gguf.metadata[key] != nil else { return nil }
            let id = try gguf.uint32(key)
            guard let value = Int32(exactly: id), Int(value) < tokens.count else {
                throw TokenizerError.specialTokenOutOfRange(role: role, id: Int(id), vocabularySize: tokens.count)
            }
            return value
        }
        try self.init(tokens: tokens,
                      merges: try gguf.stringArray(GGUFNames.merges),
                      tokenTypes: try gguf.int32Array(GGUFNames.tokenType),
                      bosID: try optionalID(GGUFNames.bosTokenID, "bos"),
                      eosID: try optionalID(GGUFNames.eosTokenID, "eos"),
                      unknownID: try optionalID(GGUFNames.unknownTokenID, "unknown"))
    }
}
