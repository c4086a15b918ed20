// Building the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata. Strict: a model kind or
// pre-tokenizer other than the one `BPETokenizer` implements is an error, because tokenizing with the
// wrong rules would silently give the model text it was never trained on.

/// The GGUF metadata keys the tokenizer reads (llama.cpp's names).
enum TokenizerGGUFKey {
    static let model = "tokenizer.ggml.model"
    static let preTokenizer = "tokenizer.ggml.pre"
    static let tokens = "tokenizer.ggml.tokens"
    static let merges = "tokenizer.ggml.merges"
    static let tokenTypes = "tokenizer.ggml.token_type"
    static let bosID = "tokenizer.ggml.bos_token_id"
    static let eosID = "tokenizer.ggml.eos_token_id"
    static let unknownID = "tokenizer.ggml.unknown_token_id"
}

public extension BPETokenizer {
    /// The tokenizer stored in `gguf`: requires `tokenizer.ggml.model = gpt2` and `pre = smollm`.
    /// Missing special-id keys mean "no such token"; missing vocabulary keys throw `GGUFError`.
    convenience init(gguf: GGUFFile) throws {
        let model = try gguf.string(TokenizerGGUFKey.model)
        guard model == "gpt2" else { throw TokenizerError.unsupportedModel(model) }
        let pre = try gguf.string(TokenizerGGUFKey.preTokenizer)
        guard pre == "smollm" else { throw TokenizerError.unsupportedPreTokenizer(pre) }

        let tokens = try gguf.stringArray(TokenizerGGUFKey.tokens)
        func optionalID(_ key: String, _ role: String) throws -> Int32? {
            guard gguf.metadata[key] != nil else { return nil }
            let id = try gguf.uint32(key)
            guard let value = Int32(exactly: id), Int(value) < tokens.count else {
                throw TokenizerError.specialTokenOutOfRange(role: role, id: Int(id), vocabularySize: tokens.count)
            }
            return value
        }
        try self.init(tokens: tokens,
                      merges: try gguf.stringArray(TokenizerGGUFKey.merges),
                      tokenTypes: try gguf.int32Array(TokenizerGGUFKey.tokenTypes),
                      bosID: try optionalID(TokenizerGGUFKey.bosID, "bos"),
                      eosID: try optionalID(TokenizerGGUFKey.eosID, "eos"),
                      unknownID: try optionalID(TokenizerGGUFKey.unknownID, "unknown"))
    }
}
