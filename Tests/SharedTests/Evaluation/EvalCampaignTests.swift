// The pieces around the metrics: weighted F1 and answer parsing, the hidden shift, the report's
// one-line JSON and the plot, the MEMIT λm choice, and the whole protocol (edit + evaluate) on the
// synthetic model with small fixture files.
import Foundation
import Shared
import XCTest

final class EvalCampaignTests: XCTestCase {
    func testWeightedF1ByHand() {
        // gold a a b b, predicted a b b invalid: F1(a) = 2·1/(2+1) = 2/3, F1(b) = 2·1/(2+2) = 1/2;
        // weighted by support 2 and 2 → 7/12.
        XCTAssertEqual(weightedF1(gold: ["a", "a", "b", "b"], predicted: ["a", "b", "b", "invalid"]), 7.0 / 12.0, accuracy: 1e-12)
        XCTAssertEqual(weightedF1(gold: ["x", "y"], predicted: ["x", "y"]), 1)
        XCTAssertEqual(weightedF1(gold: ["x"], predicted: ["invalid"]), 0)
    }

    func testAnswerParsing() {
        XCTAssertEqual(GeneralTask.sst2.parse(" Positive."), "positive")
        XCTAssertEqual(GeneralTask.cola.parse("\nA: No, it"), "no")
        XCTAssertEqual(GeneralTask.rte.parse(" The sentence is"), "invalid")
        XCTAssertEqual(GeneralTask.mmlu.parse(" C. 36"), "C")
        XCTAssertEqual(GeneralTask.mmlu.parse(" a cat"), "invalid", "a lowercase article is not an option letter")
    }

    func testHiddenShiftByHand() throws {
        // h0 = (3, 4), h1 = (4, 3): cosine 24/25, ‖Δ‖ = √2 → √2/5, norms equal → 0.
        let a = HiddenStates(layer: 7, vectors: [[3, 4], [1, 0]]), b = HiddenStates(layer: 7, vectors: [[4, 3], [2, 0]])
        let s = try HiddenShift(before: a, after: b)
        XCTAssertEqual(s.meanCosine, (24.0 / 25.0 + 1) / 2, accuracy: 1e-12)
        XCTAssertEqual(s.meanRelativeChange, (2.0.squareRoot() / 5 + 1) / 2, accuracy: 1e-12)
        XCTAssertEqual(s.meanRelativeNormChange, 0.5, accuracy: 1e-12)
        XCTAssertThrowsError(try HiddenShift(before: a, after: HiddenStates(layer: 6, vectors: b.vectors)))
    }

    func testMemitLambdaChoice() {
        let t = [LambdaTrial(lambda: 15000, efficacy: 40, specificity: 80), LambdaTrial(lambda: 100, efficacy: 90, specificity: 70),
                 LambdaTrial(lambda: 10, efficacy: 100, specificity: 60)]
        XCTAssertEqual(MemitLambdaSweep.choose(t), 100)
        XCTAssertNil(MemitLambdaSweep.choose(Array(t.prefix(1))))
    }

