// Memory of K₀ builds. A shard holds its layers' f×f float64 sums on its worker while it runs
// (KeyStatistics.shardBytes: 0.95 GB for Qwen2.5-0.5B's 5 layers), and a worker with T threads runs up to T
// shards at once. Without a check, a 16-thread worker ran 16 of them, and two local workers in a 2 GB
// control group were both killed by the kernel's out-of-memory killer (session 41). Now:
// - Workers report their machine's available memory in their hello (and `--memory-mb`, a cap of their own),
//   then every second and after each result (`memory`): another process may take the machine's memory,
//   or give it back, while a build runs. Each report splits the figure into what is free and what the
//   worker's own jobs hold.
// - The coordinator leases a shard only where it fits: beside the shards the worker runs, within its own
//   cap; beside the shards all workers of that host name run, within the machine's memory for shards: the
//   smallest of their reports of what is free (less what this coordinator took since each report where it
//   shares the machine), plus what each of them holds for the shards it still runs.
// - On the coordinator's own machine a shard costs half as much again: its result, the packed
//   triangles, arrives in the coordinator's memory and may wait there for an earlier shard (measured:
//   Qwen in a 3 GB group, two shards at once against 2.7 GB reported, and the coordinator was killed while
//   it received their results).
// - Where a shard of every layer fits nowhere, DistributedCovariance builds the layers in passes of as
//   many as fit (`layersPerShard`, which on the coordinator's machine also counts the statistics the
//   coordinator will hold).
// - Where nothing runs yet, a shard is leased even when it does not fit, with a warning that names the
//   figures, so a build always moves on; where the limit keeps shards below the threads, one line says
//   so. Both once a run, per worker or machine.
import Support
import Wire
import Editing
import Foundation

public enum MemoryAdmission {
    /// Whether a job of `bytes` may start beside jobs of `running` bytes within `budget` bytes (nil: no
    /// limit known): always when none runs, else when all of them fit.
    public static func admits(bytes: Int, running: [Int], budget: Int?) -> Bool {
        guard let budget, !running.isEmpty else { return true }
        return running.reduce(0, +) + bytes <= budget
    }

    /// Jobs of `bytes` that fit at once in `budget` (at least 1).
    public static func fitting(bytes: Int, budget: Int) -> Int { max(1, budget / max(1, bytes)) }

    static func size(_ bytes: Int) -> String {
        Double(bytes) >= 1e9 ? String(format: "%.1f GB", Double(bytes) / 1e9) : String(format: "%.0f MB", Double(bytes) / 1e6)
    }
}

extension WorkerPool {
    /// The machine a worker runs on, as the admission groups them (a worker that names none: its own).
    func hostKey(_ w: PoolWorker) -> String { w.hello.host.map { "host \($0)" } ?? "worker \(w.label)" }

    /// Bytes a leased job holds on its worker (covariance shards; 0 for others).
    func memoryOf(job id: Int) -> Int {
        if case .covariance(let s)? = jobs[id]?.work { return s.memoryBytes ?? 0 }
        return 0
    }

    /// What a shard of `bytes` costs a machine: on the coordinator's own, its result too (see the file comment).
    func machineCost(_ bytes: Int, host: String?) -> Int {
        host == Self.ownHost ? bytes + bytes / 2 : bytes
    }

    static let ownHost = ProcessStats.hostName()

    static func residentBytes() -> Int { Int(ProcessStats.residentMB(peak: false) * 1_048_576) }

    /// The memory of `w`'s machine its K₀ shards may take now, the running ones included: the smallest
    /// of the machine's live workers' latest reports of what is free, less, on this coordinator's own
    /// machine, what this process took since each report (the K₀ sums it allocated after a report were
    /// still free in it); plus what each of them holds, up to the shards it runs now (memory held for
    /// other work, or by a shard that has ended, is not there for new shards). Where reports of different
    /// moments disagree, this errs low: a shard that ended since a report is free in neither figure until
    /// the next report.
    func machineBudget(_ w: PoolWorker, peers: [PoolWorker]) -> Int? {
        let own = w.hello.host == Self.ownHost
        let now = own ? Self.residentBytes() : 0
        guard let free = peers.compactMap({ p in
            p.memory.map { $0.hostMemoryBytes - $0.heldBytes - (own ? max(0, now - p.coordinatorResidentAtReport) : 0) }
        }).min() else { return nil }
        return free + peers.reduce(0) { sum, p in sum + min(p.memory?.heldBytes ?? 0, p.jobs.reduce(0) { $0 + memoryOf(job: $1) }) }
    }

