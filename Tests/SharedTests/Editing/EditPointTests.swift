// Editing behind gemma3's post_ffw_norm (Model/EditPoint.swift): the target for ffn_down's output is
// taken through the norm, and a solved ΔW moves the block output to the v* target.
import Foundation
import Shared
import XCTest

final class EditPointTests: XCTestCase {
    func gemma(layers: Int = 4) throws -> LlamaModel {
        try LlamaModel(gguf: GGUFFile(bytes: SyntheticModel.writer(SyntheticConfig(layers: layers, architecture: "gemma3", headDim: 24)).bytes()))
    }

    /// For a reachable output change, N(m + δ) − N(m), the target is δ itself; without a norm it is the change.
    func testTargetThroughTheNormInvertsIt() throws {
        let m = try gemma()
        let c = m.config.hidden
        var rng = SplitMix64(seed: 7)
        let mlp = (0..<c).map { _ in rng.symmetric(2) }, delta = (0..<c).map { _ in rng.symmetric(0.7) }
        func n(_ x: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: c), r: Float = 0
            m.postFFN(layer: 1, x, &y, rstd: &r, rows: 1)
            return y
        }
        let change = zip(n(zip(mlp, delta).map { $0 + $1 }), n(mlp)).map { Double($0 - $1) }
        let got = m.ffnDownTarget(layer: 1, mlpOut: mlp.map(Double.init), change: change)
        // The preimage is m + δ up to a positive scale (N ignores length): compare what N makes of it.
        let want = n(zip(mlp, delta).map { $0 + $1 }), reached = n(zip(mlp, got).map { $0 + Float($1) })
        let err = zip(reached, want).map { abs($0 - $1) }.max() ?? 0
        print("N(m + ffnDownTarget) vs N(m + δ): max |diff| \(err)")
        XCTAssertLessThan(err, 1e-4)
        let llama = try LlamaModel(gguf: GGUFFile(bytes: SyntheticModel.writer(SyntheticConfig()).bytes()))
        XCTAssertEqual(llama.ffnDownTarget(layer: 0, mlpOut: [Double](repeating: 1, count: 64), change: change), change)
    }

    /// v* on a synthetic gemma3 (δ before the norm) lowers its loss; the rank-one ΔW that gives ffn_down
    /// the derived target moves the block output to z within 1e-3 relative.
    func testSolvedDeltaMovesBlockOutputToTarget() throws {
        let m = try gemma()
        let tok = try BPETokenizer(gguf: m.gguf)
        var hp = EditHyperparameters()
        // Adam's step is absolute; this tiny model's ffn_down outputs are small (‖m‖ ≈ 1), so a small rate.
        hp.layers = [1]; hp.vSteps = 10; hp.earlyStopLoss = 0; hp.vLR = 0.02; hp.weightDecay = 0; hp.klFactor = 0
        let req = EditRequest(prompt: "The home of {} is", subject: "the big cat", targetNew: "a red house")
        let templates = ContextTemplates(groups: [["{}"]])
        let z = try ComputeZ(model: m, tokenizer: tok, hp: hp).run([req], templates: templates)[0]
        print("v* NLL by pass: \(z.losses.map(\.nll)), ‖m‖ \(z.h0Norm), ‖δ‖ \(z.deltaNorm)")
        XCTAssertLessThan(z.losses.last?.nll ?? .infinity, z.losses.first?.nll ?? 0, "v* lowers its loss")
        let reader = KeyReader(model: m, tokenizer: tok)
        let (k, h, mOut) = try reader.read([req], layer: 1, templates: templates, outputLayer: 1, mlpOutputs: true)
        let (C, F) = (m.config.hidden, m.config.ffn)
        let change = (0..<C).map { Double(z.z[$0]) - (h?.values[$0] ?? 0) }
        let dm = m.ffnDownTarget(layer: 1, mlpOut: mOut?.values ?? [], change: change)
        let kk = k.values.reduce(0) { $0 + $1 * $1 }
        var dw = [Float](repeating: 0, count: C * F)
        for i in 0..<C { for j in 0..<F { dw[i * F + j] = Float(dm[i] * k.values[j] / kk) } }
        try m.applyDelta(layer: 1, delta: dw)
        let after = try reader.read([req], layer: 1, templates: templates, outputLayer: 1).outputs?.values ?? []
        let num = zip(after, z.z).reduce(0.0) { $0 + ($1.0 - Double($1.1)) * ($1.0 - Double($1.1)) }.squareRoot()
        let moved = zip(h?.values ?? [], z.z).reduce(0.0) { $0 + ($1.0 - Double($1.1)) * ($1.0 - Double($1.1)) }.squareRoot()
        let den = z.z.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        print("block output vs v* target: ‖o − z‖/‖z‖ = \(num / den) after the edit, \(moved / den) before")
        XCTAssertGreaterThan(moved / den, 1e-2, "the edit has something to move")
        XCTAssertLessThan(num / den, 1e-3)
    }
}
