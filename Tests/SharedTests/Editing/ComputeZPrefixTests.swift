// v* with the rows before the subject's last token cached (ComputeZ.reusePrefix) against v* that
// runs every row in every step: same losses and z up to float rounding.
import Foundation
import Shared
import XCTest

final class ComputeZPrefixTests: XCTestCase {
    func relDiff(_ a: [Float], _ b: [Float]) -> Float {
        sqrt(zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }) / max(sqrt(b.reduce(0) { $0 + $1 * $1 }), 1e-30)
    }

    func compare(_ model: LlamaModel, _ tok: BPETokenizer, hp: EditHyperparameters, _ requests: [EditRequest],
                 templates: ContextTemplates, tol: Float) throws {
        var plain = ComputeZ(model: model, tokenizer: tok, hp: hp)
        plain.reusePrefix = false
        let cached = ComputeZ(model: model, tokenizer: tok, hp: hp)
        var t0 = Date()
        let a = try plain.run(requests, templates: templates)
        let ta = Date().timeIntervalSince(t0)
        t0 = Date()
        let b = try cached.run(requests, templates: templates)
        print(String(format: "v* every row %.2f s, cached prefix %.2f s", ta, Date().timeIntervalSince(t0)))
        for (x, y) in zip(a, b) {
            let dz = relDiff(y.z, x.z)
            let dl = zip(x.losses, y.losses).map { abs($0.total - $1.total) / max(abs($0.total), 1e-6) }.max() ?? 0
            print("‖Δz‖/‖z‖ = \(dz), max relative loss diff \(dl), passes \(x.losses.count) / \(y.losses.count), "
                  + "‖δ‖ \(x.deltaNorm), loss \(x.losses.first?.total ?? 0) → \(x.losses.last?.total ?? 0)")
            XCTAssertGreaterThan(y.deltaNorm, 0)
            XCTAssertEqual(x.losses.count, y.losses.count)
            XCTAssertLessThanOrEqual(dz, tol)
            XCTAssertLessThanOrEqual(dl, 10 * tol)
        }
    }

    /// Synthetic model (4 layers, δ at block 1), three requests with templates of several lengths.
    func testSyntheticModelSameZ() throws {
        let model = try LlamaModel(gguf: GGUFFile(bytes: SyntheticModel.writer(SyntheticConfig(layers: 4)).bytes()))
        let tok = try BPETokenizer(gguf: model.gguf)
        var hp = EditHyperparameters()
        hp.layers = [0, 1]; hp.vSteps = 8
        let requests = [
            EditRequest(prompt: "The home of {} is", subject: "the big cat", targetNew: "a red house"),
            EditRequest(prompt: "{} speaks", subject: "Anna", targetNew: "French"),
            EditRequest(prompt: "In the city of {}, people eat", subject: "old Rome town", targetNew: "bread"),
        ]
        let templates = ContextTemplates(groups: [["{}"], ["A cat sat on the mat. {}", "I see. {}"]])
        try compare(model, tok, hp: hp, requests, templates: templates, tol: 1e-5)
    }

    /// SmolLM2, the first three dev.jsonl requests with the reference's context templates, 12 passes.
    func testRealRequestsSameZ() throws {
        let (m, tok) = try ModelFixtureTests.load()
        let facts = try RepoPaths.sharedFile("data/pararel-cf/dev.jsonl").path
        let url = try RepoPaths.sharedFile("fixtures/alphaedit/context_templates.json")
        let groups = try JSONDecoder().decode([[String]].self, from: Data(contentsOf: url))
        var hp = EditHyperparameters()
        hp.vSteps = 12
        try compare(m, tok, hp: hp, try FactsFile.read(path: facts, limit: 3),
                    templates: ContextTemplates(groups: groups), tol: 1e-4)
    }
}