    /// Under `cond`: whether `job` fits on worker `w` by memory (see the file comment); logs the notes.
    func memoryAdmits(_ w: PoolWorker, for job: JobAssignment) -> Bool {
        guard case .covariance(let shard) = job.work, let bytes = shard.memoryBytes else { return true }
        let host = hostKey(w)
        let peers = workers.values.filter { $0.alive && hostKey($0) == host }
        let hostBudget = machineBudget(w, peers: peers)
        let onWorker = w.jobs.map { memoryOf(job: $0) }.filter { $0 > 0 }
        let onHost = peers.flatMap(\.jobs).map { machineCost(memoryOf(job: $0), host: w.hello.host) }.filter { $0 > 0 }
        let cost = machineCost(bytes, host: w.hello.host)
        noteMemory(scope: "worker \(w.label)", what: "it may use (--memory-mb)", bytes: bytes, budget: w.hello.memoryBytes,
                   threads: max(1, w.hello.threads), shard: shard)
        noteMemory(scope: "machine \(w.hello.host ?? w.label)",
                   what: "available to its \(peers.count) worker\(peers.count == 1 ? "" : "s")\(cost > bytes ? " and this coordinator, which receives the results" : "")",
                   bytes: cost, budget: hostBudget, threads: peers.reduce(0) { $0 + max(1, $1.hello.threads) }, shard: shard)
        return MemoryAdmission.admits(bytes: bytes, running: onWorker, budget: w.hello.memoryBytes)
            && MemoryAdmission.admits(bytes: cost, running: onHost, budget: hostBudget)
    }

    /// Once a run per scope: a warning where one shard exceeds the budget, a line where the budget
    /// allows fewer shards at once than there are threads.
    private func noteMemory(scope: String, what: String, bytes: Int, budget: Int?, threads: Int, shard: CovarianceShard) {
        guard let budget, !memoryNoted.contains(scope) else { return }
        let k = MemoryAdmission.fitting(bytes: bytes, budget: budget)
        let a = "a K0 shard of \(shard.layers.count) layer\(shard.layers.count == 1 ? "" : "s") takes ≈ \(MemoryAdmission.size(bytes))"
        if bytes > budget {
            memoryNoted.insert(scope)
            log.warning("\(scope): \(a), more than the \(MemoryAdmission.size(budget)) \(what): it runs one at a time there and may still be killed by the out-of-memory killer; build fewer layers at once (--layers), run fewer workers there, or give it more memory")
        } else if k < threads {
            memoryNoted.insert(scope)
            log.notice("\(scope): at most \(k) K0 shard\(k == 1 ? "" : "s") at a time (\(a); \(MemoryAdmission.size(budget)) \(what); \(threads) threads)")
        }
    }
}

extension WorkerPool {
    /// Waits until a worker has joined and then until every local worker started here has joined or
    /// ended, or for remote workers until `settle` s pass without a new one: the memory they report
    /// decides how a K₀ build is cut (`layersPerShard`). Throws as `run` does when no worker comes within
    /// `noWorkerTimeout` or every local worker has ended.
    public func awaitWorkers(settle: Double = 1) throws {
        let start = ProcessStats.now()
        var seen = 0, since = start
        while true {
            reportEndedChildren()
            let (alive, heard, local, ended) = cond.withLock {
                (workers.values.filter(\.alive).count, workers.count, children.count, children.filter { !$0.isRunning }.count)
            }
            let now = ProcessStats.now()
            if heard != seen { seen = heard; since = now }
            if alive > 0 {
                if local > 0, heard + ended >= local { return }
                if local == 0, now - since >= settle { return }
            } else if local > 0, let how = localWorkersAllExited() {
                throw ClusterError.localWorkersExited(how)
            } else if now - start > noWorkerTimeout {
                throw ClusterError.noWorkers(seconds: noWorkerTimeout)
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// The most of `count` layers (at least 1) whose K₀ shard fits every live worker: its own memory
    /// (`--memory-mb`) and its machine's, as `memoryAdmits` counts them; `count` where nobody reports.
    /// On this coordinator's machine the statistics it will hold, all `count` layers' f×f sums, come
    /// first (call it before they are allocated).
    /// `fits` false: not even one layer fits somewhere (the answer is then 1).
    public func layersPerShard(_ count: Int, f: Int) -> (layers: Int, fits: Bool) {
        cond.withLock {
            let alive = workers.values.filter(\.alive)
            let coordinator = count * f * f * 8
            func fits(_ layers: Int) -> Bool {
                let bytes = KeyStatistics.shardBytes(layers: layers, f: f)
                return alive.allSatisfy { w in
                    let host = hostKey(w)
                    let budget = machineBudget(w, peers: alive.filter { hostKey($0) == host }) ?? .max
                    let need = machineCost(bytes, host: w.hello.host) + (w.hello.host == Self.ownHost ? coordinator : 0)
                    return bytes <= (w.hello.memoryBytes ?? .max) && need <= budget
                }
            }
            var n = count
            while n > 1, !fits(n) { n -= 1 }
            return (n, fits(n))
        }
    }
}
