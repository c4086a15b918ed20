// The state directory and export: deltas re-applied from disk reproduce the edited model exactly, an
// exported GGUF reproduces the edited logits exactly, and a corrupted delta file is refused by its checksum.
import Foundation
import Shared
import XCTest

final class EditStateTests: XCTestCase {
    /// A state directory with one committed batch of random deltas at layers 3 and 7.
    func makeState(_ m: LlamaModel) throws -> (EditState, [Int: [Float]]) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aestate-\(UUID().uuidString)").path
        var rng = SplitMix64(seed: 7)
        let n = m.config.hidden * m.config.ffn
        let deltas = [3: (0..<n).map { _ in rng.symmetric(0.01) }, 7: (0..<n).map { _ in rng.symmetric(0.01) }]
        let store = try JobStore(directory: dir, create: true)
        let c = try store.createCampaign(settings: CampaignSettings(
            method: .alphaedit, model: "test", modelChecksum: "0", facts: "test", factsChecksum: "0", requestCount: 1,
            batchSize: 1, hyperparameters: EditHyperparameters(), templateSeed: 0, corpus: "test", covSentences: 0),
            templates: ContextTemplates(groups: [["{}"]]), requests: [EditRequest(prompt: "{} is in", subject: "S", targetNew: "T")])
        try EditState.commit(store, campaign: c.id, batch: 1,
                             deltas: BatchDeltas(rows: m.config.hidden, cols: m.config.ffn, deltas: deltas),
                             cp: try SequentialState(layers: [3, 7], f: m.config.ffn), seconds: 0)
        return (try EditState(store: store), deltas)
    }

    func lastLogits(_ m: LlamaModel, _ ids: [Int32]) throws -> [Float] {
        Array(try m.forward(TokenBatch([ids]), logitRows: [ids.count - 1]).logits(at: 0))
    }

    func testDeltasReapplyAndExportReproduceTheEditedModel() throws {
        let path = try RepoPaths.requireModel()
        let edited = try LlamaModel(path: path)
        let tok = try BPETokenizer(gguf: edited.gguf)
        let (st, deltas) = try makeState(edited)
        for (l, d) in deltas { try edited.applyDelta(layer: l, delta: d) }
        let ids = tok.encode("The Eiffel Tower is in")
        let want = try lastLogits(edited, ids)

        let reloaded = try LlamaModel(path: path)
        try EditState.load(directory: st.directory).apply(to: reloaded)
        XCTAssertEqual(try lastLogits(reloaded, ids), want, "state directory re-applied")

        let out = st.url("edited.gguf")
        var replaced: [String: [Float]] = [:]
        for l in deltas.keys { replaced[GGUFNames.ffnDown(l)] = edited.weights.layers[l].down.array }
        try GGUFWriter.copy(from: edited.gguf, replacing: replaced).write(to: out)
        let exported = try LlamaModel(path: out)
        XCTAssertEqual(exported.gguf.tensorInfo(GGUFNames.ffnDown(3))?.type, .f32)
        XCTAssertEqual(exported.gguf.tensorInfo(GGUFNames.ffnDown(4))?.type, .q4_1)
        XCTAssertEqual(try lastLogits(exported, ids), want, "exported GGUF")
        try? FileManager.default.removeItem(atPath: st.directory)
    }

    func testCorruptedDeltaFileIsRefused() throws {
        let m = try LlamaModel(path: try RepoPaths.requireModel())
        let (st, _) = try makeState(m)
        let p = st.url("deltas/batch-00001.bin")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
        bytes[bytes.count / 2] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        XCTAssertThrowsError(try EditState.load(directory: st.directory).apply(to: m)) { e in
            XCTAssertTrue("\(e)".hasPrefix("\(p) does not match the checksum recorded in the state database"), "\(e)")
        }
        XCTAssertThrowsError(try EditState.load(directory: st.directory + "-missing")) { e in
            XCTAssertEqual("\(e)", "\(st.directory)-missing holds no state.sqlite: not an alphaedit state directory")
        }
        try? FileManager.default.removeItem(atPath: st.directory)
    }

    /// Files written for a batch that never committed are not part of the state, and are removed
    /// when a campaign resumes; the committed record still finds its own files intact.
    func testUncommittedBatchFilesAreNotPartOfTheState() throws {
        let m = try LlamaModel(path: try RepoPaths.requireModel())
        let (st, _) = try makeState(m)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: st.url(EditState.deltasPath(batch: 2))))
        try Data([4, 5, 6]).write(to: URL(fileURLWithPath: st.url(EditState.cpPath(batch: 2))))
        let reloaded = try EditState.load(directory: st.directory)
        XCTAssertEqual(reloaded.manifest.batches.map(\.index), [1])
        XCTAssertEqual(reloaded.manifest.cp?.path, EditState.cpPath(batch: 1))
        XCTAssertEqual(try reloaded.store.removeUnreferencedFiles(in: ["deltas", "cp"]),
                       [EditState.cpPath(batch: 2), EditState.deltasPath(batch: 2)])
        XCTAssertNoThrow(try reloaded.verified(try XCTUnwrap(reloaded.manifest.cp)))
        try? FileManager.default.removeItem(atPath: st.directory)
    }
}
