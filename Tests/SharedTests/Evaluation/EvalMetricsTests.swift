// The CounterFact metric definitions of docs/algorithm.md §6 on hand-made records, n-gram entropy and TF-IDF
// on hand-computed examples, and the merge of shards.
import Foundation
import Shared
import XCTest

final class EvalMetricsTests: XCTestCase {
    func pair(_ new: Double, _ tru: Double, _ t1n: Bool = false, _ t1t: Bool = false) -> PairScore {
        PairScore(nllNew: new, nllTrue: tru, top1New: t1n, top1True: t1t)
    }

    func testRecordMetricsFollowTheDefinitions() {
        // Rewrite: new wins. Paraphrases: 1 of 2 wins. Neighborhood: true survives on 3 of 4.
        let r = RecordEvaluation(index: 0, caseID: 7, rewrite: pair(1.0, 2.0, true, false),
                                 paraphrases: [pair(1, 2), pair(3, 2, false, true)],
                                 neighborhood: [pair(3, 1, false, true), pair(3, 1), pair(2, 1.5), pair(1, 2, true, false)],
                                 fluency: 6.0, consistency: 0.25)
        let v = r.values
        XCTAssertEqual(v[.efficacy], 1)
        XCTAssertEqual(v[.efficacyTop1], 1)
        XCTAssertEqual(v[.generalization], 0.5)
        XCTAssertEqual(v[.generalizationTop1], 0)
        XCTAssertEqual(v[.specificity], 0.75)
        XCTAssertEqual(v[.specificityTop1], 0.25)
        XCTAssertEqual(v[.fluency], 6.0)
        // Ties count for neither side (strict comparisons, as the reference's `<`).
        let tie = RecordEvaluation(index: 1, caseID: nil, rewrite: pair(2, 2), paraphrases: [], neighborhood: [pair(1, 1)])
        XCTAssertEqual(tie.values[.efficacy], 0)
        XCTAssertEqual(tie.values[.specificity], 0)
        XCTAssertNil(tie.values[.generalization], "no paraphrase prompts: no value, not 0")
        XCTAssertEqual(tie.rewrite?.prefersTrue, false)
    }

    func testSummaryMeanAndStandardError() {
        // Efficacy values 1, 0, 1, 1: mean 75, sample sd 0.5, SE 0.5/2 = 0.25 → ×100: 25.
        let recs = [(1.0, 2.0), (2.0, 1.0), (0.5, 1.0), (0.1, 0.2)].enumerated().map { i, p in
            RecordEvaluation(index: i, caseID: i, rewrite: pair(p.0, p.1), paraphrases: [], neighborhood: [])
        }
        let s = EvalSummary(recs)
        XCTAssertEqual(s.records, 4)
        XCTAssertEqual(s.metrics[.efficacy]?.mean ?? .nan, 75, accuracy: 1e-12)
        XCTAssertEqual(s.metrics[.efficacy]?.standardError ?? .nan, 25, accuracy: 1e-12)
        XCTAssertNil(s.metrics[.fluency])
        // Known facts: the record whose model prefers the true target (index 1).
        let shard = EvalShard(records: recs)
        XCTAssertEqual(shard.knownIndices, [1])
        XCTAssertEqual(shard.summary(only: [1])[.efficacy], 0)
    }

    func testMergeOrdersShardsAndRejectsDuplicates() throws {
        let recs = (0..<5).map { RecordEvaluation(index: $0, caseID: $0, rewrite: pair(Double($0), 2), paraphrases: [], neighborhood: []) }
        let merged = try EvalShard.merge([EvalShard(records: Array(recs[3...])), EvalShard(records: Array(recs[..<3]))])
        XCTAssertEqual(merged, EvalShard(records: recs))
        XCTAssertThrowsError(try EvalShard.merge([EvalShard(records: recs), EvalShard(records: [recs[2]])])) {
            XCTAssertEqual($0 as? EvalShardError, .duplicateRecord(index: 2))
        }
        // A shard survives a JSON round trip unchanged (what a worker sends back).
        let data = try JSONEncoder().encode(merged)
        XCTAssertEqual(try JSONDecoder().decode(EvalShard.self, from: data), merged)
    }

    func testNGramEntropyByHand() {
        XCTAssertEqual(NGramEntropy.words("Hello, world! It isn't U.S. well-known"),
                       ["Hello", ",", "world", "!", "It", "isn't", "U.S", ".", "well-known"])
        // "a b a b": bigrams ab, ba, ab → H2 = −(2/3 log2 2/3 + 1/3 log2 1/3) = 0.918296;
        // trigrams aba, bab → H3 = 1; score = (2/3·H2 + 4/3·H3)/2 = 0.972766.
        XCTAssertEqual(NGramEntropy.entropy(["a", "b", "a", "b"], n: 2), 0.9182958340544896, accuracy: 1e-12)
        XCTAssertEqual(NGramEntropy.score("a b a b"), 0.9727652780181632, accuracy: 1e-12)
        // A repeated word: a single bigram → 0 bits; too short a text → 0.
        XCTAssertEqual(NGramEntropy.score("go go go go"), 0)
        XCTAssertEqual(NGramEntropy.score("one"), 0)
    }

    func testTFIDFByHand() {
        // Corpus of 3 documents; "a" is one character and not a token. df: the 2, cat 2, sat 2, dog 1.
        // idf = ln((1+3)/(1+df)) + 1. cos("the cat", "the dog") = idf_the² / (√2·idf_the · √(idf_the² + idf_dog²)).
        let t = TFIDF(corpus: ["The cat sat", "the dog sat", "a cat"])
        XCTAssertEqual(t.idf["the"] ?? .nan, log(4.0 / 3.0) + 1, accuracy: 1e-12)
        XCTAssertEqual(t.idf["dog"] ?? .nan, log(2.0) + 1, accuracy: 1e-12)
        XCTAssertNil(t.idf["a"])
        XCTAssertEqual(t.similarity("the cat", "THE DOG"), 0.4280460350631185, accuracy: 1e-12)
        XCTAssertEqual(t.similarity("cat cat", "a cat!"), 1, accuracy: 1e-12)
        XCTAssertEqual(t.similarity("zebra", "the cat"), 0, "unknown words carry no weight")
        let s = AttributeSnippets(snippets: ["P1": ["Paris": ["the cat sat", "the dog sat"]], "P2": ["Rome": ["a cat"]]])
        XCTAssertEqual(s.tfidf.documents, 3)
        // "the cat" vs "a cat": idf(the) = idf(cat), so the cosine is 1/√2.
        XCTAssertEqual(s.consistency(texts: ["the", "cat"], relation: "P2", object: "Rome") ?? .nan, 1 / 2.0.squareRoot(), accuracy: 1e-12)
        XCTAssertNil(s.consistency(texts: ["x"], relation: "P2", object: "Paris"))
    }
}
