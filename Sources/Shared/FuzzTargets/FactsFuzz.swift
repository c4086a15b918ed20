// Facts files of both schemas (CounterFact records, simple {prompt, subject, target}), as JSON lines
// or one JSON array, with a selection (offset, limit) taken from the first byte.
import Editing
import Foundation

public enum FactsFuzz: FuzzTarget {
    public static func seeds() throws -> [(String, [UInt8])] {
        let simple = #"{"prompt": "{} is located in", "subject": "The Eiffel Tower", "target": "Rome"}"#
        let counterFact = #"{"case_id": 3, "relation_id": "P17", "requested_rewrite": {"prompt": "{} is a product of", "subject": "Toyota Corolla", "target_true": {"str": "Japan", "id": "Q17"}, "target_new": {"str": "Italy", "id": "Q38"}}, "paraphrase_prompts": ["The Corolla, made by Toyota. {} comes from"], "neighborhood_prompts": ["Honda Civic is a product of"], "generation_prompts": ["Toyota Corolla is my favorite car because"], "attribute_prompts": ["Fiat Panda is a product of"]}"#
        let texts = [
            "\(simple)\n\(simple)\n",
            "[\(counterFact), \(counterFact)]",
            "\(counterFact)\n",
            "[\(simple)]",
            #"{"prompt": "{} and {}", "subject": "x", "target": "y"}"#,
        ]
        return texts.enumerated().map { ("facts-\($0.offset)", [0] + Array($0.element.utf8)) }
    }

    public static func test(_ input: [UInt8]) {
        guard let first = input.first else { return }
        let offset = Int(first & 3), limit: Int? = first & 4 == 0 ? nil : Int(first >> 3)
        guard let records = try? FactsFile.parse(Data(input.dropFirst()), name: "fuzz", offset: offset, limit: limit) else { return }
        for r in records { _ = r.filledPrompt; _ = r.targetText }
    }
}
