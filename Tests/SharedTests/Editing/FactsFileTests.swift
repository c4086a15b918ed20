// Facts files: both schemas in both layouts, every rejection with its exact message, and the real
// pararel-cf dev set.
import Foundation
import Shared
import XCTest

final class FactsFileTests: XCTestCase {
    private func parse(_ text: String, name: String = "facts.jsonl", offset: Int = 0, limit: Int? = nil) throws -> [EditRequest] {
        try FactsFile.parse(Data(text.utf8), name: name, offset: offset, limit: limit)
    }

    private func assertError(_ text: String, name: String = "facts.jsonl", _ expected: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(text, name: name), file: file, line: line) { error in
            XCTAssertTrue(error is FactsError, "\(type(of: error))", file: file, line: line)
            XCTAssertEqual("\(error)", expected, file: file, line: line)
        }
    }

    static let counterFact = """
        {"case_id": 7, "relation_id": "P30", "requested_rewrite": {"prompt": "{} is located in", "subject": "Don Juan Pond", \
        "target_true": {"str": "Antarctica"}, "target_new": {"str": "Asia"}}, "paraphrase_prompts": ["a", "b"], \
        "neighborhood_prompts": ["n1"], "attribute_prompts": ["x"], "generation_prompts": ["g1", "g2"]}
        """

    func testCounterFactRecordAsLinesAndArray() throws {
        let expected = EditRequest(caseID: 7, prompt: "{} is located in", subject: "Don Juan Pond", targetNew: "Asia",
                                   targetTrue: "Antarctica", relationID: "P30", paraphrasePrompts: ["a", "b"],
                                   neighborhoodPrompts: ["n1"], generationPrompts: ["g1", "g2"])
        XCTAssertEqual(try parse(Self.counterFact + "\n"), [expected])
        XCTAssertEqual(try parse("[" + Self.counterFact + "]", name: "facts.json"), [expected])
        XCTAssertEqual(expected.filledPrompt, "Don Juan Pond is located in")
        // Lists and ids are optional.
        let bare = try parse(#"{"requested_rewrite": {"prompt": "{} is in", "subject": "S", "target_new": {"str": "T"}}}"#)
        XCTAssertEqual(bare, [EditRequest(prompt: "{} is in", subject: "S", targetNew: "T")])
    }

    func testSimpleRecordsAsLinesAndArrayWithOffsetAndLimit() throws {
        let lines = (0..<5).map { #"{"prompt": "The capital of {} is", "subject": "C\#($0)", "target": "T\#($0)"}"# }
        let jsonl = lines.joined(separator: "\n\n")  // blank lines are skipped
        let all = try parse(jsonl)
        XCTAssertEqual(all.map(\.subject), ["C0", "C1", "C2", "C3", "C4"])
        XCTAssertEqual(all[2], EditRequest(prompt: "The capital of {} is", subject: "C2", targetNew: "T2"))
        XCTAssertEqual(try parse(jsonl, offset: 1, limit: 2).map(\.subject), ["C1", "C2"])
        let array = "[\n" + lines.joined(separator: ",\n") + "\n]"
        XCTAssertEqual(try parse(array, name: "facts.json", offset: 3).map(\.targetNew), ["T3", "T4"])
        XCTAssertEqual(try parse(array, name: "facts.json", offset: 4, limit: 9).map(\.targetNew), ["T4"])
        // A limit as large as Int allows (it used to overflow offset + limit and trap).
        XCTAssertEqual(try parse(array, name: "facts.json", offset: 1, limit: Int.max).count, 4)
        XCTAssertEqual(try parse(jsonl, offset: 1, limit: Int.max).count, 4)
        // A UTF-8 byte-order mark before an array or the first line.
        XCTAssertEqual(try parse("\u{FEFF}" + array, name: "facts.json").count, 5)
        XCTAssertEqual(try parse("\u{FEFF}" + jsonl).count, 5)
        // A simple record with one field of another schema is read as that schema, and its error says so.
        assertError(#"{"prompt": "The capital of {} is", "subject": "X", "target": "Y", "ground_truth": "Z"}"#,
                    #"facts.jsonl line 1 (read as counterfact-flat, for its "ground_truth" field; --format simple reads {prompt, subject, target}): "prompt" does not contain the subject "X""#)
        // One pretty-printed object is named as such, not as "line 1: not valid JSON".
        assertError("{\n  \"prompt\": \"{} is\",\n  \"subject\": \"S\", \"target\": \"T\"\n}\n",
                    "facts.jsonl: one JSON object over several lines; a facts file is one object a line (JSON lines) or one array of objects")
    }

    func testRejectionsNameTheLineAndTheProblem() {
        let good = #"{"prompt": "{} is", "subject": "S", "target": "T"}"#
        assertError(good + "\n" + good + "\n" + #"{"prompt": "The capital is", "subject": "France", "target": "Paris"}"#,
                    #"facts.jsonl line 3: prompt "The capital is" has no {} for the subject"#)
        assertError(#"{"prompt": "{} and {}", "subject": "S", "target": "T"}"#,
                    #"facts.jsonl line 1: prompt "{} and {}" has 2 {} (exactly one, for the subject, is allowed)"#)
        assertError(good + "\n\n" + #"{"prompt": "{} is", "subject": "", "target": "T"}"#,
                    #"facts.jsonl line 3: "subject" is empty"#)
        assertError(#"{"prompt": "{} is", "subject": "  ", "target": "T"}"#, #"facts.jsonl line 1: "subject" is empty"#)
        assertError(#"{"prompt": "{} is", "target": "T"}"#, #"facts.jsonl line 1: missing "subject""#)
        assertError(#"{"prompt": "{} is", "subject": "S", "target": ""}"#, #"facts.jsonl line 1: "target" is empty"#)
        assertError(#"{"prompt": "{} is", "subject": "S"}"#, #"facts.jsonl line 1: missing "target""#)
        assertError(#"{"prompt": "{} is", "subject": "S", "target": null}"#, #"facts.jsonl line 1: missing "target""#)
        assertError(#"{"subject": "S", "target": "T"}"#, #"facts.jsonl line 1: missing "prompt""#)
        assertError(#"{"prompt": "{} is", "subject": 3, "target": "T"}"#, #"facts.jsonl line 1: "subject" must be a string"#)
        assertError(good + "\n{\"prompt\": ", #"facts.jsonl line 2: not valid JSON"#)
        assertError(#"["a"]"# + "\n", name: "facts.jsonl", #"facts.jsonl index 0: not a JSON object"#)
        assertError("\"just a string\"", #"facts.jsonl line 1: not a JSON object"#)
        assertError("[" + good + ", ", name: "facts.json", "facts.json: not valid JSON")
        assertError("", "facts.jsonl: no records")
        assertError("[]", name: "facts.json", "facts.json: no records")
    }

    func testCounterFactRejectionsUseTheFieldPath() {
        func cf(_ rewrite: String, extra: String = "") -> String { #"{"case_id": 1, "requested_rewrite": "# + rewrite + extra + "}" }
        assertError(cf(#"{"prompt": "The capital is", "subject": "S", "target_new": {"str": "T"}}"#),
                    #"facts.jsonl line 1: prompt "The capital is" has no {} for the subject"#)
        assertError(cf(#"{"prompt": "{} is", "subject": "", "target_new": {"str": "T"}}"#),
                    #"facts.jsonl line 1: "requested_rewrite.subject" is empty"#)
        assertError(cf(#"{"prompt": "{} is", "target_new": {"str": "T"}}"#),
                    #"facts.jsonl line 1: missing "requested_rewrite.subject""#)
        assertError(cf(#"{"prompt": "{} is", "subject": "S", "target_new": {"str": ""}}"#),
                    #"facts.jsonl line 1: "requested_rewrite.target_new.str" is empty"#)
        assertError(cf(#"{"prompt": "{} is", "subject": "S"}"#),
                    #"facts.jsonl line 1: missing "requested_rewrite.target_new""#)
        assertError(cf(#"{"prompt": "{} is", "subject": "S", "target_new": "T"}"#),
                    #"facts.jsonl line 1: "requested_rewrite.target_new" must be an object"#)
        assertError(cf(#"{"prompt": "{} is", "subject": "S", "target_new": {"str": "T"}}"#, extra: #", "paraphrase_prompts": "p""#),
                    #"facts.jsonl line 1: "paraphrase_prompts" must be a list of strings"#)
        assertError(#"{"case_id": true, "requested_rewrite": {"prompt": "{} is", "subject": "S", "target_new": {"str": "T"}}}"#,
                    #"facts.jsonl line 1: "case_id" must be an integer"#)
        assertError(#"{"case_id": 1.5, "requested_rewrite": {"prompt": "{} is", "subject": "S", "target_new": {"str": "T"}}}"#,
                    #"facts.jsonl line 1: "case_id" must be an integer"#)
        assertError(#"[{"prompt": "{} is", "subject": "S", "target": "T"}, {"requested_rewrite": {"prompt": "x", "subject": "S", "target_new": {"str": "T"}}}]"#,
                    name: "facts.json", #"facts.json index 1: prompt "x" has no {} for the subject"#)
    }

    func testSelectionErrors() throws {
        let good = #"{"prompt": "{} is", "subject": "S", "target": "T"}"#
        XCTAssertThrowsError(try parse(good, offset: -1)) { XCTAssertEqual("\($0)", "facts selection: offset -1 is negative") }
        XCTAssertThrowsError(try parse(good, limit: 0)) { XCTAssertEqual("\($0)", "facts selection: limit 0 must be at least 1") }
        XCTAssertThrowsError(try parse(good, offset: 1)) { XCTAssertEqual("\($0)", "facts.jsonl: no records after skipping 1") }
        // A bad record outside the selection does not stop the selected ones.
        XCTAssertEqual(try parse(good + "\n{\"prompt\": \"no slot\"}", limit: 1).count, 1)
        XCTAssertThrowsError(try FactsFile.read(path: "/nonexistent/facts.jsonl")) {
            XCTAssertEqual("\($0)", "cannot read facts file /nonexistent/facts.jsonl: No such file or directory")
        }
    }

    func testRealDevSetParses() throws {
        let url = try RepoPaths.sharedFile("data/pararel-cf/dev.jsonl")
        let t0 = Date()
        let all = try FactsFile.read(path: url.path)
        print("pararel-cf dev: \(all.count) records in \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
        XCTAssertEqual(all.count, 5000)
        XCTAssertEqual(all[0].caseID, 0)
        XCTAssertEqual(all[0].relationID, "P407")
        XCTAssertEqual(all[0].filledPrompt, "The language of Madame Figaro is")
        XCTAssertEqual(all[0].targetNew, "Bulgarian")
        XCTAssertEqual(all[0].targetTrue, "French")
        XCTAssertEqual(all[0].paraphrasePrompts.count, 2)
        XCTAssertEqual(all[0].neighborhoodPrompts.count, 10)
        XCTAssertEqual(all[0].generationPrompts.count, 6)
        XCTAssertEqual(all.compactMap(\.caseID), Array(0..<5000))
        XCTAssertEqual(try FactsFile.read(path: url.path, offset: 4990, limit: 20).map(\.caseID), (4990..<5000).map { $0 })
    }

    // MARK: zsRE and flat CounterFact (docs/algorithm.md §7)

    static let zsreRecord = #"{"subject": "IAAF Combined Events Challenge", "src": "When was the inception of IAAF Combined Events Challenge?", "pred": "2011", "rephrase": "When was the IAAF Combined Events Challenge launched?", "alt": "2006", "answers": ["1998"], "loc": "nq question: what is the name of the last episode of spongebob", "loc_ans": "The String", "portability": {"New Question": "What type of sports event is the IAAF Combined Events Challenge?", "New Answer": "Athletics"}}"#

    func testZsRERecordMapsAsTheAuthorsCodeDoes() throws {
        let r = try XCTUnwrap(try parse(Self.zsreRecord).first)
        XCTAssertEqual(r, EditRequest(prompt: "When was the inception of {}?", subject: "IAAF Combined Events Challenge",
                                      targetNew: "1998", paraphrasePrompts: ["When was the IAAF Combined Events Challenge launched?"],
                                      neighborhoodPrompts: ["nq question: what is the name of the last episode of spongebob?"],
                                      neighborhoodAnswer: "The String"))
        // EasyEdit's variant: the `alt` target, and then the portability question applies.
        let alt = try FactsFile.parse(Data(Self.zsreRecord.utf8), name: "z", options: FactsOptions(zsreTarget: .alt))[0]
        XCTAssertEqual(alt.targetNew, "2006")
        XCTAssertEqual(alt.portability, EditRequest.Portability(question: "What type of sports event is the IAAF Combined Events Challenge?", answer: "Athletics"))
    }

    func testBrokenZsREAndFlatCounterFactRecordsAreRefusedWithTheFieldAtFault() {
        func zsre(_ change: (inout [String: Any]) -> Void) -> String {
            var o = try! JSONSerialization.jsonObject(with: Data(Self.zsreRecord.utf8)) as! [String: Any]
            change(&o)
            return String(decoding: try! JSONSerialization.data(withJSONObject: o, options: .sortedKeys), as: UTF8.self)
        }
        assertError(zsre { $0["src"] = nil }, #"facts.jsonl line 1: missing "src""#)
        assertError(zsre { $0["src"] = "When was it founded?" },
                    #"facts.jsonl line 1: "src" does not contain the subject "IAAF Combined Events Challenge""#)
        assertError(zsre { $0["answers"] = [String]() }, #"facts.jsonl line 1: missing "answers[0]""#)
        assertError(zsre { $0["answers"] = " " }, #"facts.jsonl line 1: "answers" must be a list of strings"#)
        assertError(zsre { $0["loc_ans"] = nil }, #"facts.jsonl line 1: missing "loc_ans""#)
        assertError(zsre { $0["rephrase"] = 3 }, #"facts.jsonl line 1: "rephrase" must be a string"#)
        assertError(zsre { $0["portability"] = ["New Question": "Q?"] }, #"facts.jsonl line 1: missing "portability.New Answer""#)
        let flat = #"{"case_id": 3087, "prompt": "David Robinson professionally plays the sport", "target_new": "baseball", "subject": "David Robinson", "ground_truth": "basketball", "rephrase_prompt": "David Robinson's greatest weakness is", "locality_prompt": "Shaquille O'Neal plays", "locality_ground_truth": "basketball"}"#
        XCTAssertEqual(try parse(flat), [EditRequest(caseID: 3087, prompt: "{} professionally plays the sport", subject: "David Robinson",
                                                     targetNew: "baseball", targetTrue: "basketball",
                                                     paraphrasePrompts: ["David Robinson's greatest weakness is"],
                                                     neighborhoodPrompts: ["Shaquille O'Neal plays"], neighborhoodAnswer: "basketball")])
        assertError(flat.replacingOccurrences(of: #""ground_truth": "basketball", "#, with: ""),
                    #"facts.jsonl line 1: missing "ground_truth""#)
        XCTAssertThrowsError(try FactsFile.parse(Data(flat.utf8), name: "f", options: FactsOptions(format: .zsre))) {
            XCTAssertEqual("\($0)", #"f line 1: missing "src""#, "a named format is not second-guessed")
        }
        assertError(flat.replacingOccurrences(of: "David Robinson professionally", with: "He professionally"),
                    #"facts.jsonl line 1: "prompt" does not contain the subject "David Robinson""#)
        assertError(flat.replacingOccurrences(of: #""locality_prompt": "Shaquille O'Neal plays""#, with: #""locality_prompt": ["x"]"#),
                    #"facts.jsonl line 1: "locality_prompt" must be a string"#)
    }

    func testTheRealZsREAndCounterFactSamplesLoadWhole() throws {
        let z = try FactsFile.read(path: try RepoPaths.sharedFile("data/zsre/zsre_mend_eval_portability.dev.json").path)
        XCTAssertEqual(z.count, 537)
        XCTAssertTrue(z.allSatisfy { $0.neighborhoodAnswer != nil && $0.targetTrue == nil && $0.portability == nil })
        let za = try FactsFile.read(path: try RepoPaths.sharedFile("data/zsre/zsre_mend_eval_portability.dev.json").path,
                                    options: FactsOptions(zsreTarget: .alt))
        XCTAssertEqual(za.filter { $0.portability != nil }.count, 537)
        let c = try FactsFile.read(path: try RepoPaths.sharedFile("data/counterfact/counterfact-edit.dev.json").path)
        XCTAssertEqual(c.count, 500)
        XCTAssertTrue(c.allSatisfy { $0.targetTrue != nil && $0.neighborhoodPrompts.count == 1 && $0.prompt.contains("{}") })
    }
}
