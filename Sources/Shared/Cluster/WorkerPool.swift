// The coordinator's side of the cluster: a ROUTER bound to the endpoint, the workers that said hello
// (refusing another model or protocol), their liveness, and the dispatch of jobs with leases.
//
// One I/O thread owns the socket: it answers hellos, heartbeats every worker, expires the silent
// ones (their leased job goes back to the queue: lease expiry = the holder's heartbeats stopped for
// `WireProtocol.deadAfter`), brings each worker to the committed weights version (deltas in order)
// and hands queued jobs to workers with a free slot (covariance shards: one per worker thread, see
// WorkerNode; any other job: an idle worker). The caller's thread blocks in `run`, which returns the
// results through `onResult`, outside the lock, in arrival order.
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

public enum ClusterError: Error, CustomStringConvertible {
    case jobFailed(job: Int, work: String, reason: String)
    case noWorkers(seconds: Double)
    case badResult(job: Int, reason: String)
    case workerExecutable(String)
    case localWorkersExited([String])

    public var description: String {
        switch self {
        case let .jobFailed(j, w, r): "\(w) job \(j) failed: \(r)"
        case .noWorkers(let s): "no live worker for \(Int(s)) s: check the workers' logs (model path, endpoint)"
        case let .badResult(j, r): "result of job \(j) is unusable: \(r)"
        case .workerExecutable(let p): "worker executable not found at \(p): build the package (swift build)"
        case .localWorkersExited(let how): "every worker process started here has ended (\(how.joined(separator: "; "))) and none is connected: see their log lines above"
        }
    }
}

/// One connected worker, as the coordinator sees it.
struct PoolWorker {
    var hello: Hello
    var lastHeard: Double
    var lastSent: Double
    /// Weights version the worker holds once the deltas already sent are applied.
    var sentVersion: Int
    /// Jobs leased to it, oldest first.
    var jobs: [Int] = []
    /// The leases it held when counted dead, re-queued then: heard from again on the same connection,
    /// it is still running them (`adoptRunning`).
    var lostJobs: [Int] = []
    var alive = true
    /// It refused a job as busy (applying deltas, its slots full): no job goes to it until it is heard
    /// from again (its next heartbeat, result or acknowledgement), so a refused job does not bounce
    /// between the coordinator and a busy worker until its retries run out.
    var heldOff = false
    /// The deltas version on its way to it, if any (WireProtocol: pieces, acknowledged).
    var transfer: DeltaTransfer?
    /// Result payloads arriving from it in pieces, by job (this connection's; a hello starts afresh).
    var arriving: [Int: PieceAssembly] = [:]
    /// Its machine's memory as it last reported it (hello or `memory`; nil: not known), and this
    /// coordinator's resident bytes then: what it took since came out of that memory, where they share a
    /// machine (WorkerPool+Memory).
    var memory: MemoryReport?
    var coordinatorResidentAtReport = 0
    var label: String { "\(hello.name) (pid \(hello.pid))" }
}

/// One version's deltas going to one worker.
struct DeltaTransfer {
    let version: Int
    let path: String
    var window: PieceWindow
}

public struct WorkerSnapshot: Sendable {
    public var hello: Hello
    public var alive: Bool
    /// ProcessStats.now() clock.
    public var lastHeard: Double
    public var jobs: [Int]
}

/// Used from the caller's thread, the I/O thread and the store mirror (@unchecked): everything mutable
/// is guarded by `cond`, except `log`, `noWorkerTimeout` and `deadAfter`, which are set before `run`.
public final class WorkerPool: @unchecked Sendable {
    public let endpoint: String
    /// The endpoint as bound (a `*` port resolved).
    public private(set) var boundEndpoint = ""
    /// The ipc socket file this process bound, and its inode: removed at shutdown (tar, rsync and cp warn on one).
    private var ownSocketFile: (path: String, inode: UInt64)?
    public let modelChecksum: String
    var log: Logger
    /// Undecodable messages from peers that never joined this minute (a few logged: random bytes made thousands).
    var strangerGarbage = (since: 0.0, count: 0)
    /// Seconds `run` waits with no live worker before giving up.
    public var noWorkerTimeout = 120.0
    /// Seconds of silence after which a worker counts as dead (cluster.conf `dead_after`); told to each
    /// worker in its welcome. Set before workers join.
    public var deadAfter = WireProtocol.deadAfter

