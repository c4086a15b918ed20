// `workers = local N`: the coordinator starts N `alphaedit-worker` processes on this machine, found
// beside its own executable, and ends them when it ends. Each is told the coordinator's pid and
// exits by itself if the coordinator dies without ending it (kill -9).
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store
import Evaluation
import Wire
import Config
import Foundation
import Logging

extension WorkerPool {
    /// The cluster of a config: binds its endpoint (default: ipc in `directory`) and, for
    /// `local N`, starts the N workers on the config's model.
    public static func start(_ cfg: ClusterConfig, directory: String, logLevel: String = "info",
                             executable: String = WorkerPool.siblingWorkerExecutable()) throws -> WorkerPool {
        let log = Logger(label: "coordinator")
        let model = AbsolutePath.of(cfg.model)
        var security = try cfg.serverSecurity()   // every key file read before a socket exists
        var localKeys: LocalWorkerKeys?
        var slurmKeys: CurveKeyPair?
        var endpoint = cfg.resolvedEndpoint(directory: directory)
        switch cfg.workers {
        case .local:
            if case let .curve(pair, authorized) = security {
                let keys = try LocalWorkerKeys.create(coordinator: pair)
                var a = authorized
                a.labels[keys.pair.publicKey] = "local worker"
                security = .curve(pair, authorized: a)
                localKeys = keys
            }
        case .slurm:
            // Always CURVE: the configured key (with its authorized_keys, if any) or one made now; the
            // srun workers get a pair made now through their environment (no shared file system needed).
            try SlurmWorkers.checkAllocation()
            let workerPair = try CurveKeyPair.generate()
            var pair = try CurveKeyPair.generate(), authorized = AuthorizedKeys()
            if case let .curve(p, a) = security { pair = p; authorized = a }
            authorized.labels[workerPair.publicKey] = "slurm worker"
            security = .curve(pair, authorized: authorized)
            slurmKeys = workerPair
            if cfg.endpoint == nil { endpoint = "tcp://*:*" }  // any free port, on every interface
        default:
            break
        }
        let pool: WorkerPool
        do {
            pool = try WorkerPool(endpoint: endpoint, modelChecksum: try ModelChecksum.of(path: model),
                                  security: security, insecureTCP: cfg.insecureTCP, ownsIPCDirectory: cfg.endpoint == nil, logger: log)
        } catch {
            localKeys?.remove()
            throw error
        }
        pool.localKeys = localKeys
        pool.stragglerBackup = cfg.stragglerBackup
        pool.deadAfter = cfg.deadAfter
        switch cfg.workers {
        case .local(let n):
            // Local workers share the coordinator's terminal: their per-job info lines would interleave
            // with its progress line, so at the default level they report warnings and errors only.
            let workerLevel = logLevel == "info" ? "notice" : logLevel
            do { try pool.spawnLocal(count: n, executable: executable, modelPath: model, threads: cfg.resolvedWorkerThreads,
                                     logLevel: workerLevel, memoryMB: cfg.workerMemoryMB) } catch {
                pool.shutdown()
                throw error
            }
        case .slurm(let n):
            guard case let .curve(pair, _) = security, let slurmKeys else { break }
            do {
                let p = try SlurmWorkers.start(count: n, executable: executable, connect: Endpoint.connectable(pool.boundEndpoint, host: ProcessInfo.processInfo.hostName),
                                               modelPath: model, threads: cfg.workerThreads ?? SlurmWorkers.cpusPerTask,
                                               logLevel: logLevel == "info" ? "notice" : logLevel,
                                               workerKeys: slurmKeys, coordinatorKey: pair.publicKey, log: log)
                pool.cond.withLock { pool.children.append(p) }
            } catch {
                pool.shutdown()
                throw error
            }
        case .remote:
            let keys = cfg.curveKey == nil ? "" : " --key <its .key> --coordinator-key <this coordinator's .pub>"
            log.info("waiting for workers: alphaedit-worker --connect \(pool.endpoint) --model <same model>\(keys)")
        case .inProcess:
            break
        }
        return pool
    }

    /// A pool on `endpoint` with CURVE under a coordinator key pair made now; the workers it starts
    /// with `spawnLocal` get a pair of their own (the only key it admits). For Slurm workers and the
    /// benchmark's tcp+CURVE figures.
    public static func withEphemeralCurve(endpoint: String, modelChecksum: String, logger: Logger) throws -> WorkerPool {
        let pair = try CurveKeyPair.generate()
        let keys = try LocalWorkerKeys.create(coordinator: pair)
        do {
            let pool = try WorkerPool(endpoint: endpoint, modelChecksum: modelChecksum,
                                      security: .curve(pair, authorized: AuthorizedKeys([keys.pair.publicKey: "local worker"])),
                                      logger: logger)
            pool.localKeys = keys
            return pool
        } catch {
            keys.remove()
            throw error
        }
    }

