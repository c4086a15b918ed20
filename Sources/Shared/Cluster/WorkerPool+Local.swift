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
        let pool = try WorkerPool(endpoint: cfg.resolvedEndpoint(directory: directory),
                                  modelChecksum: try ModelChecksum.of(path: model), logger: log)
        switch cfg.workers {
        case .local(let n):
            // Local workers share the coordinator's terminal: their per-job info lines would interleave
            // with its progress line, so at the default level they report warnings and errors only.
            let workerLevel = logLevel == "info" ? "notice" : logLevel
            do { try pool.spawnLocal(count: n, executable: executable, modelPath: model, threads: cfg.resolvedWorkerThreads,
                                     logLevel: workerLevel) } catch {
                pool.shutdown()
                throw error
            }
        case .remote:
            log.info("waiting for workers: alphaedit-worker --connect \(pool.endpoint) --model <same model>")
        case .inProcess:
            break
        }
        return pool
    }

    /// `alphaedit-worker` in the directory of the running executable (SwiftPM puts both products there).
    public static func siblingWorkerExecutable() -> String {
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return me.deletingLastPathComponent().appendingPathComponent("alphaedit-worker").path
    }

    /// Starts `count` worker processes connected to this pool; their stderr goes to ours.
    public func spawnLocal(count: Int, executable: String = WorkerPool.siblingWorkerExecutable(), modelPath: String,
                           threads: Int, logLevel: String = "info") throws {
        guard FileManager.default.isExecutableFile(atPath: executable) else { throw ClusterError.workerExecutable(executable) }
        let me = ProcessInfo.processInfo.processIdentifier
        for i in 0..<count {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = ["--connect", endpoint, "--model", modelPath, "--threads", "\(threads)",
                           "--name", "local-\(i + 1)", "--parent-pid", "\(me)", "--log-level", logLevel]
            try p.run()
            cond.withLock { children.append(p) }
            log.info("started local worker local-\(i + 1) (pid \(p.processIdentifier))")
        }
    }

    /// The local workers' pids (for tests and `status`).
    public var childPIDs: [Int32] { cond.withLock { children.map(\.processIdentifier) } }

    /// The exit codes when this pool started local workers and all of them have exited; else nil.
    func localWorkersAllExited() -> [Int32]? {
        let procs = cond.withLock { children }
        guard !procs.isEmpty, procs.allSatisfy({ !$0.isRunning }) else { return nil }
        return procs.map(\.terminationStatus)
    }

    func terminateChildren() {
        let procs = cond.withLock { children }
        // They were sent `shutdown`; give them a moment, then make sure.
        let deadline = ProcessStats.now() + 2
        for p in procs {
            while p.isRunning, ProcessStats.now() < deadline { usleep(20_000) }
            if p.isRunning { p.terminate() }
        }
        for p in procs { p.waitUntilExit() }
    }
}
