// `workers = slurm N`: inside a Slurm allocation (sbatch or salloc), the coordinator starts its N workers
// as one `srun` job step of N tasks, tells them its tcp endpoint (this node's host name and the port it
// bound) and their CURVE keys, and ends them when it ends (they are sent shutdown; srun is terminated
// if they linger). The keys travel in the step's environment, which only the job's user can read (a
// command line is visible to everyone), so no shared file system is needed for them.
import Support
import Wire
import Foundation
import Logging

public enum SlurmError: Error, Equatable, CustomStringConvertible {
    case noAllocation
    case noSrun

    public var description: String {
        switch self {
        case .noAllocation:
            "workers = slurm N runs inside a Slurm allocation (SLURM_JOB_ID is not set): submit with sbatch (examples/slurm/) or run under salloc"
        case .noSrun: "srun is not on PATH: workers = slurm N needs Slurm's client commands"
        }
    }
}

public enum SlurmWorkers {
    /// Environment variables that carry a Slurm worker's keys (Z85).
    public static let secretKeyVariable = "ALPHAEDIT_WORKER_SECRET_KEY"
    public static let coordinatorKeyVariable = "ALPHAEDIT_COORDINATOR_PUBLIC_KEY"

    static func checkAllocation() throws {
        guard ProcessInfo.processInfo.environment["SLURM_JOB_ID"] != nil else { throw SlurmError.noAllocation }
        guard srun() != nil else { throw SlurmError.noSrun }
    }

    static func srun() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/srun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Threads per worker: the allocation's CPUs per task, else 1.
    static var cpusPerTask: Int {
        ProcessInfo.processInfo.environment["SLURM_CPUS_PER_TASK"].flatMap(Int.init).map { max(1, min(256, $0)) } ?? 1
    }

    static func start(count: Int, executable: String, connect: String, modelPath: String, threads: Int, logLevel: String,
                      workerKeys: CurveKeyPair, coordinatorKey: CurveKey, log: Logger) throws -> Process {
        guard let srun = srun() else { throw SlurmError.noSrun }
        guard FileManager.default.isExecutableFile(atPath: executable) else { throw ClusterError.workerExecutable(executable) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: srun)
        // --overlap: the step may share CPUs with the batch step that runs this coordinator.
        p.arguments = ["--overlap", "--ntasks=\(count)", "--cpus-per-task=\(threads)", "--job-name=alphaedit-workers",
                       "--kill-on-bad-exit=0", executable, "--connect", connect, "--model", modelPath, "--threads", "\(threads)",
                       "--log-level", logLevel]
        var env = ProcessInfo.processInfo.environment
        env[secretKeyVariable] = workerKeys.secretKey.z85
        env[coordinatorKeyVariable] = coordinatorKey.z85
        p.environment = env
        try p.run()
        log.info("started \(count) Slurm worker task(s) with srun (pid \(p.processIdentifier)), connecting to \(connect)")
        return p
    }
}