    let cond = NSCondition()
    // Everything below is guarded by `cond`.
    var workers: [[UInt8]: PoolWorker] = [:]
    var queue: [Int] = []
    var jobs: [Int: JobAssignment] = [:]
    var events: [PoolEvent] = []
    var committed: [String] = []   // BatchDeltas artifact files of committed versions 1…n
    var stopping = false
    var expired = 0
    /// Retryable refusals per job (a worker busy or short of deltas); past `maxRetries` the job fails.
    /// A worker that refused gets no job until it speaks again (`PoolWorker.heldOff`, at least every
    /// heartbeat interval), so the limit is ≥ 30 s of refusals, not a burst of milliseconds.
    var retries: [Int: Int] = [:]
    static let maxRetries = 60
    /// When each outstanding job was last leased (ProcessStats clock), the last durations (lease to
    /// result) of each kind of job, the jobs leased a second time, and how many were (straggler backups).
    var leasedAt: [Int: Double] = [:]
    var durations: [String: [Double]] = [:]
    var backedUp = Set<Int>()
    var backupCount = 0
    var backupFactor: Double? = ClusterConfig.defaultStragglerBackup
    /// Unusable results (a payload that does not decode, a wrong shape) per worker: at
    /// `maxBadResults` the worker is refused, and so is any later hello under its name.
    /// Workers and machines whose memory limits on K₀ shards were logged this run (WorkerPool+Memory).
    var memoryNoted = Set<String>()
    var badResults: [[UInt8]: Int] = [:]
    var refusedNames: [String: String] = [:]
    /// Workers to refuse on the I/O thread's next turn (it owns the socket), with the reason.
    var toRefuse: [([UInt8], String)] = []
    public static let maxBadResults = 3
    /// Unusable results of one job (from any workers) after which the run fails: the job itself, or
    /// this coordinator's reading of it, is at fault.
    public static let maxBadResultsPerJob = 6
    /// Job ids start at a random point, so no two coordinator processes share one: a remote worker that
    /// reconnects to a restarted coordinator (a campaign resumed after a crash) with the result of the
    /// old process's job 3 would otherwise deliver it as the new process's job 3 (other work, e.g. another
    /// batch's v* chunk of the same size, which no check could tell apart).
    private var nextJobID = Int.random(in: 1 ... (1 << 40))

    private var thread: Thread?
    private var zap: ZAPHandler?
    /// Keys made for `local N` workers of a CURVE coordinator (removed at shutdown).
    var localKeys: LocalWorkerKeys?
    private let stopped = DispatchSemaphore(value: 0)
    var children: [Process] = []  // guarded by `cond`
    var reportedChildren = Set<Int32>()  // guarded by `cond`: ended children already logged

    enum PoolEvent {
        case result(JobResult, [UInt8], worker: [UInt8])
        case failed(JobFailure)
    }

