// Where the subject's last token is (the read/write position of docs/algorithm.md, Notation), computed as the
// reference does: the template's text before `{}` (its trailing space moved onto the subject) and
// the subject are tokenized separately; index = |tokens(prefix)| + |tokens(" " + subject)| − 1, plus one
// where the model's sequences start with BOS (`encode(_:addSpecial:)`).

public struct PromptLayout: Sendable, Equatable {
    /// Token ids of `template` with the subject filled in.
    public let ids: [Int32]
    /// Index in `ids` of the subject's last token.
    public let subjectLast: Int

    public init(template: String, subject: String, tokenizer: some Tokenizer) {
        let full = template.replacingFirst("{}", with: subject)
        ids = tokenizer.encode(full, addSpecial: true)  // with BOS where the model wants one (Gemma)
        let bos = ids.count - tokenizer.encode(full).count
        var prefix = ""
        if let r = template.range(of: "{}") { prefix = String(template[..<r.lowerBound]) }
        var word = subject
        if !prefix.isEmpty && prefix.hasSuffix(" ") {
            prefix.removeLast()
            word = " " + subject.trimmingCharacters(in: .whitespaces)
        }
        let n = bos + (prefix.isEmpty ? 0 : tokenizer.encode(prefix).count) + tokenizer.encode(word).count - 1
        subjectLast = min(max(n, 0), max(ids.count - 1, 0))
    }
}

import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model
import Foundation
