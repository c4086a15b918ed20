// The edit math against the authors' PyTorch code on the same model (shared/fixtures/alphaedit).
import Foundation
import Shared
import XCTest

final class AlphaEditFixtureTests: XCTestCase {
    struct KeysFixture: Decodable {
        struct Layer: Decodable { let norm: Float; let k: [Float] }
        struct Record: Decodable {
            let prompt_template: String, subject: String, prompt_ids: [Int32], subject_last_index: Int
            let target_new: String, target_new_ids: [Int32]
            let keys: [String: Layer]
            let block7_out_subject_last: [Float]
        }
        let records: [Record]
    }
    struct ZFixture: Decodable {
        struct Req: Decodable { let prompt: String; let subject: String; let target_new: [String: String] }
        let request: Req
        let lookup_idx_rewrite: Int, lookup_idx_kl: Int
        let target_init: [Float]
        let delta_norm_final: Float
        let steps: [[String: Float]]
        let z: [Float]
    }

    func maxRelDiff(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map(abs).max() ?? 1
        return zip(a, b).map { abs($0 - $1) }.max().map { $0 / scale } ?? .infinity
    }

    /// Keys at layers 3 and 7 and the block-7 output at the subject's last token (plain template):
    /// ids and indices exact, vectors within 1e-3 · max|value|.
    func testKeysAndSubjectIndexMatchReference() throws {
        let (m, tok) = try ModelFixtureTests.load()
        let url = try RepoPaths.sharedFile("fixtures/alphaedit/a_keys_records01.json")
        let fx = try JSONDecoder().decode(KeysFixture.self, from: Data(contentsOf: url))
        for r in fx.records {
            let layout = PromptLayout(template: r.prompt_template, subject: r.subject, tokenizer: tok)
            XCTAssertEqual(layout.ids, r.prompt_ids)
            XCTAssertEqual(layout.subjectLast, r.subject_last_index)
            XCTAssertEqual(tok.encode(" " + r.target_new.trimmingCharacters(in: .whitespaces)), r.target_new_ids)
            var keys: [Int: [Float]] = [:], out7: [Float] = []
            var hooks = ForwardHooks()
            hooks.keyLayers = [3, 7]; hooks.outputLayers = [7]
            let i = r.subject_last_index, f = m.config.ffn, c = m.config.hidden
            hooks.onKeys = { l, k in keys[l] = Array(UnsafeBufferPointer(start: k + i * f, count: f)) }
            hooks.onOutput = { _, o in out7 = Array(UnsafeBufferPointer(start: o + i * c, count: c)) }
            _ = try m.forward(TokenBatch([layout.ids]), hooks: hooks, upTo: 7)
            for (name, l) in [("layer3", 3), ("layer7", 7)] {
                let d = maxRelDiff(keys[l] ?? [], r.keys[name]?.k ?? [])
                print("keys \(r.subject) \(name): max diff / max|k| = \(d)")
                XCTAssertLessThanOrEqual(d, 1e-3)
            }
            let d7 = maxRelDiff(out7, r.block7_out_subject_last)
            print("block7 \(r.subject): max diff / max|h| = \(d7)")
            XCTAssertLessThanOrEqual(d7, 1e-3)
        }
    }

    /// v* for record 0 with templates ["{}"]: first 5 losses within 1e-3 relative, final ‖δ‖ and z within 2%.
    func testComputeZMatchesReference() throws {
        let (m, tok) = try ModelFixtureTests.load()
        let url = try RepoPaths.sharedFile("fixtures/alphaedit/b_compute_z_record0.json")
        let fx = try JSONDecoder().decode(ZFixture.self, from: Data(contentsOf: url))
        let req = EditRequest(prompt: fx.request.prompt, subject: fx.request.subject,
                              targetNew: fx.request.target_new["str"] ?? "")
        let t0 = Date()
        var hp = EditHyperparameters()
        hp.vLR = 0.1  // the reference run's setting (docs/algorithm.md §5)
        let r = try ComputeZ(model: m, tokenizer: tok, hp: hp)
            .run([req], templates: ContextTemplates(groups: [["{}"]]))[0]
        print("compute_z: \(r.losses.count) passes in \(Date().timeIntervalSince(t0)) s; ‖δ‖ \(r.deltaNorm) (reference \(fx.delta_norm_final))")
        for (i, s) in fx.steps.prefix(5).enumerated() {
            let ref = s["loss"] ?? 0
            XCTAssertEqual(r.losses[i].total, ref, accuracy: 1e-3 * ref, "loss of pass \(i)")
        }
        XCTAssertEqual(r.losses.count, fx.steps.count)
        XCTAssertEqual(r.h0Norm, sqrt(fx.target_init.reduce(0) { $0 + $1 * $1 }), accuracy: 1e-3 * r.h0Norm)
        XCTAssertEqual(r.deltaNorm, fx.delta_norm_final, accuracy: 0.02 * fx.delta_norm_final)
        let zd = sqrt(zip(r.z, fx.z).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }) / sqrt(fx.z.reduce(0) { $0 + $1 * $1 })
        print("compute_z: ‖z − z_ref‖/‖z_ref‖ = \(zd)")
        XCTAssertLessThanOrEqual(zd, 0.02)
    }
}
