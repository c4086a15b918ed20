// The state directory and export: deltas re-applied from disk reproduce the edited model exactly, an
// exported GGUF reproduces the edited logits exactly, and a corrupted delta file is refused by its checksum.
import Foundation
import Shared
import XCTest

final class EditStateTests: XCTestCase {
    func makeState(_ m: LlamaModel) throws -> (EditState, [Int: [Float]]) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aestate-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/deltas", withIntermediateDirectories: true)
        var rng = SplitMix64(seed: 7)
        let n = m.config.hidden * m.config.ffn
        let deltas = [3: (0..<n).map { _ in rng.symmetric(0.01) }, 7: (0..<n).map { _ in rng.symmetric(0.01) }]
        var st = EditState(directory: dir, manifest: EditManifest(model: "test", method: .alphaedit,
                                                                  hyperparameters: EditHyperparameters(),
                                                                  templates: ContextTemplates(groups: [["{}"]])))
        try BatchDeltas(rows: m.config.hidden, cols: m.config.ffn, deltas: deltas).write(to: st.url("deltas/batch-00001.bin"))
        st.manifest.batches = [.init(index: 1, requests: 1, deltas: try st.ref("deltas/batch-00001.bin"), seconds: 0)]
        try st.save()
        return (st, deltas)
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
            XCTAssertTrue("\(e)".contains("does not match the checksum"), "\(e)")
        }
        XCTAssertThrowsError(try EditState.load(directory: st.directory + "-missing")) { e in
            XCTAssertTrue("\(e)".contains("not an alphaedit state directory"), "\(e)")
        }
        try? FileManager.default.removeItem(atPath: st.directory)
    }
}