    /// Binds `endpoint` and starts the I/O thread. With `.curve` security only workers whose keys are
    /// authorised join (the ZAP handler decides and the log says why a peer was refused); a plaintext
    /// `tcp://` endpoint is refused unless `insecureTCP`. `ownsIPCDirectory`: the endpoint is an ipc
    /// socket in a folder this process chose, which is made private.
    public init(endpoint: String, modelChecksum: String, security: ServerSecurity = .plaintext, insecureTCP: Bool = false,
                ownsIPCDirectory: Bool = false, logger: Logger) throws {
        self.endpoint = endpoint
        self.modelChecksum = modelChecksum
        log = logger
        if endpoint.hasPrefix("tcp://"), !security.isCurve {
            guard insecureTCP else { throw SecurityError.plaintextTCP(endpoint) }
            log.warning("coordinator on \(endpoint) in plaintext (insecure_tcp = true): anyone who can reach the port can join")
        }
        try IPCDirectory.secure(endpoint, own: ownsIPCDirectory, log: log)
        try IPCDirectory.checkFree(endpoint)
        let ctx = try ZMQContext()
        if case let .curve(pair, authorized) = security {
            let l = logger
            zap = try ZAPHandler(context: ctx, authorized: authorized) { d in
                if d.allowed {
                    l.info("admitted \(d.label ?? "a worker") (key \(d.key.prefix(8))…) from \(d.address)")
                } else {
                    l.error("refused a peer from \(d.address): \(d.reason)")
                }
            }
            log.info("CURVE on: coordinator public key \(pair.publicKey.z85), \(authorized.count) authorised worker key(s)")
        }
        let socket = try ZMQSocket(ctx, .router)
        try socket.secure(security)
        let monitor = try socket.monitor(name: "coordinator")
        try socket.bind(endpoint)
        boundEndpoint = (try? socket.lastEndpoint()) ?? endpoint
        if endpoint.hasPrefix("ipc://") {  // checked free above: the socket there now is this process's, removed at shutdown
            let path = String(endpoint.dropFirst(6))
            var st = stat()
            if stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK { ownSocketFile = (path, UInt64(st.st_ino)) }
        }
        log.info("coordinator bound to \(boundEndpoint), protocol \(WireProtocol.version)")
        nonisolated(unsafe) let ioSocket = socket  // moved: the I/O thread is its only user from here on
        nonisolated(unsafe) let ioMonitor = monitor
        let t = Thread { [self] in
            self.loop(ioSocket, ioMonitor)
            ioMonitor.close()
            // Up to 1 s to deliver the workers' `shutdown` (with linger 0 it was dropped; remote workers reconnected forever).
            try? ioSocket.setLinger(milliseconds: 1000)
            ioSocket.close()
            self.stopped.signal()
        }
        thread = t
        t.start()
    }

    deinit { shutdown() }

    public var aliveCount: Int { cond.withLock { workers.values.filter(\.alive).count } }

    /// (worker pid, job id) for every job out on lease now.
    public var leases: [(pid: Int32, job: Int)] {
        cond.withLock { workers.values.flatMap { w in w.jobs.map { (w.hello.pid, $0) } } }
    }

    /// The workers heard from so far, alive or not (for the store's `workers` table and `status`).
    public var workerSnapshot: [WorkerSnapshot] {
        cond.withLock {
            workers.values.map { WorkerSnapshot(hello: $0.hello, alive: $0.alive, lastHeard: $0.lastHeard, jobs: $0.jobs) }
                .sorted { $0.hello.name < $1.hello.name }
        }
    }

    /// Leases that expired with their worker (each such job went back to the queue).
    public var expiredLeases: Int { cond.withLock { expired } }

    /// Straggler backups: with nothing queued that it could take, a worker with a free slot is leased a
    /// second copy of the oldest job that has run on one live worker (heard from within the last second,
    /// so a dead one is left to its lease's expiry) for longer than this many times the median duration
    /// of its kind's last jobs (at least 3 known) and at least `backupMinSeconds`, and whose result is
    /// not already on its way. Whichever result comes first counts; the other is dropped when it arrives,
    /// which frees its slot (MapReduce's backup tasks). Each job is backed up once. nil: never.
    /// Workers of one kernel family compute the same numbers for a job (README, "What is guaranteed"), so
    /// there nothing depends on which copy wins; AVX2 beside AVX-512 workers agree to float32 rounding, as
    /// for which worker gets a job at all.
    public var stragglerBackup: Double? {
        get { cond.withLock { backupFactor } }
        set { cond.withLock { backupFactor = newValue } }
    }
    static let backupMinSeconds = 2.0

    /// Jobs leased a second time to another worker (straggler backups) so far.
    public var backups: Int { cond.withLock { backupCount } }

    /// Records committed batch `version` (1, 2, …, in order) whose BatchDeltas artifact is at `path`;
    /// every live worker, and every worker that joins later, is sent the deltas it lacks, in order,
    /// before its next job. Files are read when sent (a long campaign's deltas do not stay in memory).
    public func commit(version: Int, deltas path: String) {
        cond.withLock {
            if version == committed.count + 1 { committed.append(path) }
        }
    }

    public var weightsVersion: Int { cond.withLock { committed.count } }

