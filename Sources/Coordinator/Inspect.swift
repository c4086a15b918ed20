import ArgumentParser
import Foundation
import Shared

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a GGUF file's metadata and tensor table, and whether alphaedit can run it; with --npy, write its tensors dequantized to float32.")

    @Argument(help: "GGUF file.") var path: String
    @Flag(help: "Print every tensor (default: the first 40).") var all = false
    @Option(help: "Folder to write tensors into as float32 .npy files (NAME.npy, shape in NumPy order: GGML's dims reversed).")
    var npy: String?
    @Option(help: "A tensor to write with --npy (repeatable; default: every tensor).") var tensor: [String] = []

    func validate() throws {
        if npy == nil && !tensor.isEmpty { throw ValidationError("--tensor needs --npy FOLDER") }
    }

    func run() throws {
        // A packaged model's name (smollm2, qwen2.5-0.5b, gemma3-270m) as elsewhere; a path as it is.
        let path = ModelCatalog.named(self.path) != nil ? try ModelCatalog.resolve(self.path) : self.path
        let f = try GGUFFile(path: path)
        let chosen = try tensor.isEmpty ? f.tensors : tensor.map { name in
            guard let t = f.tensors.first(where: { $0.name == name }) else { throw ValidationError("\(path) has no tensor \(name)") }
            return t
        }
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
        let support = ModelSupport(gguf: f)
        print("\nalphaedit: \(support.supported ? "supported" : "not supported")")
        for p in support.problems { print("  ✗ \(p)") }
        for fact in support.facts { print("  \(fact)") }
        guard let npy else { return }
        try FileIO.makeDirectory(npy)
        for t in chosen {
            let values = try f.floats(t)  // throws, naming the tensor, for a type that cannot be dequantized
            try values.withUnsafeBufferPointer { try NPY.writeFloat32(path: npy + "/" + t.name + ".npy", shape: t.dims.reversed(), values: $0) }
        }
        print("\nwrote \(chosen.count) tensors as float32 .npy into \(npy)")
    }
}
