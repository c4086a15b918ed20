// cluster.conf: `key = value` lines, `#` comments. Unknown keys and invalid values are errors
// naming the key and line. Relative paths resolve against the file's folder.
import Support
import Editing
import Foundation

public enum ConfigError: Error, Equatable, CustomStringConvertible {
    case cannotRead(path: String, reason: String)
    case syntax(line: Int, text: String)
    case unknownKey(key: String, line: Int)
    case invalidValue(key: String, line: Int, value: String, expected: String)
    case duplicateKey(key: String, line: Int)

    public var description: String {
        switch self {
        case .cannotRead(let p, let why): "cannot read config file \(p): \(why)"
        case .syntax(let l, let t): "config line \(l): expected `key = value`, found \"\(Self.cut(t))\""
        case .unknownKey(let k, let l): "config line \(l): unknown key \"\(Self.cut(k))\""
        case .invalidValue(let k, let l, let v, let e): "config line \(l): \(k) = \"\(Self.cut(v))\" is invalid (expected \(e))"
        case .duplicateKey(let k, let l): "config line \(l): \(Self.cut(k)) is set twice"
        }
    }

    /// A value as shown in a message: at most 60 characters (a pasted blob stays readable).
    static func cut(_ s: String) -> String { s.count <= 60 ? s : s.prefix(57) + "… (\(s.count) characters)" }
}

/// Where the work of `cov` and `edit` runs.
public enum WorkerMode: Sendable, Equatable, CustomStringConvertible {
    /// All in the coordinator's process (no sockets).
    case inProcess
    /// The coordinator starts N worker processes on this machine.
    case local(Int)
    /// Workers started elsewhere connect to the endpoint.
    case remote
    /// Inside a Slurm allocation: the coordinator starts N workers with `srun` and ends them when done.
    case slurm(Int)

    /// `in-process`, `local N`, `remote` or `slurm N`.
    public static func parse(_ s: String) -> WorkerMode? {
        let parts = s.split(separator: " ", omittingEmptySubsequences: true)
        switch (parts.first, parts.count) {
        case ("in-process", 1): return .inProcess
        case ("remote", 1): return .remote
        case ("local", 2): return Int(parts[1]).flatMap { (1...64).contains($0) ? .local($0) : nil }
        case ("slurm", 2): return Int(parts[1]).flatMap { (1...4096).contains($0) ? .slurm($0) : nil }
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .inProcess: "in-process"
        case .local(let n): "local \(n)"
        case .remote: "remote"
        case .slurm(let n): "slurm \(n)"
        }
    }
}

public struct ClusterConfig: Sendable, Equatable {
    /// Path of the GGUF model.
    public var model: String = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    /// Threads for linear algebra in this process.
    public var threads: Int = 2
    /// The coordinator's ROUTER endpoint; nil: `ipc://` in the state (or artifact) directory.
    public var endpoint: String?
    public var workers: WorkerMode = .local(2)
    /// Threads of each local worker; nil: the machine's `threads` shared among the local workers.
    public var workerThreads: Int?
    /// MB of memory each local worker may give its K₀ shards (`alphaedit-worker --memory-mb`); nil: they
    /// measure what the machine has available.
    public var workerMemoryMB: Int?
    /// Edited layers and the method's settings (docs/algorithm.md §5).
    public var hyperparameters = EditHyperparameters()
    /// K0 corpus, sentences for K0, and sentences per distributed covariance shard.
    public var corpus: String = "../shared/data/wiki-triplets/trex.jsonl"
    public var covSentences: Int = 2_000
    public var shardSentences: Int = 500
    /// Straggler backups (WorkerPool.stragglerBackup): a job out longer than this many times the median
    /// of its kind is leased a second time to an idle worker; nil (`off`): never.
    public var stragglerBackup: Double? = ClusterConfig.defaultStragglerBackup
    public static let defaultStragglerBackup = 2.0
    /// Seconds of silence after which a worker (or, on the worker's side, the coordinator) counts as
    /// dead: its leases re-run elsewhere, it reconnects. Raise it on links whose TCP can stall longer.
    /// (The wire protocol's `WireProtocol.deadAfter`, which this layer does not import.)
    public var deadAfter = 3.0
    /// Directory of the K0 statistics and projectors (`alphaedit cov`).
    public var artifacts: String = "state/cov"
    /// The campaign's state directory: its database `state.sqlite` (JobStore) and files.
    public var state: String = "state/run"
    /// CURVE (README, "Running on a cluster"): this process's secret key file, the coordinator's public
    /// key file (a worker's side), the worker public keys the coordinator admits, and whether a
    /// coordinator may bind tcp:// in plaintext (it refuses to otherwise).
    public var curveKey: String?
    public var coordinatorKey: String?
    public var authorizedKeys: String?
    public var insecureTCP = false
    /// Keys that cluster.conf set (or a command line overrode); the rest may take per-model defaults.
    public var explicitKeys: Set<String> = []

