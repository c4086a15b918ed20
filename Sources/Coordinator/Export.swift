import ArgumentParser
import Foundation
import Shared

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the edited model as GGUF: edited ffn_down tensors as F32, everything else copied unchanged.")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "State directory of an edit campaign.") var state: String
    @Option(help: "Output GGUF file.") var out: String

    func run() throws {
        let cfg = try modelOptions.resolved(state: state)
        let model = try LlamaModel(path: cfg.model)
        let st = try EditState.load(directory: state)
        try st.checkModel(path: cfg.model, gguf: model.gguf)
        try st.apply(to: model)
        var replaced: [String: [Float]] = [:]
        for l in Set(st.manifest.batches.isEmpty ? [] : st.manifest.hyperparameters.layers) {
            replaced[GGUFNames.ffnDown(l)] = try model.editableDown(l).array
        }
        var writer = try GGUFWriter.copy(from: model.gguf, replacing: replaced)
        for (key, value) in st.exportMetadata { try writer.set(key, value) }
        try writer.write(to: out)
        print("wrote \(out): \(replaced.count) edited tensors as F32, \(model.gguf.tensors.count - replaced.count) copied")
    }
}
