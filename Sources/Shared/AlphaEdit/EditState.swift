// A state directory: everything an edit campaign produced, enough to answer with the edited model,
// export it, or continue it. Layout:
//   manifest.json            settings, templates, and every file below with its FNV-1a-64 checksum
//   projector.bin            null-space projectors (AlphaEdit) — or statistics.bin (MEMIT's C0)
//   cp.bin                   the sequential state Cp after the last batch
//   deltas/batch-00001.bin   ΔW of each applied batch, in order
import Foundation

public struct EditManifest: Codable, Sendable {
    public struct FileRef: Codable, Sendable { public var path: String; public var fnv1a64: String }
    public struct Batch: Codable, Sendable {
        public var index: Int
        public var requests: Int
        public var deltas: FileRef
        public var seconds: Double
        public init(index: Int, requests: Int, deltas: FileRef, seconds: Double) {
            self.index = index; self.requests = requests; self.deltas = deltas; self.seconds = seconds
        }
    }
    public var format = 1
    public var model: String
    public var method: EditMethod
    public var hyperparameters: EditHyperparameters
    public var templates: ContextTemplates
    public var base: FileRef?        // projector.bin or statistics.bin
    public var cp: FileRef?
    public var batches: [Batch] = []

    public init(model: String, method: EditMethod, hyperparameters: EditHyperparameters, templates: ContextTemplates) {
        self.model = model; self.method = method; self.hyperparameters = hyperparameters; self.templates = templates
    }
}

public enum StateError: Error, CustomStringConvertible {
    case noManifest(String)
    case badManifest(String, String)
    case checksumMismatch(path: String)
    public var description: String {
        switch self {
        case .noManifest(let d): "\(d) holds no manifest.json: not an alphaedit state directory"
        case .badManifest(let p, let why): "\(p) is not a valid manifest: \(why)"
        case .checksumMismatch(let p): "\(p) does not match the checksum in the manifest: the file is corrupted"
        }
    }
}

public struct EditState {
    public let directory: String
    public var manifest: EditManifest

    public init(directory: String, manifest: EditManifest) {
        self.directory = directory; self.manifest = manifest
    }

    public static func fileChecksum(_ path: String) throws -> String {
        guard let d = FileManager.default.contents(atPath: path) else { throw ArtifactError.io(path: path, reason: "cannot read") }
        let h = d.withUnsafeBytes { FNV1a64.hash($0) }
        return String(h, radix: 16)
    }

    public func url(_ rel: String) -> String { URL(fileURLWithPath: directory).appendingPathComponent(rel).path }

    /// Verifies a file against its manifest checksum before use.
    public func verified(_ ref: EditManifest.FileRef) throws -> String {
        let p = url(ref.path)
        guard try Self.fileChecksum(p) == ref.fnv1a64 else { throw StateError.checksumMismatch(path: p) }
        return p
    }

    public func ref(_ rel: String) throws -> EditManifest.FileRef {
        EditManifest.FileRef(path: rel, fnv1a64: try Self.fileChecksum(url(rel)))
    }

    public static func load(directory: String) throws -> EditState {
        let p = URL(fileURLWithPath: directory).appendingPathComponent("manifest.json").path
        guard let data = FileManager.default.contents(atPath: p) else { throw StateError.noManifest(directory) }
        do {
            return EditState(directory: directory, manifest: try JSONDecoder().decode(EditManifest.self, from: data))
        } catch {
            throw StateError.badManifest(p, "\(error)")
        }
    }

    /// Writes the manifest atomically (it is the commit point of a batch).
    public func save() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try enc.encode(manifest)
        let p = url("manifest.json")
        try data.write(to: URL(fileURLWithPath: p), options: .atomic)
    }

    /// Applies every committed batch's deltas to `model`, in order, after checking each file.
    public func apply(to model: LlamaModel) throws {
        for b in manifest.batches {
            let d = try BatchDeltas.read(from: try verified(b.deltas))
            for (l, delta) in d.deltas.sorted(by: { $0.key < $1.key }) { try model.applyDelta(layer: l, delta: delta) }
        }
    }
}
