// The sequential state keeps each batch's keys of the edited model. Editor.apply reuses the keys it read
// before each layer's update (a layer's keys depend only on the layers below it and on its own attention
// and up/gate projections), so Cp must equal K Kᵀ of a fresh read after the batch, bit for bit.
import Foundation
import Shared
import XCTest

final class EditorKeysTests: XCTestCase {
    func testStateKeepsTheEditedModelsKeys() throws {
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 100)
        var hp = EditHyperparameters()
        hp.layers = [0, 1]   // v* reads the block above the last edited layer
        hp.vSteps = 4
        let m0 = try LlamaModel(path: path)
        let tok = try BPETokenizer(gguf: m0.gguf)
        let stats = try CovarianceBuilder(model: m0, tokenizer: tok, layers: hp.layers).build(corpus: corpus, range: 0..<100)
        let templates = ContextTemplates(groups: [["{}"], ["The river. {}", "A city. {}"]])
        let requests = [EditRequest(prompt: "The capital of {} is", subject: "France", targetNew: "Rome"),
                        EditRequest(prompt: "{} flows through", subject: "The river", targetNew: "Paris"),
                        EditRequest(prompt: "{} is located in", subject: "The tower", targetNew: "Berlin")]
        for method in [EditMethod.memit, .alphaedit] {
            let m = try LlamaModel(path: path)
            let projectors = method == .alphaedit ? try NullSpaceProjectorSet(statistics: stats, hyperparameters: hp) : nil
            let editor = try Editor(model: m, tokenizer: tok, hp: hp, method: method, templates: templates,
                                    projectors: projectors, statistics: stats)
            let out = try editor.apply(requests)
            XCTAssertFalse(out.deltas.isEmpty)
            let reader = KeyReader(model: m, tokenizer: tok)
            for l in hp.layers {
                var fresh = try SequentialState(layers: hp.layers, f: ClusterTestSupport.modelConfig.ffn)
                try fresh.add(layer: l, keys: try reader.read(requests, layer: l, templates: templates).keys)
                let kept = try XCTUnwrap(try editor.state.previousKeys(layer: l)).values
                XCTAssertEqual(kept, try XCTUnwrap(try fresh.previousKeys(layer: l)).values, "\(method) layer \(l): Cp = K Kᵀ of the edited model")
            }
        }
    }
}
