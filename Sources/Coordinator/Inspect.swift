import ArgumentParser
import Foundation
import Shared

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a GGUF file's metadata and tensor table.")

    @Argument(help: "GGUF file.") var path: String
    @Flag(help: "Print every tensor (default: the first 40).") var all = false

    func run() throws {
        let f = try GGUFFile(path: path)
        print("GGUF v\(f.version), \(f.fileSize) bytes, alignment \(f.alignment), data at \(f.dataOffset)")
        print("\nmetadata (\(f.metadataKeys.count) keys)")
        let w = f.metadataKeys.map(\.count).max() ?? 0
        for k in f.metadataKeys {
            print("  \(k.padding(toLength: w, withPad: " ", startingAt: 0))  \(f.metadata[k]?.description ?? "")")
        }
        var params = 0, bytes = 0
        var byType: [String: Int] = [:]
        for t in f.tensors { params += t.elementCount; bytes += t.byteCount; byType[t.type.description, default: 0] += 1 }
        print("\ntensors (\(f.tensors.count), \(params) parameters, \(bytes) bytes; \(byType.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))")
        let nw = f.tensors.map(\.name.count).max() ?? 0
        for t in (all ? f.tensors : Array(f.tensors.prefix(40))) {
            print("  \(t.name.padding(toLength: nw, withPad: " ", startingAt: 0))  \(t.type.description.padding(toLength: 5, withPad: " ", startingAt: 0))  \(t.dims)")
        }
        if !all && f.tensors.count > 40 { print("  … \(f.tensors.count - 40) more (--all)") }
    }
}
