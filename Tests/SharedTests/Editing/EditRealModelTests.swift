// Real edits on the real model (issue 3, §8): the Eiffel Tower moves to Rome while Paris stays the
// capital of France; the update leaves the projector's complement untouched.
import Foundation
import Shared
import XCTest

final class EditRealModelTests: XCTestCase {
    func greedyNext(_ m: LlamaModel, _ tok: BPETokenizer, _ prompt: String) throws -> String {
        let ids = tok.encode(prompt)
        let r = try m.forward(TokenBatch([ids]), logitRows: [ids.count - 1])
        return tok.decode([Int32(Sampler.argmax(r.logits(at: 0)))])
    }

    func testEiffelTowerToRome() throws {
        let m = try LlamaModel(path: try RepoPaths.requireModel())  // its own copy: this test edits weights
        let tok = try BPETokenizer(gguf: m.gguf)
        let hp = EditHyperparameters()
        let corpus = try RepoPaths.sharedFile("data/wiki-triplets/trex.jsonl").path
        let stats = try CovarianceBuilder(model: m, tokenizer: tok, layers: hp.layers).build(corpus: corpus, range: 0..<1000)
        let proj = try NullSpaceProjectorSet(statistics: stats, threshold: hp.nullSpaceThreshold)
        for p in proj.projectors { print("layer \(p.layer): kept \(p.keptDimension)/\(p.f) (\(p.spectrum))") }
        XCTAssertEqual(try greedyNext(m, tok, "The capital of France is"), " Paris")
        let downBefore = hp.layers.map { m.weights.layers[$0].down.array }
        let templates = try ContextTemplates.generate(model: m, tokenizer: tok, seed: 1)
        let editor = try Editor(model: m, tokenizer: tok, hp: hp, method: .alphaedit, templates: templates,
                                projectors: proj, statistics: nil)
        let req = EditRequest(prompt: "The {} is in", subject: "Eiffel Tower", targetNew: "Rome")
        let out = try editor.apply([req])
        print("edit: z \(out.zSeconds) s, solve \(out.solveSeconds) s, total \(out.totalSeconds) s; v* losses \(out.z[0].losses.first.map { "\($0)" } ?? "-") → \(out.z[0].losses.last.map { "\($0)" } ?? "-")")
        XCTAssertEqual(try greedyNext(m, tok, "The Eiffel Tower is in"), " Rome")
        XCTAssertEqual(try greedyNext(m, tok, "The capital of France is"), " Paris")
        // ΔW (I − P) = 0: ΔW Û⊥ vanishes, checked as ‖ΔW − ΔW P‖ / ‖ΔW‖.
        for (i, l) in hp.layers.enumerated() {
            let after = m.weights.layers[l].down.array
            let d = zip(after, downBefore[i]).map { Double($0 - $1) }
            let dw = try Matrix64(rows: m.config.hidden, cols: m.config.ffn, values: d)
            let p = try proj.projector(layer: l).projectionMatrix()
            let dwp = try dw.times(p)
            let resid = zip(dw.values, dwp.values).map { abs($0 - $1) }.max() ?? 0
            let scale = dw.values.map(abs).max() ?? 1
            print("layer \(l): max|ΔW(I − P)| / max|ΔW| = \(resid / scale) (float32 storage of ΔW)")
            XCTAssertLessThanOrEqual(resid / scale, 1e-5)
        }
    }
}