    public init() {}

    /// The hyperparameter keys a catalog model's defaults may fill.
    static let hyperparameterKeys: Set<String> = ["layers", "v_lr", "v_steps", "clamp_factor", "kl_factor", "weight_decay",
                                                   "null_space_threshold", "null_space_relative", "null_space_trace", "lambda", "memit_lambda"]

    /// Resolves `model` (a catalog name is fetched on first use, ModelCatalog) and, for a catalog
    /// model, fills every hyperparameter that was not set explicitly from its table entry; for a model
    /// other than the default, the default `artifacts` and `state` folders get its name so that the
    /// statistics and campaigns of different models never mix.
    public mutating func applyModelDefaults(repo: String = ".") throws {
        model = try ModelCatalog.resolve(model, repo: repo)
        guard let m = ModelCatalog.matching(path: model) else { return }
        let d = m.hyperparameters
        var h = hyperparameters
        let set = explicitKeys
        if !set.contains("layers") { h.layers = d.layers }
        if !set.contains("v_lr") { h.vLR = d.vLR }
        if !set.contains("v_steps") { h.vSteps = d.vSteps }
        if !set.contains("clamp_factor") { h.clampFactor = d.clampFactor }
        if !set.contains("kl_factor") { h.klFactor = d.klFactor }
        if !set.contains("weight_decay") { h.weightDecay = d.weightDecay }
        if !set.contains("null_space_threshold") { h.nullSpaceThreshold = d.nullSpaceThreshold }
        let thresholdSet = ["null_space_relative", "null_space_threshold", "null_space_trace"].contains(where: set.contains)
        if !thresholdSet { h.nullSpaceRelative = d.nullSpaceRelative; h.nullSpaceTraceShare = d.nullSpaceTraceShare }
        if !set.contains("lambda") { h.lambda = d.lambda }
        if !set.contains("memit_lambda") { h.memitLambda = d.memitLambda }
        hyperparameters = h
        if m.name != ModelCatalog.models[0].name {
            if !set.contains("artifacts") { artifacts = "state/cov-\(m.name)" }
            if !set.contains("state") { state = "state/run-\(m.name)" }
        }
    }