    /// Fixture files: general sets of 2 items each, a perplexity corpus and a K0 corpus.
    func fixtures() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eval-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let sets: [String: String] = [
            "sst2": #"[{"sentence":"a fine film","label":1},{"sentence":"dull","label":0}]"#,
            "cola": #"[{"sentence":"The cat sat.","label":1},{"sentence":"Cat the sat.","label":0}]"#,
            "mrpc": #"[{"sentence1":"a","sentence2":"a","label":1},{"sentence1":"a","sentence2":"b","label":0}]"#,
            "rte": #"[{"sentence1":"a","sentence2":"a","label":0},{"sentence1":"a","sentence2":"b","label":1}]"#,
            "nli": #"[{"sentence1":"a","sentence2":"a","label":"entailment"},{"sentence1":"a","sentence2":"b","label":"not_entailment"}]"#,
            "mmlu": #"[{"question":"2+2?","subject":"m","choices":["1","2","3","4"],"answer":3},{"question":"1+0?","subject":"m","choices":["1","2","3","4"],"answer":0}]"#,
        ]
        for (k, v) in sets { try v.write(toFile: "\(dir)/\(k).json", atomically: true, encoding: .utf8) }
        // Enough distinct tokens (> F = 128 rows of keys) for MEMIT's C0 to be positive definite.
        let text = (0..<60).map { "The capital \($0) of France is Paris, number \($0 * 7919 % 1000) in \($0 * 31)." }.joined(separator: "\n")
        try text.write(toFile: "\(dir)/wiki.txt", atomically: true, encoding: .utf8)
        return dir
    }

    func testProtocolOnSyntheticModel() throws {
        let dir = try fixtures()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bad = GeneralTask.sst2.item(from: ["sentence": 3])
        XCTAssertNil(bad, "a mistyped item is refused")
        for method in [EditMethod.alphaedit, .memit] {
            let (m, tok) = try EvalShardTests.model(layers: 3)   // v* needs a block above the last edited layer
            var s = EvalCampaignSettings()
            s.method = method; s.batchSize = 2; s.generalEvery = 2; s.generalItems = 2; s.perplexitySentences = 5
            s.generalDirectory = dir; s.perplexityCorpus = dir + "/wiki.txt"; s.corpus = dir + "/wiki.txt"; s.covSentences = 60
            s.hp.layers = [0, 1]; s.hp.vSteps = 5; s.hp.nullSpaceThreshold = 1e9   // keep every direction: the tiny corpus spans little
            s.hiddenPrompts = ["The capital of France is", "It is"]
            let ev = CounterFactEvaluator(model: m, tokenizer: tok, generation: GenerationSettings(maxTokens: 6))
            s.checkpointDirectory = dir + "/out-\(method)"
            let campaign = EvalCampaign(model: m, tokenizer: tok, evaluator: ev, settings: s)
            let report = try campaign.run(records: Array(EvalShardTests.records.prefix(4)), firstIndex: 0, name: "fixture")
            // AlphaEdit's projectors are read from an unlinked file, a layer at a time: none stays in memory or on disk.
            XCTAssertEqual(campaign.editor?.readsProjectorsFromFile, method == .alphaedit)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: s.checkpointDirectory!).filter { $0.contains("projector") }, [])
            XCTAssertEqual(report.edits, 4)
            XCTAssertEqual(report.curve.map(\.edits), [0, 2, 4], "checkpoints every 2 edits")
            XCTAssertEqual(report.curve[1].summary.records, 2, "a checkpoint scores the records edited so far")
            XCTAssertEqual(report.curve.compactMap(\.general).count, 3)
            XCTAssertEqual(report.hiddenShift?.prompts, 2)
            XCTAssertNotEqual(report.preShard, report.postShard, "the edits change the scores")
            // The contract's last line: one JSON object with the metrics ×100, edits and seconds.
            let line = EvalReport.headlineJSON(report.headline(generation: true))
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            for k in ["efficacy", "generalization", "specificity", "fluency", "edits", "seconds"] { XCTAssertNotNil(obj[k], k) }
            XCTAssertFalse(line.contains("\n"))
            let svg = EvalPlot.svg([("a", EvalPlot.points(report)), ("b", EvalPlot.points(report))])
            XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 12, "6 panels × 2 series")
            // A panel no report has values for is left out (no generation: no fluency panel).
            var bare = EvalPlot.points(report)
            for i in bare.indices { bare[i].point.summary.metrics[.fluency] = nil; bare[i].point.general = nil }
            let svg2 = EvalPlot.svg([("a", bare)])
            XCTAssertEqual(svg2.components(separatedBy: "<polyline").count - 1, 3, "efficacy, generalization, specificity")
            XCTAssertFalse(svg2.contains("fluency") || svg2.contains("perplexity"))
            // `eval --plot` of one campaign's states after 2 and after 4 edits (each scored on the records
            // edited so far) draws one curve 0 → 2 → 4; another run stays a series of its own.
            let preShard = try XCTUnwrap(report.preShard), postShard = try XCTUnwrap(report.postShard)
            var half = report, whole = report, other = report
            half.records = "fixture [0, 2)"; half.recordCount = 2; half.edits = 2
            half.preShard = EvalShard(records: Array(preShard.records.prefix(2))); half.postShard = EvalShard(records: Array(postShard.records.prefix(2)))
            var zero = report.curve[0]
            zero.summary = try XCTUnwrap(half.preShard).summary()
            half.curve = [zero, report.curve[1]]
            whole.curve = [report.curve[0], report.curve[2]]
            other.method = "none"
            let series = EvalPlot.series([whole, other, half])
            XCTAssertEqual(series.map(\.label), [report.label, "none"])
            if method == .alphaedit { XCTAssertTrue(report.label.hasSuffix(", τ 1e+09)"), "the label names the threshold: \(report.label)") }
            XCTAssertEqual(series[0].points.map(\.point.edits), [0, 2, 4], "one curve through both states")
            XCTAssertEqual(series[0].points.map(\.point.summary.records), [2, 2, 4], "the smaller report's unedited point wins")
            XCTAssertEqual(series[0].points[1].point, report.curve[1])
            XCTAssertEqual(series[1].points.map(\.point.edits), [0, 2, 4])
            // One run's states and another method on the same records compare; another record set or model is named.
            XCTAssertNil(EvalPlot.mixedInputs([whole, other, half], paths: ["w/report.json", "o/report.json", "h/report.json"]))
            var elsewhere = other, otherModel = other
            elsewhere.records = "test.jsonl [0, 4)"; otherModel.model = "gemma.gguf"
            let said = try XCTUnwrap(EvalPlot.mixedInputs([whole, elsewhere, otherModel], paths: ["w/report.json", "e.json", "m.json"]))
            XCTAssertTrue(said.contains("different record sets: fixture [0 …) (w/report.json, m.json); test.jsonl [0 …) (e.json)"), said)
            XCTAssertTrue(said.contains("different models: ") && said.contains("gemma.gguf (m.json)"), said)
            XCTAssertTrue(report.markdown().contains("| \(report.label), 4 edits (2/batch) |"), "rows named by the run's label")
            XCTAssertTrue(report.markdown().contains("| \(report.label), known facts |"))
            let back = try JSONDecoder().decode(EvalReport.self, from: Data(try report.json().utf8))
            XCTAssertEqual(back.curve, report.curve)
        }
    }

    /// `--pre-from`: a second run reuses the first run's pre-edit row (and gets the same report), and
    /// a row made for other records, generation or general-capability settings is refused by name.
    func testPreFromReusesTheUneditedRowOfTheSameInputs() throws {
        let dir = try fixtures()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var s = EvalCampaignSettings()
        s.method = .memit; s.batchSize = 2; s.generalEvery = 2; s.generalItems = 2; s.perplexitySentences = 5
        s.generalDirectory = dir; s.perplexityCorpus = dir + "/wiki.txt"; s.corpus = dir + "/wiki.txt"; s.covSentences = 60
        s.hp.layers = [0, 1]; s.hp.vSteps = 5; s.modelIdentity = "synthetic 0"
        let gen = GenerationSettings(maxTokens: 4)
        let records = Array(EvalShardTests.records.prefix(2))
        func run(_ s: EvalCampaignSettings, _ recs: [EditRequest] = records, first: Int = 0, generation: GenerationSettings? = gen) throws -> EvalReport {
            let (m, tok) = try EvalShardTests.model(layers: 3)   // a fresh, unedited model each run
            let ev = CounterFactEvaluator(model: m, tokenizer: tok, generation: generation)
            return try EvalCampaign(model: m, tokenizer: tok, evaluator: ev, settings: s).run(records: recs, firstIndex: first, name: "fixture")
        }
        let a = try run(s)
        XCTAssertEqual(a.model, "synthetic 0")
        var r = s
        r.preFrom = ("a.json", try EvalReport.read(data: Data(try a.json().utf8)))
        let b = try run(r)
        XCTAssertEqual(b.preShard, a.preShard)
        XCTAssertEqual(b.curve, a.curve, "general capability at 0 edits reused, the rest recomputed equal")
        XCTAssertEqual(b.postShard, a.postShard)
        // `eval --plot`'s comparison: the unedited row, then one row per run named by its stages.
        var c = b
        c.hyperparameters?.stages = EditStages(project: true, filter: .rect)
        let table = EvalReport.comparison([a, c])
        XCTAssertTrue(table.contains("\n| unedited | 0 | "), table)
        XCTAssertTrue(table.contains("\n| memit (λm 15000) | 2 | "), table)
        XCTAssertTrue(table.contains("\n| memit+P, filter rect (0.2) (λm 15000) | 2 | "), table)
        XCTAssertEqual(table.split(separator: "\n").count, 5, "header, rule, unedited, two runs")
        func refused(_ run: () throws -> EvalReport, _ what: String) {
            XCTAssertThrowsError(try run()) { XCTAssertTrue("\($0)".hasPrefix("--pre-from a.json: \(what)"), "\($0)") }
        }
        // A report of part of the records (the first 2 of 3): those are taken, the third is evaluated here,
        // and the row equals a run that evaluated all three.
        let three = Array(EvalShardTests.records.prefix(3))
        var fresh = s
        fresh.method = nil
        let all3 = try run(fresh, three)
        var partial = r
        partial.method = nil
        let grown = try run(partial, three)
        XCTAssertEqual(grown.preShard, all3.preShard)
        XCTAssertEqual(grown.curve[0].general, a.curve[0].general, "general capability at 0 edits from the report")
        refused({ try run(r, [EvalShardTests.records[1], EvalShardTests.records[0]]) }, "its per-record results are not those of these records (record 0")
        refused({ try run(r, Array(EvalShardTests.records[2...3]), first: 2) }, "records fixture [0, 2) has none of this run's fixture [2, 4)")
        refused({ try run(r, generation: nil) }, "generation")
        var other = r
        other.generalItems = 1
        refused({ try run(other) }, "general capability with 2 items per task, this run asks for 1")
        other = r
        other.modelIdentity = "another 1"
        refused({ try run(other) }, "made with model synthetic 0, this run uses another 1")
        // A record with another target but the same case id (a zsRE record has none), and other snippets.
        var changed = records
        changed[1].targetNew += " Street"
        refused({ try run(r, changed) }, "record 1 differs from the one it evaluated")
        other = r
        other.evaluationInputs = "snippets 0123456789abcdef"
        refused({ try run(other) }, "made with no snippets, this run with snippets 0123456789abcdef")
    }
}
