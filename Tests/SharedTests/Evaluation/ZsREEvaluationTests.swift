// docs/algorithm.md §7 on the synthetic model: zsRE's token accuracy equals the definition computed
// independently (one forward per target prefix, argmax at its last position); a zsRE record's metrics
// come from it (portability too); flat CounterFact keeps §6's comparisons with the locality answer;
// sharded zsRE evaluation equals the single run.
import Foundation
import Shared
import XCTest

final class ZsREEvaluationTests: XCTestCase {
    /// Share of target tokens that are the argmax after prompt + the target's earlier tokens, each
    /// prefix in its own forward pass (the definition, without TargetScorer's batching).
    static func definedAccuracy(_ m: LlamaModel, _ tok: BPETokenizer, prompt: String, target: String) throws -> (hits: Int, n: Int) {
        let p = tok.encode(prompt), t = tok.encode(" " + target.trimmingCharacters(in: .whitespaces))
        var hits = 0
        for i in 0..<t.count {
            let seq = p + t[..<i]
            let r = try m.forward(TokenBatch([Array(seq)]), logitRows: [seq.count - 1])
            if Sampler.argmax(r.logits(at: 0)) == Int(t[i]) { hits += 1 }
        }
        return (hits, t.count)
    }

    /// The model's own greedy continuation after `prompt`, as text: a target it partly predicts.
    static func continuation(_ m: LlamaModel, _ tok: BPETokenizer, _ prompt: String, tokens: Int) throws -> String {
        var s = Sampler(mode: .greedy)
        let ids = try Generator(model: m, tokenizer: tok).generate(ids: tok.encode(prompt), maxTokens: tokens, sampler: &s, stopAtEOS: false)
        return tok.decode(Array(ids.suffix(tokens))).trimmingCharacters(in: .whitespaces)
    }

    func testTokenAccuracyIsTheTeacherForcedArgmaxShare() throws {
        let (m, tok) = try EvalShardTests.model()
        var checked = 0, partial = 0
        for prompt in ["The capital of France is", "The sea of", "It is the capital of", "Paris is in"] {
            let own = try Self.continuation(m, tok, prompt, tokens: 3)
            for target in [own, own + " the sea", "Rome"] where !target.isEmpty {
                let got = try TargetScorer(model: m, tokenizer: tok).scores([(prompt, target)])[0]
                let (hits, n) = try Self.definedAccuracy(m, tok, prompt: prompt, target: target)
                XCTAssertEqual(got.tokenAccuracy, Double(hits) / Double(n), "\(prompt) → \(target)")
                XCTAssertEqual(got.top1, hits == n)
                checked += 1
                if hits > 0 && hits < n { partial += 1 }
            }
        }
        XCTAssertEqual(checked, 12)
        XCTAssertGreaterThan(partial, 0, "at least one case between 0 and 1, so the share itself is tested")
    }

    static let zsre: [EditRequest] = try! FactsFile.parse(Data("""
        [{"subject": "Paris", "src": "What is Paris the capital of?", "answers": ["France"], "alt": "Italy",
          "rephrase": "Paris is the capital of which country?", "loc": "nq question: where is the sea", "loc_ans": "the coast",
          "portability": {"New Question": "Which language is spoken in the country whose capital is Paris?", "New Answer": "Italian"}},
         {"subject": "the sea", "src": "What is the sea made of?", "answers": ["water"], "alt": "sand",
          "rephrase": "What does the sea consist of?", "loc": "nq question: who wrote the book", "loc_ans": "an art"},
         {"subject": "Rome", "src": "Where is Rome?", "answers": ["Italy"], "alt": "France",
          "rephrase": "In which country is Rome?", "loc": "nq question: what is the capital", "loc_ans": "Paris"}]
        """.utf8), name: "zsre.json", options: FactsOptions(zsreTarget: .alt))

    func testZsRERecordsAreScoredByTokenAccuracyAndShardExactly() throws {
        let (m, tok) = try EvalShardTests.model()
        let ev = CounterFactEvaluator(model: m, tokenizer: tok, generation: nil)
        let whole = try ev.evaluate(Self.zsre)
        let merged = try EvalShard.merge([try ev.evaluate(Array(Self.zsre[1...]), firstIndex: 1), try ev.evaluate([Self.zsre[0]])])
        XCTAssertEqual(merged, whole, "merged shards must equal the single run exactly")
        let r0 = whole.records[0]
        XCTAssertNil(r0.rewrite)
        let a = try XCTUnwrap(r0.accuracies)
        func acc(_ p: String, _ t: String) throws -> Double {
            let (h, n) = try Self.definedAccuracy(m, tok, prompt: p, target: t)
            return Double(h) / Double(n)
        }
        XCTAssertEqual(a.rewrite, try acc("What is Paris the capital of?", "Italy"))
        XCTAssertEqual(a.paraphrases, [try acc("Paris is the capital of which country?", "Italy")])
        XCTAssertEqual(a.neighborhood, [try acc("nq question: where is the sea?", "the coast")])
        XCTAssertEqual(a.portability, try acc("Which language is spoken in the country whose capital is Paris?", "Italian"))
        XCTAssertNil(whole.records[1].accuracies?.portability, "no portability question")
        let s = whole.summary()
        XCTAssertEqual(s.metrics[.efficacy]?.count, 3)
        XCTAssertEqual(s.metrics[.portability]?.count, 1)
        XCTAssertEqual(s[.efficacy]!, 100 * whole.records.map { $0.accuracies!.rewrite }.reduce(0, +) / 3, accuracy: 1e-9)
        XCTAssertNil(s.metrics[.efficacyTop1], "the NLL-comparison metrics do not apply")
        XCTAssertEqual(whole.knownIndices, [], "no true target, so no known facts")
    }

    func testFlatCounterFactComparesTheLocalityAnswerOnItsPrompt() throws {
        let (m, tok) = try EvalShardTests.model()
        let r = try FactsFile.parse(Data(#"""
            [{"case_id": 5, "prompt": "Paris is the capital of", "subject": "Paris", "target_new": "Rome", "ground_truth": "France",
              "rephrase_prompt": "The capital of Paris is", "locality_prompt": "The sea is", "locality_ground_truth": "the coast"}]
            """#.utf8), name: "cf.json")[0]
        let e = try CounterFactEvaluator(model: m, tokenizer: tok, generation: nil).evaluate(r, index: 0)
        let nll = try TargetScorer(model: m, tokenizer: tok).meanNLL([("The sea is", "Rome"), ("The sea is", "the coast")])
        XCTAssertEqual(e.neighborhood.count, 1)
        XCTAssertEqual(e.neighborhood[0].nllNew, nll[0], accuracy: 1e-5)  // other batch composition: float32 rounding
        XCTAssertEqual(e.neighborhood[0].nllTrue, nll[1], accuracy: 1e-5, "the locality answer, not ground_truth")
        XCTAssertNil(e.accuracies)
    }
}
