// The `alphaedit` command: options and wiring only; the work lives in Shared.
import ArgumentParser
import Foundation
import Shared

@main
struct AlphaEdit: ParsableCommand {
    static func main() {
        BLASRuntime.ensureOptimizedKernels()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "alphaedit",
        abstract: "Edit facts inside a language model with AlphaEdit (null-space constrained editing).",
        version: AlphaEditVersion.string,
        subcommands: [Inspect.self, Generate.self, Cov.self, Edit.self, Status.self, Eval.self, Export.self, Bench.self])
}

/// Options every model-loading command shares.
struct ModelOptions: ParsableArguments {
    @Option(help: "cluster.conf to read (default: ./cluster.conf when present).")
    var config: String?
    @Option(help: "GGUF model path (overrides the config's `model`).")
    var model: String?
    @Option(help: "OpenBLAS threads (overrides the config's `threads`).")
    var threads: Int?

    func resolved() throws -> ClusterConfig {
        var c = ClusterConfig()
        if let path = config {
            c = try ClusterConfig.load(path: path)
        } else if FileManager.default.fileExists(atPath: "cluster.conf") {
            c = try ClusterConfig.load(path: "cluster.conf")
        }
        if let model { c.model = model }
        if let threads {
            guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1-256") }
            c.threads = threads
        }
        BLAS.setThreads(c.threads)
        return c
    }
}