    /// Runs `works` on the workers at the current weights version; `onResult(index, result, payload)`
    /// sees every result once (index into `works`). A result it finds unusable (it throws
    /// `ClusterError.badResult`, before changing anything) is dropped and its job re-queued for
    /// another worker; its sender is refused after `maxBadResults` of them. Throws on a job that fails
    /// for a reason other than its worker (the same input would fail anywhere), on a job with
    /// `maxBadResultsPerJob` unusable results, or when no worker lives for `noWorkerTimeout`.
    public func run(_ works: [Work], progress: (Int, Int) -> Void = { _, _ in },
                    onResult: (Int, JobResult, [UInt8]) throws -> Void) throws {
        var index: [Int: Int] = [:]
        var assignments: [Int: JobAssignment] = [:]
        var unusable: [Int: Int] = [:]
        cond.withLock {
            memoryNoted = []
            let version = committed.count
            for (i, w) in works.enumerated() {
                let id = nextJobID
                nextJobID += 1
                jobs[id] = JobAssignment(id: id, weightsVersion: version, work: w)
                assignments[id] = jobs[id]
                queue.append(id)
                index[id] = i
            }
        }
        defer {
            // On failure, forget this run's unfinished jobs.
            cond.withLock {
                queue.removeAll { index[$0] != nil }
                for id in index.keys { jobs[id] = nil; leasedAt[id] = nil; backedUp.remove(id) }
            }
        }
        var done = 0
        var lonely = ProcessStats.now(), lastTurn = lonely
        while done < works.count {
            let batch: [PoolEvent] = cond.withLock {
                if events.isEmpty { _ = cond.wait(until: Date().addingTimeInterval(0.25)) }
                defer { events = [] }
                return events
            }
            for e in batch {
                switch e {
                case let .result(r, payload, worker):
                    guard let i = index[r.jobID] else { continue }
                    do {
                        try onResult(i, r, payload)
                    } catch let e as ClusterError {
                        guard case .badResult = e, let job = assignments[r.jobID] else { throw e }
                        unusable[r.jobID, default: 0] += 1
                        if unusable[r.jobID, default: 0] >= Self.maxBadResultsPerJob { throw e }
                        cond.withLock { rejectResult(of: job, from: worker, reason: "\(e)") }
                        continue
                    }
                    index[r.jobID] = nil
                    done += 1
                    progress(done, works.count)
                case .failed(let f):
                    guard index[f.jobID] != nil else { continue }
                    throw ClusterError.jobFailed(job: f.jobID, work: works[index[f.jobID] ?? 0].name, reason: f.reason)
                }
            }
            let now = ProcessStats.now()
            if WireProtocol.wasSuspended(lastTurn: lastTurn, now: now, deadAfter: deadAfter) { lonely = now }  // not the workers' time
            lastTurn = now
            if aliveCount > 0 { lonely = now } else if now - lonely > noWorkerTimeout {
                throw ClusterError.noWorkers(seconds: noWorkerTimeout)
            } else if let how = localWorkersAllExited() {
                // Nothing will connect: say so now rather than after the timeout.
                throw ClusterError.localWorkersExited(how)
            }
            reportEndedChildren()
        }
    }

    /// Under `cond`: puts `job` back at the head of the queue and counts a bad result against `worker`,
    /// which is refused (by the I/O thread) at `maxBadResults`.
    func rejectResult(of job: JobAssignment, from worker: [UInt8], reason: String) {
        jobs[job.id] = job
        if !queue.contains(job.id) { queue.insert(job.id, at: 0) }   // already there if its lease had expired
        badResults[worker, default: 0] += 1
        let n = badResults[worker, default: 0]
        let label = workers[worker]?.label ?? hex(worker)
        guard n <= Self.maxBadResults else {  // sent before the refusal reached it
            log.error("rejected the result of job \(job.id) from \(label), which is being refused: \(reason); job re-queued")
            return
        }
        log.error("rejected the result of job \(job.id) from \(label) (\(n) of \(Self.maxBadResults) allowed): \(reason); job re-queued")
        if n == Self.maxBadResults, let w = workers[worker] {
            let why = "\(n) unusable results (the last: \(reason))"
            refusedNames[w.hello.name] = why
            toRefuse.append((worker, why))
        }
    }

