// Building the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata, choosing the algorithm by
// `tokenizer.ggml.model`. Strict: a model kind or pre-tokenizer this package does not implement is an
// error naming it, because tokenizing with the wrong rules would silently give the model text it was
// never trained on.
//   gpt2  → byte-level BPE; needs `merges` and a known `pre` (`smollm`, `qwen2`, Llama 3's `llama-bpe`);
//   llama → SentencePiece BPE; needs `scores`; `pre` must be absent or `default` (llama.cpp has no
//           pre-tokenizer for it); `add_space_prefix` defaults to true, as in llama.cpp.
// `add_bos_token` defaults to llama.cpp's default (gpt2: false, but true for `llama-bpe`; llama: true).
import GGUF

public extension BPETokenizer {
    /// SentencePiece token scores (float32 per token). Not in `GGUFNames` because only this file reads it.
    static let scoresKey = "tokenizer.ggml.scores"

    /// The tokenizer stored in `gguf`. Missing special-id keys mean "no such token"; missing vocabulary
    /// keys throw `GGUFError`; unknown kinds throw `TokenizerError.unsupportedModel` /
    /// `.unsupportedPreTokenizer`.
    convenience init(gguf: GGUFFile) throws {
        let model = try gguf.string(GGUFNames.tokenizerModel)
        switch model {
        case "gpt2":
            let preTokenizer = try PreTokenizer(ggufName: try gguf.string(GGUFNames.tokenizerPre))
            let tokens = try gguf.stringArray(GGUFNames.tokens)
            try self.init(tokens: tokens,
                          merges: try gguf.stringArray(GGUFNames.merges),
                          tokenTypes: try gguf.int32Array(GGUFNames.tokenType),
                          bosID: try Self.optionalID(gguf, GGUFNames.bosTokenID, "bos", tokens.count),
                          eosID: try Self.optionalID(gguf, GGUFNames.eosTokenID, "eos", tokens.count),
                          unknownID: try Self.optionalID(gguf, GGUFNames.unknownTokenID, "unknown", tokens.count),
                          preTokenizer: preTokenizer,
                          addsBOS: try Self.flag(gguf, GGUFNames.addBOSToken, default: preTokenizer.addsBOSByDefault),
                          addsEOS: try Self.flag(gguf, GGUFNames.addEOSToken, default: false))
        case "llama":
            if gguf.metadata[GGUFNames.tokenizerPre] != nil {
                let pre = try gguf.string(GGUFNames.tokenizerPre)
                guard pre == "default" else { throw TokenizerError.unsupportedPreTokenizer(pre) }
            }
            let tokens = try gguf.stringArray(GGUFNames.tokens)
            try self.init(sentencePieceTokens: tokens,
                          scores: try Self.floatArray(gguf, Self.scoresKey),
                          tokenTypes: try gguf.int32Array(GGUFNames.tokenType),
                          bosID: try Self.optionalID(gguf, GGUFNames.bosTokenID, "bos", tokens.count),
                          eosID: try Self.optionalID(gguf, GGUFNames.eosTokenID, "eos", tokens.count),
                          unknownID: try Self.optionalID(gguf, GGUFNames.unknownTokenID, "unknown", tokens.count),
                          addSpacePrefix: try Self.flag(gguf, GGUFNames.addSpacePrefix, default: true),
                          addsBOS: try Self.flag(gguf, GGUFNames.addBOSToken, default: true),
                          addsEOS: try Self.flag(gguf, GGUFNames.addEOSToken, default: false))
        default:
            throw TokenizerError.unsupportedModel(model)
        }
    }

    private static func optionalID(_ gguf: GGUFFile, _ key: String, _ role: String, _ count: Int) throws -> Int32? {
        guard gguf.metadata[key] != nil else { return nil }
        let id = try gguf.uint32(key)
        guard let value = Int32(exactly: id), Int(value) < count else {
            throw TokenizerError.specialTokenOutOfRange(role: role, id: Int(id), vocabularySize: count)
        }
        return value
    }

    private static func flag(_ gguf: GGUFFile, _ key: String, default value: Bool) throws -> Bool {
        switch gguf.metadata[key] {
        case nil: return value
        case .bool(let flag): return flag
        case let other?: throw GGUFError.wrongValueType(key: key, expected: "bool", found: "\(other.type)")
        }
    }

    private static func floatArray(_ gguf: GGUFFile, _ key: String) throws -> [Float] {
        guard case .array(_, let values) = try gguf.value(key) else {
            throw GGUFError.wrongValueType(key: key, expected: "array of float32", found: "\(try gguf.value(key).type)")
        }
        var floats: [Float] = []
        floats.reserveCapacity(values.count)
        for value in values {
            guard let number = value.doubleValue else {
                throw GGUFError.wrongValueType(key: key, expected: "array of float32", found: "array of \(value.type)")
            }
            floats.append(Float(number))
        }
        return floats
    }
}