    /// Keys this version understands, with a one-line meaning (the README's table lists the same).
    public static let keys: [(String, String)] = [
        ("model", "path of the GGUF model (relative to this file), or a packaged model's name"),
        ("threads", "OpenBLAS threads for this process (1-256)"),
        ("endpoint", "coordinator endpoint, tcp://host:port or ipc://path"),
        ("workers", "in-process | local N | remote | slurm N"),
        ("curve_key", "this process's CURVE secret key file (`alphaedit keys`)"),
        ("coordinator_key", "the coordinator's CURVE public key file (a worker's side)"),
        ("authorized_keys", "worker public keys the coordinator admits, one a line"),
        ("insecure_tcp", "true: allow a plaintext tcp:// coordinator (anyone who reaches the port can join)"),
        ("worker_threads", "threads of each local worker (1-256)"),
        ("worker_memory_mb", "MB of memory each local worker may give its K0 shards (default: measured)"),
        ("layers", "edited layers, e.g. 3-7"),
        ("v_lr", "learning rate of v*"), ("v_steps", "v* steps"), ("clamp_factor", "‖δ‖ clamp factor"),
        ("kl_factor", "KL weight of v*"), ("weight_decay", "weight decay of v*"),
        ("null_space_threshold", "τ: eigenvalues of C0 below it span the null space"),
        ("null_space_relative", "ρ in (0, 1): τ = ρ × each layer's largest eigenvalue instead (overrides null_space_threshold)"),
        ("null_space_trace", "s in (0, 1): per layer the null space is the smallest-eigenvalue directions holding at most s of C0's trace (overrides both)"),
        ("lambda", "AlphaEdit λ"), ("memit_lambda", "MEMIT λm"),
        ("kept_c0_weight", "AlphaEdit: weight w of the penalty on preserved keys inside the kept directions (w = λm is MEMIT's there)"),
        ("targets", "targets stage: vstar | encore | nas"), ("project", "true | false: project the update onto K0's null space (default: the method's own)"),
        ("filter", "filter stage on ΔW: none | prune | rect"), ("encore_probability", "ENCORE's stopping probability"),
        ("rect_fraction", "RECT's kept fraction of entries"),
        ("corpus", "K0 corpus (JSON lines with \"sentence\")"), ("cov_sentences", "sentences of the corpus for K0"),
        ("shard_sentences", "sentences per distributed covariance job"),
        ("straggler_backup", "a job out longer than this many times its kind's median is leased again to an idle worker (off: never)"),
        ("dead_after", "seconds of silence after which a worker counts as dead (default 3; raise it on slow, lossy links; the workers are told)"),
        ("artifacts", "directory of statistics.bin / projector.bin"),
        ("state", "campaign state directory (its state.sqlite database and files)"),
    ]