    /// Tells the workers to stop, ends the I/O thread and the local worker processes.
    public func shutdown() {
        let first: Bool = cond.withLock {
            defer { stopping = true }
            return !stopping
        }
        guard first else { return }
        if thread != nil { stopped.wait() }  // nil: init threw before the I/O thread started
        terminateChildren()
        zap?.stop()
        localKeys?.remove()
        var st = stat()
        if let f = ownSocketFile, stat(f.path, &st) == 0, UInt64(st.st_ino) == f.inode, st.st_mode & S_IFMT == S_IFSOCK {
            unlink(f.path)
        }
    }

    // MARK: - I/O thread

    private func loop(_ socket: ZMQSocket, _ monitor: ZMQSocket) {
        var lastTurn = ProcessStats.now()
        while true {
            do {
                let ready = try poll([socket, monitor], timeoutMs: 50)
                if ready[1] { while let f = try monitor.receive(timeoutMs: 0) { note(SocketEvent(frames: f)) } }
                if ready[0], let frames = try socket.receive(timeoutMs: 0) { handle(frames, socket) }
            } catch {
                log.error("receive failed: \(error)")
            }
            let stop: Bool = cond.withLock {
                let now = ProcessStats.now()
                if stopping {
                    for id in workers.keys where workers[id]?.alive == true { send(.shutdown, to: id, socket) }
                    return true
                }
                for (id, why) in toRefuse { refuseJoined(id, why, socket) }
                toRefuse = []
                if WireProtocol.wasSuspended(lastTurn: lastTurn, now: now, deadAfter: deadAfter) { restartLiveness(now, gap: now - lastTurn) }
                lastTurn = now
                expireSilentWorkers(now)
                for id in Array(workers.keys) where workers[id]?.alive == true {
                    syncDeltas(id, socket)
                    if now - (workers[id]?.lastSent ?? 0) >= WireProtocol.heartbeatInterval { send(.heartbeat, to: id, socket) }
                }
                dispatch(socket)
                return false
            }
            if stop { return }
        }
    }

    /// Sends under `cond`; a worker that cannot be reached is left to the liveness check.
    func send(_ m: Message, to id: [UInt8], _ socket: ZMQSocket) {
        do {
            try socket.send([id] + (try m.frames()))
            workers[id]?.lastSent = ProcessStats.now()
        } catch {
            // A peer whose connection is gone fails every heartbeat until its liveness runs out: one line
            // per failed job or control message, heartbeats only at debug level.
            if case .heartbeat = m {
                workers[id]?.lastSent = ProcessStats.now()  // tried: the next one an interval later, not every turn
                log.debug("heartbeat to \(workers[id]?.label ?? hex(id)) failed: \(error)")
            } else if workers[id] == nil {
                log.debug("send \(m.kind) to unknown peer \(hex(id)) failed: \(error)")
            } else {
                log.warning("send \(m.kind) to \(workers[id]?.label ?? hex(id)) failed: \(error)")
            }
        }
    }

    /// Refuses a worker that had joined: it is told why (and exits), its leases go back to the queue.
    private func refuseJoined(_ id: [UInt8], _ why: String, _ socket: ZMQSocket) {
        guard let w = workers[id] else { return }
        log.error("refused worker \(w.label): \(why)")
        send(.refuse(Reason(why)), to: id, socket)
        queue.insert(contentsOf: w.jobs.filter { jobs[$0] != nil }, at: 0)
        workers[id] = nil
    }

    /// This coordinator was not running for `gap` seconds: the live workers get a fresh window of
    /// `deadAfter` to be heard from, rather than being counted dead for a silence that was ours.
    private func restartLiveness(_ now: Double, gap: Double) {
        let alive = workers.keys.filter { workers[$0]?.alive == true }
        for id in alive { workers[id]?.lastHeard = now }
        let what = "the liveness of \(alive.count) worker\(alive.count == 1 ? "" : "s") starts again now"
        log.warning("this coordinator did not run for \(String(format: "%.1f", gap)) s (stopped or suspended): \(what)")
    }

    private func expireSilentWorkers(_ now: Double) {
        for (id, w) in workers where w.alive && now - w.lastHeard > deadAfter {
            countDead(id, "silent for \(String(format: "%.1f", now - w.lastHeard)) s")
        }
    }

