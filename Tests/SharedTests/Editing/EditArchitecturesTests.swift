// The Eiffel Tower → Rome edit on Qwen2.5-0.5B (qwen2) and Gemma 3 270M (gemma3) with each model's
// catalog layers: the edit sticks, "The official language of Brazil is" still continues " Portuguese",
// and the exported GGUF (edited ffn_down as F32) reproduces the edited answers in our reader.
import Foundation
import Shared
import XCTest

final class EditArchitecturesTests: XCTestCase {
    func greedyNext(_ m: LlamaModel, _ tok: BPETokenizer, _ prompt: String) throws -> String {
        let ids = tok.encode(prompt, addSpecial: true)
        let r = try m.forward(TokenBatch([ids]), logitRows: [ids.count - 1])
        return tok.decode([Int32(Sampler.argmax(r.logits(at: 0)))])
    }

    func testQwen2EiffelTowerToRome() throws { try edit("qwen2.5-0.5b", sentences: 300) }
    func testGemma3EiffelTowerToRome() throws { try edit("gemma3-270m", sentences: 500) }

    func edit(_ name: String, sentences: Int) throws {
        let m = try LlamaModel(path: try RepoPaths.requireModel(named: name))
        let tok = try BPETokenizer(gguf: m.gguf)
        let hp = try XCTUnwrap(ModelCatalog.named(name)).hyperparameters
        let corpus = try RepoPaths.sharedFile("data/wiki-triplets/trex.jsonl").path
        let stats = try CovarianceBuilder(model: m, tokenizer: tok, layers: hp.layers).build(corpus: corpus, range: 0..<sentences)
        let proj = try NullSpaceProjectorSet(statistics: stats, hyperparameters: hp)  // the catalog's τ or ρ
        for p in proj.projectors { print("\(name) layer \(p.layer): kept \(p.keptDimension)/\(p.f)") }
        XCTAssertEqual(try greedyNext(m, tok, "The official language of Brazil is"), " Portuguese", "\(name) before the edit")
        let templates = try ContextTemplates.generate(model: m, tokenizer: tok, seed: 1)
        let editor = try Editor(model: m, tokenizer: tok, hp: hp, method: .alphaedit, templates: templates,
                                projectors: proj, statistics: nil)
        let plain = ContextTemplates(groups: [["{}"]])
        let h0 = try XCTUnwrap(try KeyReader(model: m, tokenizer: tok).read(
            [EditRequest(prompt: "The {} is in", subject: "Eiffel Tower", targetNew: "Rome")], layer: hp.zLayer,
            templates: plain, outputLayer: hp.zLayer).outputs).values
        let out = try editor.apply([EditRequest(prompt: "The {} is in", subject: "Eiffel Tower", targetNew: "Rome")])
        // How close the edited model's z-layer output comes to the v* target (the catalog quotes it).
        let (_, hAfter, _) = try KeyReader(model: m, tokenizer: tok).read(
            [EditRequest(prompt: "The {} is in", subject: "Eiffel Tower", targetNew: "Rome")], layer: hp.zLayer,
            templates: ContextTemplates(groups: [["{}"]]), outputLayer: hp.zLayer)
        let zz = out.z[0].z, ha = hAfter?.values ?? []
        let dist = zip(ha, zz).reduce(0.0) { $0 + ($1.0 - Double($1.1)) * ($1.0 - Double($1.1)) }.squareRoot() / zz.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        print("\(name): layers \(hp.layers): ‖h − z‖/‖z‖ after the edit \(dist); ‖δ‖ \(out.z[0].deltaNorm), ‖h0‖ \(out.z[0].h0Norm)")
        // The batch's own measure of it: the share of v*'s change z − h0 the update made.
        func distance(_ a: [Double], _ z: [Float]) -> Double { zip(a, z).reduce(0.0) { $0 + ($1.0 - Double($1.1)) * ($1.0 - Double($1.1)) }.squareRoot() }
        XCTAssertEqual(out.reached.count, 1)
        XCTAssertEqual(out.reached[0], 1 - distance(ha, zz) / distance(h0, zz), accuracy: 1e-6)
        print("\(name): \(out.reachedSummary(layer: hp.zLayer) ?? "")")
        XCTAssertGreaterThan(out.reached[0], 0.8, "\(name): the update makes most of v*'s change")
        print("\(name): v* loss \(out.z[0].losses.first?.total ?? 0) → \(out.z[0].losses.last?.total ?? 0), total \(out.totalSeconds) s")
        XCTAssertEqual(try greedyNext(m, tok, "The Eiffel Tower is in"), " Rome", "\(name) after the edit")
        XCTAssertEqual(try greedyNext(m, tok, "The official language of Brazil is"), " Portuguese", "\(name) after the edit")
        // Export: the edited ffn_down tensors as F32, read back by our reader.
        var replaced: [String: [Float]] = [:]
        for l in hp.layers { replaced[GGUFNames.ffnDown(l)] = m.weights.layers[l].down.array }
        let path = TestPaths.temporaryFile("edited-\(name).gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try GGUFWriter.copy(from: m.gguf, replacing: replaced).write(to: path)
        let e = try LlamaModel(path: path)
        XCTAssertEqual(try greedyNext(e, tok, "The Eiffel Tower is in"), " Rome", "\(name) exported")
        XCTAssertEqual(try greedyNext(e, tok, "The official language of Brazil is"), " Portuguese", "\(name) exported")
    }
}
