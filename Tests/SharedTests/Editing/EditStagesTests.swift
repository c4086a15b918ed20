// Editing methods as stages (issue 14 §3): each stage's defining identity on small matrices — ΔW (I − P) = 0
// whenever the projection is on (MEMIT+P), RECT keeps the stated fraction of entries and they are the
// largest relative changes, PRUNE maps every singular value above the bound to bound + ln(σ / bound) and
// keeps the rest and the singular vectors — then the stages through `alphaedit edit` on a synthetic model
// (recorded in the campaign's settings; a resume with other stages is refused) and the config keys.
import Foundation
import Shared
import XCTest

final class EditStagesTests: XCTestCase {
    /// K0 statistics of the synthetic model at layers 0 and 1 (v* needs a block above its layer).
    func statistics(_ model: String, _ corpus: String, sentences: Int) throws -> KeyStatistics {
        let m = try LlamaModel(path: model)
        return try CovarianceBuilder(model: m, tokenizer: try BPETokenizer(gguf: m.gguf), layers: [0, 1]).build(corpus: corpus, range: 0..<sentences)
    }

    func random(_ rows: Int, _ cols: Int, seed: UInt64, scale: Double = 1) throws -> Matrix64 {
        var rng = SplitMix64(seed: seed)
        return try Matrix64(rows: rows, cols: cols, values: (0..<(rows * cols)).map { _ in scale * Double(rng.gaussian()) })
    }

    func testProjectionLeavesThePreservedDirectionsAlone() throws {
        let f = 12, d = 5
        // C0 with 7 large and 5 tiny eigenvalues: the null space is 5-dimensional at τ = 1e-2.
        let k = try random(f, 7, seed: 1)
        let c0 = try (try k.times(k, transposeOther: true)).combined(1, 1e-4, Matrix64.identity(f))
        let p = try NullSpaceProjector(c0: c0, threshold: 1e-2, layer: 0)
        XCTAssertEqual(p.keptDimension, 5)
        let dw = try random(d, f, seed: 2)
        let projected = try StageMath.project(dw, basis: p.basis)
        // ΔW P (I − P) = ΔW P − ΔW P P = 0, and ΔW P k = 0 for the preserved keys k (columns of K).
        let pp = try StageMath.project(projected, basis: p.basis)
        XCTAssertLessThan(try projected.combined(1, -1, pp).maxAbs, 1e-12)
        XCTAssertLessThan(try projected.times(k).maxAbs / (dw.maxAbs * k.maxAbs), 1e-3)
        XCTAssertGreaterThan(try dw.times(k).maxAbs / (dw.maxAbs * k.maxAbs), 0.1, "unprojected, the keys move")
    }

    func testRectKeepsTheLargestRelativeChanges() throws {
        let dw = try random(4, 15, seed: 3)
        var rng = SplitMix64(seed: 4)
        let w = (0..<60).map { _ in Float(rng.gaussian()) }
        let kept = try StageMath.rect(dw, weights: w, fraction: 0.2)
        let nonzero = kept.values.indices.filter { kept.values[$0] != 0 }
        XCTAssertEqual(nonzero.count, 12, "20 % of 60 entries")
        for i in nonzero { XCTAssertEqual(kept.values[i], dw.values[i], "kept entries are unchanged") }
        let rel = dw.values.indices.map { abs(dw.values[$0]) / Double(abs(w[$0])) }
        let smallestKept = nonzero.map { rel[$0] }.min()!, largestDropped = Set(0..<60).subtracting(nonzero).map { rel[$0] }.max()!
        XCTAssertGreaterThanOrEqual(smallestKept, largestDropped)
        XCTAssertThrowsError(try StageMath.rect(dw, weights: w, fraction: 0))
        XCTAssertThrowsError(try StageMath.rect(dw, weights: Array(w.prefix(10)), fraction: 0.2))
    }

    func testPruneRestrainsOnlyTheSingularValuesAboveTheBound() throws {
        let delta = try random(6, 20, seed: 5, scale: 3)
        let before = try StageMath.singularValues(delta)
        let bound = (before[1] + before[2]) / 2   // two values above it
        let after = try StageMath.singularValues(try StageMath.prune(delta, bound: bound))
        for (s, t) in zip(before, after.sorted(by: >)) {
            let expected = s > bound ? bound + log(s / bound) : s
            XCTAssertEqual(t, expected, accuracy: 1e-9 * max(1, s))
        }
        XCTAssertLessThanOrEqual(after.max()!, bound + log(before[0] / bound) + 1e-9)
        // Singular vectors kept: Δ' = U diag(F(σ)) Vᵀ, so Δ'ᵀ Δ' and Δᵀ Δ share their eigenvectors: they commute.
        let restrained = try StageMath.prune(delta, bound: bound)
        let a = try restrained.times(restrained, transposeSelf: true), b = try delta.times(delta, transposeSelf: true)
        XCTAssertLessThan(try (try a.times(b)).combined(1, -1, try b.times(a)).maxAbs / (a.maxAbs * b.maxAbs), 1e-10)
        XCTAssertEqual(try StageMath.prune(delta, bound: before[0] * 2), delta, "nothing above the bound: unchanged")
        let (_, largest, shrunk) = try StageMath.pruneReporting(delta, bound: bound)
        XCTAssertEqual(largest, before[0], accuracy: 1e-9 * before[0], "what the log reports")
        XCTAssertEqual(shrunk, 2)
        XCTAssertEqual(StageMath.pruneValue(5, bound: 5), 5)
        XCTAssertEqual(StageMath.pruneValue(5 * M_E, bound: 5), 6, accuracy: 1e-12)
    }