    public static func load(path: String) throws -> ClusterConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ConfigError.cannotRead(path: path, reason: FileIO.whyUnreadable(path) ?? "not UTF-8 text") }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try parse(text, baseDirectory: dir)
    }

    public static func parse(_ text: String, baseDirectory: String = ".") throws -> ClusterConfig {
        var c = ClusterConfig()
        var seen: Set<String> = []
        // CRLF line ends (a file saved on Windows) are line ends: Swift counts "\r\n" as one Character, so
        // a split on "\n" alone made the whole file one line (a comment first line hid every key).
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
        for (i, raw) in lines.enumerated() {
            let lineNo = i + 1
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else { throw ConfigError.syntax(line: lineNo, text: trimmed) }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { throw ConfigError.syntax(line: lineNo, text: trimmed) }
            guard !seen.contains(key) else { throw ConfigError.duplicateKey(key: key, line: lineNo) }
            seen.insert(key)
            try c.set(key, value, line: lineNo, baseDirectory: baseDirectory)
            c.explicitKeys.insert(key)
        }
        return c
    }

    private mutating func set(_ key: String, _ value: String, line: Int, baseDirectory: String) throws {
        func bad(_ expected: String) -> ConfigError { .invalidValue(key: key, line: line, value: value, expected: expected) }
        func path() throws -> String {
            guard !value.isEmpty else { throw bad("a file path") }
            return value.hasPrefix("/") ? value : URL(fileURLWithPath: baseDirectory).appendingPathComponent(value).standardized.path
        }
        func int(_ r: ClosedRange<Int>) throws -> Int {
            guard let n = Int(value), r.contains(n) else { throw bad("an integer \(r.lowerBound)-\(r.upperBound)") }
            return n
        }
        func positive() throws -> Double {
            guard let x = Double(value), x.isFinite, x > 0 else { throw bad("a positive number") }
            return x
        }
        func unit() throws -> Float {
            guard let x = Float(value), x.isFinite, x >= 0 else { throw bad("a number ≥ 0") }
            return x
        }
        switch key {
        case "model": model = ModelCatalog.named(value) != nil ? value : try path()  // a packaged model's name stays a name
        case "threads": threads = try int(1...256)
        case "endpoint":
            if let why = Endpoint.problem(value) { throw bad("tcp://host:port or ipc://path: \(why)") }
            endpoint = value
        case "workers":
            guard let w = WorkerMode.parse(value) else { throw bad("in-process, local N (1-64), remote or slurm N (1-4096)") }
            workers = w
        case "worker_threads": workerThreads = try int(1...256)
        case "worker_memory_mb": workerMemoryMB = try int(1...(1 << 30))
        case "curve_key": curveKey = try path()
        case "coordinator_key": coordinatorKey = try path()
        case "authorized_keys": authorizedKeys = try path()
        case "insecure_tcp":
            guard let b = ["true": true, "false": false][value] else { throw bad("true or false") }
            insecureTCP = b
        case "layers":
            guard let l = try? LayerList.parse(value) else { throw bad("a layer list such as 3-7 or 3,5,7") }
            hyperparameters.layers = l
        case "v_lr": hyperparameters.vLR = Float(try positive())
        case "v_steps": hyperparameters.vSteps = try int(1...10_000)
        case "clamp_factor": hyperparameters.clampFactor = Float(try positive())
        case "kl_factor": hyperparameters.klFactor = try unit()
        case "weight_decay": hyperparameters.weightDecay = try unit()
        case "null_space_threshold": hyperparameters.nullSpaceThreshold = try positive()
        case "null_space_relative":
            let x = try positive()
            guard x < 1 else { throw bad("a number in (0, 1)") }
            hyperparameters.nullSpaceRelative = x
        case "null_space_trace":
            let x = try positive()
            guard x < 1 else { throw bad("a number in (0, 1)") }
            hyperparameters.nullSpaceTraceShare = x
        case "lambda": hyperparameters.lambda = try positive()
        case "memit_lambda": hyperparameters.memitLambda = try positive()
        case "kept_c0_weight": hyperparameters.keptC0Weight = try positive()
        case "targets", "project", "filter", "encore_probability", "rect_fraction":
            var st = hyperparameters.effectiveStages
            switch key {
            case "targets":
                guard let t = EditStages.Targets(rawValue: value) else { throw bad("vstar, encore or nas") }
                st.targets = t
            case "project":
                guard let b = ["true": true, "false": false][value] else { throw bad("true or false") }
                st.project = b
            case "filter":
                guard let f = EditStages.Filter(rawValue: value) else { throw bad("none, prune or rect") }
                st.filter = f
            case "encore_probability":
                guard let p = Float(value), p > 0, p < 1 else { throw bad("a probability in (0, 1)") }
                st.encoreProbability = p
            default:
                guard let x = Double(value), x > 0, x <= 1 else { throw bad("a fraction in (0, 1]") }
                st.rectFraction = x
            }
            hyperparameters.stages = st == EditStages() ? nil : st
        case "corpus": corpus = try path()
        case "cov_sentences": covSentences = try int(1...100_000_000)
        case "shard_sentences": shardSentences = try int(1...100_000_000)
        case "straggler_backup":
            if value == "off" { stragglerBackup = nil; break }
            guard let x = Double(value), x >= 1, x <= 1_000 else { throw bad("a multiple of the median job time in [1, 1000], or off") }
            stragglerBackup = x
        case "dead_after":
            guard let x = Double(value), x >= 1, x <= 600 else { throw bad("seconds in [1, 600]") }
            deadAfter = x
        case "artifacts": artifacts = try path()
        case "state": state = try path()
        default: throw ConfigError.unknownKey(key: key, line: line)
        }
    }

    /// The endpoint to bind: the configured one, else an ipc socket in `directory`; when that path is
    /// too long for a Unix socket (107 bytes), one in this user's private folder /tmp/alphaedit-UID
    /// named by a hash of `directory` (never a tcp port: that would need keys or `insecure_tcp`).
    public func resolvedEndpoint(directory: String) -> String {
        if let endpoint { return endpoint }
        let path = AbsolutePath.of(directory + "/coordinator.ipc")
        if path.utf8.count <= 100 { return "ipc://" + path }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for b in path.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return "ipc:///tmp/alphaedit-\(getuid())/\(String(h, radix: 16)).ipc"
    }

    /// Threads of each local worker.
    public var resolvedWorkerThreads: Int {
        if let workerThreads { return workerThreads }
        if case .local(let n) = workers { return max(1, threads / n) }
        return threads
    }
}