    /// `alphaedit-worker` in the directory of the running executable (SwiftPM puts both products there).
    public static func siblingWorkerExecutable() -> String {
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return me.deletingLastPathComponent().appendingPathComponent("alphaedit-worker").path
    }

    /// Starts `count` worker processes connected to this pool; their stderr goes to ours. `memoryMB`:
    /// each one's `--memory-mb` (nil: they measure the machine's).
    public func spawnLocal(count: Int, executable: String = WorkerPool.siblingWorkerExecutable(), modelPath: String,
                           threads: Int, logLevel: String = "info", memoryMB: Int? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: executable) else { throw ClusterError.workerExecutable(executable) }
        let me = ProcessInfo.processInfo.processIdentifier
        for i in 0..<count {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = ["--connect", Endpoint.connectable(endpoint, host: "127.0.0.1"), "--model", modelPath, "--threads", "\(threads)",
                           "--name", "local-\(i + 1)", "--parent-pid", "\(me)", "--log-level", logLevel]
                + (localKeys.map { ["--key", $0.keyPath, "--coordinator-key", $0.coordinatorPath] } ?? [])
                + (memoryMB.map { ["--memory-mb", "\($0)"] } ?? [])
            try p.run()
            cond.withLock { children.append(p) }
            log.info("started local worker local-\(i + 1) (pid \(p.processIdentifier))")
        }
    }

    /// The local workers' pids (for tests and `status`).
    public var childPIDs: [Int32] { cond.withLock { children.map(\.processIdentifier) } }

    /// How each worker process this pool started ended, when all of them have; else nil.
    func localWorkersAllExited() -> [String]? {
        let procs = cond.withLock { children }
        guard !procs.isEmpty, procs.allSatisfy({ !$0.isRunning }) else { return nil }
        return procs.map(Self.howItEnded)
    }

    /// Logs, once each, the worker processes started here that ended during a run other than by a clean
    /// exit (a worker killed by the out-of-memory killer was otherwise only "silent for 3 s"), and counts
    /// each one's connection dead at once: its leases go to the other workers without waiting `deadAfter`.
    func reportEndedChildren() {
        let ended: [Process] = cond.withLock {
            let e = children.filter { !$0.isRunning && !reportedChildren.contains($0.processIdentifier) }
            for p in e { reportedChildren.insert(p.processIdentifier) }
            return e
        }
        for p in ended where !(p.terminationReason == .exit && p.terminationStatus == 0) { log.error("\(Self.howItEnded(p))") }
        cond.withLock {
            for p in ended {
                for (id, w) in workers where w.alive && w.hello.pid == p.processIdentifier { countDead(id, "has ended") }
            }
        }
    }

    /// "local-1 (pid 12) exited with code 3", or "… was killed by signal 9 (SIGKILL: …)".
    static func howItEnded(_ p: Process) -> String {
        let who = label(p)
        guard p.terminationReason == .uncaughtSignal else { return "\(who) exited with code \(p.terminationStatus)" }
        let signal = p.terminationStatus
        let why = signal == SIGKILL ? " (SIGKILL: where nobody sent it, the kernel's out-of-memory killer did, when the machine or this "
            + "control group ran out of memory: see dmesg; fewer local workers, fewer layers per K0 build, or more memory)" : ""
        return "\(who) was killed by signal \(signal)\(why)"
    }

    /// "local-1 (pid 12)".
    static func label(_ p: Process) -> String {
        let args = p.arguments ?? []
        let name = args.firstIndex(of: "--name").flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil } ?? "worker"
        return "\(name) (pid \(p.processIdentifier))"
    }

    func terminateChildren() {
        let procs = cond.withLock { children }
        // They were sent `shutdown`; give them a moment, then make sure.
        // A stopped worker (SIGSTOP, ^Z, a debugger) holds a SIGTERM pending forever, and waiting for it
        // hung the coordinator after its work was done: it is woken with SIGCONT, and killed where
        // SIGTERM did not end it within 3 s.
        let deadline = ProcessStats.now() + 2
        for p in procs {
            while p.isRunning, ProcessStats.now() < deadline { usleep(20_000) }
            if p.isRunning {
                p.terminate()
                kill(p.processIdentifier, SIGCONT)
            }
        }
        let killAt = ProcessStats.now() + 3
        for p in procs {
            while p.isRunning, ProcessStats.now() < killAt { usleep(20_000) }
            if p.isRunning {
                log.warning("\(Self.label(p)) did not end on SIGTERM within 3 s: killed")
                kill(p.processIdentifier, SIGKILL)
            }
            p.waitUntilExit()
        }
    }
}