    /// NAS: after a first batch has edited the weights, the second batch's v* targets have exactly the
    /// norms of the unedited model's outputs (read from a fresh copy of the file), and the weights end as
    /// they were plus the batch's ΔW (the unedited weights swapped in for NAS's forward are swapped back).
    func testNASAnchorsTargetsToTheUneditedModelsNorms() throws {
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 60)
        let m = try LlamaModel(path: path)
        let tok = try BPETokenizer(gguf: m.gguf)
        var hp = EditHyperparameters()
        hp.layers = [0, 1]; hp.vSteps = 6; hp.stages = EditStages(targets: .nas)
        let templates = ContextTemplates(groups: [["{}"]])
        let stats = try statistics(path, corpus, sentences: 60)
        let editor = try Editor(model: m, tokenizer: tok, hp: hp, method: .memit, templates: templates, projectors: nil, statistics: stats)
        let words = ["France", "Paris", "river", "tower"]
        let reqs = (0..<4).map { EditRequest(prompt: "The capital of {} is", subject: "the \(words[$0]) city", targetNew: words[($0 + 1) % 4]) }
        _ = try editor.apply(Array(reqs[0..<2]))
        let l = hp.layers[0], n = m.config.hidden * m.config.ffn
        let before = Array(UnsafeBufferPointer(start: m.weights.layers[l].down.ptr, count: n))
        let out = try editor.apply(Array(reqs[2..<4]))
        let fresh = try LlamaModel(path: path)
        let h0 = try XCTUnwrap(try KeyReader(model: fresh, tokenizer: tok).read(Array(reqs[2..<4]), layer: l, templates: templates,
                                                                                 outputLayer: hp.zLayer).outputs)
        for (i, z) in out.z.enumerated() {
            let ref = (0..<h0.rows).reduce(0.0) { $0 + h0.values[$1 * 2 + i] * h0.values[$1 * 2 + i] }.squareRoot()
            let norm = z.z.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            XCTAssertEqual(norm, ref, accuracy: 1e-5 * ref, "request \(i): ‖v*‖ = ‖h⁰‖")
        }
        let after = Array(UnsafeBufferPointer(start: m.weights.layers[l].down.ptr, count: n))
        let d = try XCTUnwrap(out.deltas[l])
        XCTAssertLessThan(zip(zip(after, before), d).map { abs($0.0 - $0.1 - $1) }.max() ?? 1, 1e-5, "W = W_before + ΔW")
    }

    /// MEMIT on K0 statistics of one sentence (far fewer keys than the 512 key dimensions): C0 is singular,
    /// and the error names the layer, the key count and the remedy instead of a bare Cholesky failure; the
    /// weights stay as they were.
    /// The synthetic model, its tokenizer and K0 statistics of `sentences` corpus sentences at layers 0 and 1.
    func syntheticFixture(sentences: Int) throws -> (LlamaModel, BPETokenizer, KeyStatistics) {
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: sentences)
        let m = try LlamaModel(path: path)
        return (m, try BPETokenizer(gguf: m.gguf), try statistics(path, corpus, sentences: sentences))
    }

    func testMemitOnTooFewK0KeysNamesTheProblem() throws {
        let (m, tok, stats) = try syntheticFixture(sentences: 1)
        var hp = EditHyperparameters()
        hp.layers = [0, 1]; hp.vSteps = 2
        let keys = stats.counts[0]
        XCTAssertLessThan(keys, m.config.ffn)
        let editor = try Editor(model: m, tokenizer: tok, hp: hp, method: .memit, templates: ContextTemplates(groups: [["{}"]]),
                                projectors: nil, statistics: stats)
        let n = m.config.hidden * m.config.ffn
        let before = Array(UnsafeBufferPointer(start: m.weights.layers[0].down.ptr, count: n))
        let req = EditRequest(prompt: "The capital of {} is", subject: "the France city", targetNew: "Paris")
        XCTAssertThrowsError(try editor.apply([req])) { error in
            guard case let .memitSystemSingular(layer, k, f, _)? = error as? EditError else { return XCTFail("got \(error)") }
            XCTAssertEqual(layer, 0); XCTAssertEqual(k, keys); XCTAssertEqual(f, m.config.ffn)
            let text = "\(error)"
            XCTAssertTrue(text.contains("layer 0") && text.contains("\(keys) keys for 512 dimensions") && text.contains("more sentences"), text)
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: m.weights.layers[0].down.ptr, count: n)), before, "nothing applied")
    }

    /// kept_c0_weight is AlphaEdit's (inside its projection): on MEMIT, or AlphaEdit without projection, the
    /// editor refuses it by name.
    func testKeptC0WeightOnlyWithAlphaEditsProjection() throws {
        let (m, tok, stats) = try syntheticFixture(sentences: 20)
        var hp = EditHyperparameters()
        hp.layers = [0, 1]; hp.keptC0Weight = 2000
        let projectors = try NullSpaceProjectorSet(statistics: stats, hyperparameters: hp)
        let t = ContextTemplates(groups: [["{}"]])
        XCTAssertNoThrow(try Editor(model: m, tokenizer: tok, hp: hp, method: .alphaedit, templates: t, projectors: projectors, statistics: nil))
        XCTAssertThrowsError(try Editor(model: m, tokenizer: tok, hp: hp, method: .memit, templates: t, projectors: nil, statistics: stats)) {
            XCTAssertTrue("\($0)".contains("kept_c0_weight") && "\($0)".contains("memit"), "\($0)")
        }
        hp.stages = EditStages(project: false)
        XCTAssertThrowsError(try Editor(model: m, tokenizer: tok, hp: hp, method: .alphaedit, templates: t, projectors: nil, statistics: nil)) {
            XCTAssertTrue("\($0)".contains("without projection"), "\($0)")
        }
    }

    func testStagesFromConfigAndTheirNames() throws {
        let c = try ClusterConfig.parse("project = true\nfilter = rect\nrect_fraction = 0.3\ntargets = encore\nencore_probability = 0.8\n")
        let s = try XCTUnwrap(c.hyperparameters.stages)
        XCTAssertEqual(s.project, true)
        XCTAssertEqual(s.filter, .rect)
        XCTAssertEqual(s.targets, .encore)
        XCTAssertEqual(s.rectFraction, 0.3)
        XCTAssertEqual(s.encoreProbability, 0.8)
        XCTAssertEqual(s.name(for: .memit), "memit+P, targets encore (p ≥ 0.8), filter rect (0.3)")
        XCTAssertEqual(EditStages().name(for: .alphaedit), "alphaedit")
        XCTAssertNil(try ClusterConfig.parse("filter = none\n").hyperparameters.stages, "the default is no stages")
        XCTAssertThrowsError(try ClusterConfig.parse("filter = magic")) {
            XCTAssertEqual("\($0)", #"config line 1: filter = "magic" is invalid (expected none, prune or rect)"#)
        }
        // A campaign's settings show the stages, and differ when they differ.
        var a = EditHyperparameters(), b = a
        b.stages = EditStages(project: true)
        let settings = { (h: EditHyperparameters) in
            CampaignSettings(method: .memit, model: "m", modelChecksum: "0", facts: "f", factsChecksum: "0", requestCount: 1, batchSize: 1,
                             hyperparameters: h, templateSeed: 0, corpus: "c", covSentences: 1)
        }
        let diff = settings(a).differences(from: settings(b))
        XCTAssertEqual(diff.map(\.key), ["hyperparameters.stages"], "\(diff)")
        a.stages = nil
        XCTAssertTrue(settings(a).differences(from: settings(a)).isEmpty)
    }

    /// `alphaedit edit --method memit --project` and `--filter rect|prune` on a synthetic model, in
    /// process: the committed ΔW satisfy their stage's identity, and a resume with other stages is refused.
    func testStagesThroughTheEditCommand() throws {
        let coordinator = try ClusterTestSupport.executable("alphaedit")
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 300)
        // τ at the median eigenvalue of C0 (layer 1): a null space of about half the directions.
        let c0 = try statistics(model, corpus, sentences: 300).mean(layer: 1)
        let spectrum = try NullSpaceProjector(c0: c0, threshold: 0, layer: 1).eigenvalues
        let tau = spectrum[spectrum.count / 2]
        try """
        model = \(URL(fileURLWithPath: model).lastPathComponent)
        threads = 2
        workers = in-process
        layers = 0-1
        v_steps = 10
        null_space_threshold = \(tau)
        corpus = corpus.jsonl
        """.write(toFile: dir + "/cluster.conf", atomically: true, encoding: .utf8)
        let facts = (0..<8).map { i in #"{"prompt": "The capital of {} is", "subject": "France \#(i)", "target": "Rome"}"# }
        try ("[" + facts.joined(separator: ",\n") + "]").write(toFile: dir + "/facts.json", atomically: true, encoding: .utf8)
        func edit(_ state: String, _ extra: [String]) throws -> (Int32, String) {
            let p = try ClusterTestSupport.start(coordinator, ["edit", "--config", dir + "/cluster.conf", "--facts", dir + "/facts.json",
                                                               "--batch-size", "4", "--cov-sentences", "300", "--state", dir + "/" + state] + extra,
                                                 stderr: dir + "/\(state).log")
            ClusterTestSupport.wait(p, seconds: 240, "edit \(state)")
            return (p.terminationStatus, ClusterTestSupport.read(dir + "/\(state).log"))
        }
        func deltas(_ state: String) throws -> [[Int: [Float]]] {
            let st = try EditState.load(directory: dir + "/" + state)
            return try st.manifest.batches.map { try BatchDeltas.read(from: try st.verified($0.deltas)).deltas }
        }
        // MEMIT+P: every batch's ΔW lies in the null space: ΔW (I − P) = 0.
        var (rc, said) = try edit("memit-p", ["--method", "memit", "--project"])
        XCTAssertEqual(rc, 0, said)
        let st = try EditState.load(directory: dir + "/memit-p")
        let cfg = try ClusterConfig.load(path: dir + "/cluster.conf")
        let statistics = try KeyStatistics.read(from: try st.verified(try XCTUnwrap(st.manifest.base)))
        let projectors = try NullSpaceProjectorSet(statistics: statistics, threshold: cfg.hyperparameters.nullSpaceThreshold)
        for p in projectors.projectors {
            print(String(format: "layer %d: null space keeps %d of %d directions at τ %.3g", p.layer, p.keptDimension, p.f, tau))
            if p.layer == 1 { XCTAssertTrue(p.keptDimension > 0 && p.keptDimension < p.f, "a partial null space at layer 1") }
        }
        XCTAssertEqual(st.manifest.hyperparameters.stages, EditStages(project: true), "the settings record the stages")
        // Its evaluation (`eval --state`) reports the campaign's method and stages, so a table or plot
        // of several evaluated states tells them apart.
        do {
            let m = try LlamaModel(path: model)
            var es = EvalCampaignSettings()
            es.state = dir + "/memit-p"; es.generalItems = 0; es.threads = 1; es.covCache = nil
            es.hp = cfg.hyperparameters
            let ev = CounterFactEvaluator(model: m, tokenizer: try BPETokenizer(gguf: m.gguf), generation: nil)
            let report = try EvalCampaign(model: m, tokenizer: ev.tokenizer, evaluator: ev, settings: es)
                .run(records: try FactsFile.read(path: dir + "/facts.json", offset: 0, limit: 8), firstIndex: 0, name: "facts.json")
            XCTAssertEqual(report.edits, 8)
            XCTAssertEqual(report.method, "memit")
            XCTAssertTrue(report.label.hasPrefix("memit+P"), report.label)
        }
        for batch in try deltas("memit-p") {
            for (l, d) in batch {
                let m = try Matrix64(rows: ClusterTestSupport.modelConfig.hidden, cols: ClusterTestSupport.modelConfig.ffn, values: d.map(Double.init))
                let basis = try projectors.projector(layer: l).basis
                let rest = try m.combined(1, -1, try StageMath.project(m, basis: basis))
                XCTAssertLessThan(rest.maxAbs, 1e-5 * max(m.maxAbs, 1e-12), "layer \(l): ΔW (I − P) = 0")
                if l == 1 { XCTAssertGreaterThan(m.maxAbs, 0, "layer 1 is edited inside its null space") }
            }
        }
        // A resume with other stages is refused, naming them.
        (rc, said) = try edit("memit-p", ["--method", "memit", "--no-project"])
        XCTAssertNotEqual(rc, 0)
        XCTAssertTrue(said.contains("hyperparameters.stages"), said)

        // RECT keeps 20 % of each layer's entries per batch.
        (rc, said) = try edit("rect", ["--method", "memit", "--filter", "rect"])
        XCTAssertEqual(rc, 0, said)
        for batch in try deltas("rect") {
            for (l, d) in batch {
                let nonzero = d.filter { $0 != 0 }.count
                XCTAssertEqual(Double(nonzero), 0.2 * Double(d.count), accuracy: 1, "layer \(l)")
            }
        }
        // PRUNE runs and bounds the accumulated update's singular values by σ̄ + ln(σ/σ̄).
        (rc, said) = try edit("prune", ["--method", "memit", "--filter", "prune"])
        XCTAssertEqual(rc, 0, said)
        XCTAssertEqual(try deltas("prune").count, 2)
    }
}
