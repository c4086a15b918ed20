// Facts files of every schema (CounterFact nested and flat, zsRE, simple {prompt, subject, target}), as
// JSON lines or one JSON array. The first byte picks the selection (offset: bits 0-1; limit: bit 2 on,
// then bits 5-7) and the second how the file is read (format: bits 0-2; zsRE target: bit 3).
import Editing
import Foundation

public enum FactsFuzz: FuzzTarget {
    public static func seeds() throws -> [(String, [UInt8])] {
        let simple = #"{"prompt": "{} is located in", "subject": "The Eiffel Tower", "target": "Rome"}"#
        let counterFact = #"{"case_id": 3, "relation_id": "P17", "requested_rewrite": {"prompt": "{} is a product of", "subject": "Toyota Corolla", "target_true": {"str": "Japan", "id": "Q17"}, "target_new": {"str": "Italy", "id": "Q38"}}, "paraphrase_prompts": ["The Corolla, made by Toyota. {} comes from"], "neighborhood_prompts": ["Honda Civic is a product of"], "generation_prompts": ["Toyota Corolla is my favorite car because"], "attribute_prompts": ["Fiat Panda is a product of"]}"#
        let zsre = #"{"subject": "IAAF Combined Events Challenge", "src": "When was the inception of IAAF Combined Events Challenge?", "pred": "2011", "rephrase": "When was the IAAF Combined Events Challenge launched?", "alt": "2006", "answers": ["1998"], "loc": "nq question: what is the name of the last episode of spongebob", "loc_ans": "The String", "portability": {"New Question": "What type of sports event is the IAAF Combined Events Challenge?", "New Answer": "Athletics"}}"#
        let flat = #"{"case_id": 3087, "prompt": "David Robinson professionally plays the sport", "target_new": "baseball", "subject": "David Robinson", "ground_truth": "basketball", "rephrase_prompt": "David Robinson's greatest weakness is", "locality_prompt": "Shaquille O'Neal plays", "locality_ground_truth": "basketball"}"#
        let texts = [
            "\(simple)\n\(simple)\n",
            "[\(counterFact), \(counterFact)]",
            "\(counterFact)\n",
            "[\(simple)]",
            #"{"prompt": "{} and {}", "subject": "x", "target": "y"}"#,
            "[\(zsre), \(zsre)]",
            "\(zsre)\n",
            "[\(flat)]",
            "\(flat)\n\(flat)\n",
        ]
        var seeds = texts.enumerated().map { ("facts-\($0.offset)", [0, 0] + Array($0.element.utf8)) }
        seeds.append(("zsre-alt", [0, 3 | 8] + Array(zsre.utf8)))
        return seeds
    }

    public static func test(_ input: [UInt8]) {
        guard input.count >= 2 else { return }
        let first = input[0], second = input[1]
        let offset = Int(first & 3), limit: Int? = first & 4 == 0 ? nil : Int(first >> 5)
        let formats = FactsFormat.allCases
        let options = FactsOptions(format: formats[Int(second & 7) % formats.count], zsreTarget: second & 8 == 0 ? .answers : .alt)
        guard let records = try? FactsFile.parse(Data(input.dropFirst(2)), name: "fuzz", offset: offset, limit: limit,
                                                 options: options) else { return }
        for r in records { _ = r.filledPrompt; _ = r.targetText }
    }
}