    /// Under `cond`: worker `id` is dead (`why`: silent for `deadAfter`, or its process has ended); its
    /// leases go back to the queue.
    func countDead(_ id: [UInt8], _ why: String) {
        guard let w = workers[id], w.alive else { return }
        workers[id]?.alive = false
        workers[id]?.lostJobs = w.jobs
        workers[id]?.jobs = []
        let lost = w.jobs.filter { jobs[$0] != nil }
        queue.insert(contentsOf: lost, at: 0)
        expired += lost.count
        let note = lost.isEmpty ? "" : "; lease of job\(lost.count > 1 ? "s" : "") \(lost.map(String.init).joined(separator: ", ")) expired, re-queued"
        log.error("worker \(w.label) \(why): counted dead\(note)")
    }

    /// Brings an idle worker to the committed version, piece by piece: at most `windowPieces`
    /// unacknowledged, so heartbeats keep flowing beside a transfer of any size (WireProtocol). Each
    /// piece is read from the artifact file when it is sent; a version counts as sent (`sentVersion`,
    /// which lets jobs of that version go to the worker) once the worker holds all of it.
    private func syncDeltas(_ id: [UInt8], _ socket: ZMQSocket) {
        guard let w = workers[id], w.jobs.isEmpty, w.sentVersion < committed.count else { return }
        var t: DeltaTransfer
        if let current = w.transfer {
            t = current
        } else {
            let v = w.sentVersion + 1, path = committed[v - 1]
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
            guard let size, size > 0 else {
                log.error("cannot read the deltas of version \(v) at \(path): \(w.label) stays at version \(v - 1)")
                return
            }
            t = DeltaTransfer(version: v, path: path, window: PieceWindow(total: size))
        }
        if t.window.allAcknowledged {
            workers[id]?.sentVersion = t.version
            workers[id]?.transfer = nil
            return syncDeltas(id, socket)   // the next version, if any
        }
        while let r = t.window.next() {
            guard let bytes = Self.read(t.path, offset: r.lowerBound, count: r.count) else {
                log.error("cannot read bytes \(r) of the deltas of version \(t.version) at \(t.path): \(w.label) stays at version \(t.version - 1)")
                break
            }
            send(.deltas(DeltaUpdate(version: t.version, offset: r.lowerBound, total: t.window.total), payload: bytes), to: id, socket)
            t.window.markSent(r)
        }
        workers[id]?.transfer = t
    }

