// `alphaedit bench vstar`: v* speed with and without the cached prefix (ComputeZ.reusePrefix),
// alternating, on one batch of real requests: wall time and process CPU time per request (CPU time is
// the robust figure on a shared machine).
import Support
import Kernels
import Model
import Tokenization
import Editing
import Foundation

public struct VStarBenchmark {
    public struct Round: Codable, Sendable {
        public var round: Int
        public var reuse_prefix: Bool
        public var wall_seconds_per_request: Double
        public var cpu_seconds_per_request: Double
        public var passes: Int
    }

    public struct Result: Codable, Sendable {
        public var requests: Int
        public var threads: Int
        public var rounds: [Round]
        public var median_wall_reuse: Double
        public var median_wall_no_reuse: Double
        public var median_cpu_reuse: Double
        public var median_cpu_no_reuse: Double
        public var kernels = KernelChoice.current
    }

    public static func run(modelPath: String, hp: EditHyperparameters = EditHyperparameters(), facts: String, requests count: Int, rounds: Int, threads: Int,
                           log: (String) -> Void) throws -> Result {
        let model = try LlamaModel(path: modelPath)
        let tok = try BPETokenizer(gguf: model.gguf)
        BLAS.setThreads(threads)
        let requests = try FactsFile.read(path: facts, limit: count)
        let templates = try ContextTemplates.generate(model: model, tokenizer: tok, seed: 0)
        var out: [Round] = []
        for round in 0..<rounds {
            for reuse in [false, true] {
                var cz = ComputeZ(model: model, tokenizer: tok, hp: hp)
                cz.reusePrefix = reuse
                let (w0, c0) = (ProcessStats.now(), ProcessStats.cpuSeconds())
                let zs = try cz.run(requests, templates: templates)
                let r = Round(round: round, reuse_prefix: reuse,
                              wall_seconds_per_request: (ProcessStats.now() - w0) / Double(requests.count),
                              cpu_seconds_per_request: (ProcessStats.cpuSeconds() - c0) / Double(requests.count),
                              passes: zs.map(\.losses.count).reduce(0, +))
                log(String(format: "round %d reusePrefix %@: %.2f s wall, %.2f s CPU per request (%d passes)",
                           round, reuse ? "on " : "off", r.wall_seconds_per_request, r.cpu_seconds_per_request, r.passes))
                out.append(r)
            }
        }
        func median(_ reuse: Bool, _ key: KeyPath<Round, Double>) -> Double {
            ProcessStats.median(out.filter { $0.reuse_prefix == reuse }.map { $0[keyPath: key] })
        }
        return Result(requests: requests.count, threads: threads, rounds: out,
                      median_wall_reuse: median(true, \.wall_seconds_per_request),
                      median_wall_no_reuse: median(false, \.wall_seconds_per_request),
                      median_cpu_reuse: median(true, \.cpu_seconds_per_request),
                      median_cpu_no_reuse: median(false, \.cpu_seconds_per_request))
    }
}
