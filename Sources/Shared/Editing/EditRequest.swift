// One requested edit: `prompt` holds `{}` where the subject goes; the target carries no leading
// space (one is added before tokenizing, as in the reference).

public struct EditRequest: Sendable, Equatable, Codable {
    public var caseID: Int?
    public var prompt: String
    public var subject: String
    public var targetNew: String
    public var targetTrue: String?
    public var relationID: String?
    public var paraphrasePrompts: [String]
    public var neighborhoodPrompts: [String]
    public var generationPrompts: [String]
    /// zsRE and flat CounterFact: the answer the neighborhood prompt must keep (`loc_ans`,
    /// `locality_ground_truth`).
    public var neighborhoodAnswer: String?
    /// zsRE: the multi-hop question whose answer follows from the edit (with the `alt` target).
    public var portability: Portability?

    public struct Portability: Sendable, Equatable, Codable {
        public var question: String
        public var answer: String
        public init(question: String, answer: String) { self.question = question; self.answer = answer }
    }

    public init(caseID: Int? = nil, prompt: String, subject: String, targetNew: String, targetTrue: String? = nil,
                relationID: String? = nil, paraphrasePrompts: [String] = [], neighborhoodPrompts: [String] = [],
                generationPrompts: [String] = [], neighborhoodAnswer: String? = nil, portability: Portability? = nil) {
        self.caseID = caseID; self.prompt = prompt; self.subject = subject; self.targetNew = targetNew
        self.targetTrue = targetTrue; self.relationID = relationID; self.paraphrasePrompts = paraphrasePrompts
        self.neighborhoodPrompts = neighborhoodPrompts; self.generationPrompts = generationPrompts
        self.neighborhoodAnswer = neighborhoodAnswer; self.portability = portability
    }

    /// The prompt with the subject filled in.
    public var filledPrompt: String { prompt.replacingFirst("{}", with: subject) }
    /// " " + target, the string whose tokens are the target ids.
    public var targetText: String { targetNew.hasPrefix(" ") ? targetNew : " " + targetNew }
}

extension String {
    /// Replaces the first occurrence of `pattern` (Python's `str.format` with one `{}`).
    func replacingFirst(_ pattern: String, with value: String) -> String {
        guard let r = range(of: pattern) else { return self }
        return replacingCharacters(in: r, with: value)
    }
}

import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model
import Foundation