    /// `count` bytes of file `path` from `offset`, or nil when it cannot give them all.
    private static func read(_ path: String, offset: Int, count: Int) -> [UInt8]? {
        guard let h = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? h.close() }
        guard (try? h.seek(toOffset: UInt64(offset))) != nil, let d = try? h.read(upToCount: count), d.count == count else { return nil }
        return [UInt8](d)
    }

    /// A worker's acknowledgement of a deltas piece: bytes of `u.version` it holds.
    func deltasReceived(_ u: DeltaUpdate, from id: [UInt8]) {
        if var t = workers[id]?.transfer, t.version == u.version, u.total == t.window.total, t.window.saysDropped(u.offset) {
            // Fewer bytes than it held before: the worker dropped the version (a piece it rejected). Sent again from byte 0.
            log.warning("\(workers[id]?.label ?? hex(id)) holds \(u.offset) of the \(u.total) bytes of version \(u.version) after \(t.window.acked): sending them again from the start")
            t.window.restart()
            workers[id]?.transfer = t
            return
        }
        guard var t = workers[id]?.transfer, t.version == u.version, u.total == t.window.total, t.window.acknowledge(u.offset) else {
            log.warning("ignored a deltas acknowledgement (version \(u.version), \(u.offset) of \(u.total) bytes) from \(workers[id]?.label ?? hex(id)): no such transfer in progress")
            return
        }
        workers[id]?.transfer = t
    }

    /// Whether worker `w` can take `job` now (mirrors WorkerNode.hasSlot).
    /// A K₀ shard also needs room in the worker's and its machine's memory (WorkerPool+Memory).
    private func hasSlot(_ w: PoolWorker, for job: JobAssignment) -> Bool {
        if !w.jobs.isEmpty {
            guard job.work.sharesWorker && w.jobs.count < max(1, w.hello.threads)
                && w.jobs.allSatisfy({ jobs[$0]?.work.sharesWorker ?? true }) else { return false }
        }
        return memoryAdmits(w, for: job)
    }

    /// Leases queued jobs, one per worker per round (so two idle workers get one each before either
    /// gets a second), until no worker has a free slot for a queued job.
    private func dispatch(_ socket: ZMQSocket) {
        var leased = true
        while leased, !queue.isEmpty {
            leased = false
            for id in workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                guard let w = workers[id], w.alive, !w.heldOff, !queue.isEmpty else { continue }
                guard let i = queue.firstIndex(where: { jobs[$0]?.weightsVersion == w.sentVersion && !w.jobs.contains($0) }), let job = jobs[queue[i]],
                      hasSlot(w, for: job) else { continue }
                queue.remove(at: i)
                workers[id]?.jobs.append(job.id)
                leasedAt[job.id] = ProcessStats.now()
                leased = true
                log.debug("job \(job.id) (\(job.work.name)) leased to \(w.label)")
                send(.job(job), to: id, socket)
            }
        }
        backUpStragglers(socket)
    }

    /// Under `cond`: records the duration of a job whose result was taken (for `stragglerBackup`).
    func noteDone(_ job: JobAssignment) {
        backedUp.remove(job.id)
        guard let t = leasedAt.removeValue(forKey: job.id) else { return }
        var d = durations[job.work.name, default: []]
        d.append(ProcessStats.now() - t)
        if d.count > 64 { d.removeFirst(d.count - 64) }
        durations[job.work.name] = d
    }

    /// Leases a second copy of a straggling job to a worker with nothing else to do (`stragglerBackup`).
    private func backUpStragglers(_ socket: ZMQSocket) {
        guard let factor = backupFactor else { return }
        let now = ProcessStats.now()
        var holders: [Int: [[UInt8]]] = [:]
        for (id, w) in workers where w.alive { for j in w.jobs { holders[j, default: []].append(id) } }
        let stragglers = holders.compactMap { (j, ids) -> (JobAssignment, [UInt8], Double)? in
            guard ids.count == 1, !backedUp.contains(j), let job = jobs[j], let since = leasedAt[j], let w = workers[ids[0]],
                  now - w.lastHeard <= 2 * WireProtocol.heartbeatInterval, w.arriving[j] == nil,
                  let known = durations[job.work.name], known.count >= 3 else { return nil }
            let median = known.sorted()[known.count / 2]
            guard now - since > max(Self.backupMinSeconds, factor * median) else { return nil }
            return (job, ids[0], median)
        }.sorted { $0.0.id < $1.0.id }
        for (job, holder, median) in stragglers {
            for id in workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                guard let w = workers[id], id != holder, w.alive, !w.heldOff, w.sentVersion == job.weightsVersion,
                      !w.jobs.contains(job.id), hasSlot(w, for: job),
                      !queue.contains(where: { jobs[$0]?.weightsVersion == w.sentVersion }) else { continue }
                workers[id]?.jobs.append(job.id)
                backedUp.insert(job.id)
                backupCount += 1
                let text = "job \(job.id) (\(job.work.name)) has run \(String(format: "%.1f", now - (leasedAt[job.id] ?? now))) s on "
                    + "\(workers[holder]?.label ?? hex(holder)), over \(factor)× the median \(String(format: "%.2f", median)) s: "
                    + "backed up on \(w.label); the first result counts"
                log.notice("\(text)")
                send(.job(job), to: id, socket)
                break
            }
        }
    }

    /// A handshake failure seen by the socket monitor. A refused key is logged by the ZAP handler,
    /// with the peer's address; the rest (a plaintext peer on a CURVE socket, a broken handshake) here.
    private func note(_ event: SocketEvent?) {
        guard let event, let why = event.failure else { return }
        switch event.kind {
        case .authRejected: return
        case .failedNoDetail:
            log.error("refused a peer on \(event.endpoint): it closed the handshake (a plaintext peer, one pinning another coordinator key, or a worker that gave up waiting: on a slow, lossy link raise dead_after)")
        default: log.error("refused a peer on \(event.endpoint): \(why)")
        }
    }

    func hex(_ id: [UInt8]) -> String { id.map { String(format: "%02x", $0) }.joined() }
}
