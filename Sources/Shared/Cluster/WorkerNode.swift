// The worker process's loop (`alphaedit-worker`): a DEALER connected to the coordinator. The socket
// thread says hello, heartbeats, decodes messages and hands jobs to job threads, so heartbeats
// continue during a long job; a job thread hands its outcome back through a locked queue that the
// socket thread drains after every poll (ZeroMQ sockets are not thread-safe).
//
// Slots: a worker with T threads runs up to T covariance shards at once, one thread each (no shard
// splits its batches between threads, so none waits at its end for the slower half, and one shard's
// result travels while the next computes); any other job runs alone, with all T threads.
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

public enum WorkerError: Error, CustomStringConvertible {
    case refused(String)
    public var description: String {
        switch self {
        case .refused(let r): "refused by the coordinator: \(r)"
        }
    }
}

public final class WorkerNode {
    public let endpoint: String
    public let name: String
    public let runner: JobRunner
    public let modelChecksum: String
    /// Exit when this process is no longer our parent (a `local` worker dies with its coordinator).
    public var parentPID: Int32?
    /// Seconds of the coordinator's silence after which this worker reconnects (`--dead-after`); a
    /// coordinator's welcome that names its own `dead_after` replaces it.
    public var deadAfter = WireProtocol.deadAfter
    /// CURVE with this worker's keys, pinning the coordinator's public key; or plaintext.
    public var security: ClientSecurity = .plaintext
    var log: Logger

    /// Outcomes of the job threads, for the I/O loop: the only state those threads touch.
    private final class Outbox: @unchecked Sendable {  // `items` only under `lock`
        private let lock = NSLock()
        private var items: [(job: Int, message: Message)] = []
        func put(_ job: Int, _ message: Message) { lock.withLock { items.append((job, message)) } }
        func takeAll() -> [(job: Int, message: Message)] { lock.withLock { defer { items = [] }; return items } }
    }
    private let finished = Outbox()
    /// Jobs running now, by id: whether each is a covariance shard (socket thread only).
    private var running: [Int: Bool] = [:]
    private var busy: Bool { !running.isEmpty }
    /// Whether a job thread was still running when `run` returned (socket thread, or after `run`).
    public var hasRunningJobs: Bool { busy }
    /// A finished job's result whose payload goes to the coordinator in acknowledged pieces (WireProtocol);
    /// the job holds its slot (and is named `running` in a hello) until the coordinator holds every byte.
    private struct OutgoingResult {
        let job: Int
        let result: JobResult
        let payload: [UInt8]
        var window: PieceWindow
    }
    /// In the order the jobs finished; one transfer at a time (socket thread only).
    private var outgoing: [OutgoingResult] = []
    private var pendingDeltas: [(Int, [UInt8])] = []
    /// The deltas version arriving in pieces on this connection: its version, total and bytes so far.
    private var arriving: (version: Int, bytes: PieceAssembly)?
    private var pollMs: Int { 50 }
    /// A memory report is due on this turn of the loop (a result's payload was just freed).
    private var memoryDue = false

    /// Bytes of memory this worker may give its jobs (`--memory-mb`); nil: measured at every hello.
    public var memoryBytes: Int?
    /// Resident bytes once the model is loaded: what this process holds beyond it belongs to its jobs.
    private let baseResident: Double

    public init(endpoint: String, name: String, runner: JobRunner, modelChecksum: String, logger: Logger) {
        self.endpoint = endpoint; self.name = name; self.runner = runner; self.modelChecksum = modelChecksum
        log = logger
        baseResident = ProcessStats.residentMB(peak: false)
    }

    /// The machine's memory the hello and the memory reports give: available now plus what this worker's
    /// running jobs hold (a worker that reconnects mid-shard still counts its shard's memory as its own),
    /// and that held part on its own.
    private func memoryNow() -> MemoryReport {
        let held = Int(max(0, ProcessStats.residentMB(peak: false) - baseResident) * 1_048_576)
        let total = Int(min(Double(ProcessStats.availableMemory()) + Double(held), Double(WireProtocol.maxMemoryBytes)))
        return MemoryReport(hostMemoryBytes: total, heldBytes: min(held, total))
    }

    /// Serves until the coordinator says shutdown (returns) or refuses this worker (throws).
    /// A coordinator silent for `deadAfter` is reconnected to with a fresh hello.
    public func run() throws {
        let ctx = try ZMQContext()
        while true {
            let socket = try ZMQSocket(ctx, .dealer)
            try socket.secure(security)
            let monitor = try socket.monitor(name: "worker")
            try socket.connect(endpoint)
            let done: Bool
            do { done = try serve(socket, monitor) } catch {
                monitor.close(); socket.close()
                throw error
            }
            monitor.close()
            socket.close()
            if done { return }
            if reached {
                log.warning("coordinator at \(endpoint) silent for \(deadAfter) s: reconnecting")
            } else {
                let why = "is it running? nothing may listen at that address, or the host name, port or path may be wrong, or a firewall drops it"
                log.warning("no coordinator answered at \(endpoint) within \(deadAfter) s (\(why)): trying again")
            }
        }
    }

    private func hello() -> Hello {
        let jobs = running.keys.filter { $0 != Self.applyingDeltas }.sorted(), memory = memoryNow()
        return Hello(name: name, pid: ProcessInfo.processInfo.processIdentifier, threads: runner.threads,
                     modelChecksum: modelChecksum, weightsVersion: runner.weightsVersion, running: jobs.isEmpty ? nil : jobs,
                     host: ProcessStats.hostName(), hostMemoryBytes: memory.hostMemoryBytes, heldBytes: memory.heldBytes,
                     memoryBytes: memoryBytes)
    }

    /// One connection's life: true when told to shut down, false when the coordinator went silent.
    private func serve(_ socket: ZMQSocket, _ monitor: ZMQSocket) throws -> Bool {
        func send(_ m: Message) {
            do { try socket.send(try m.frames()) } catch { log.error("send \(m.kind) failed: \(error)") }
        }
        arriving = nil   // a new connection: the coordinator starts any transfer again, and so does this worker
        deferred = []    // their leases ended with the old connection
        for i in outgoing.indices { outgoing[i].window.restart() }
        reached = false
        send(.hello(hello()))
        log.info("\(name) (pid \(ProcessInfo.processInfo.processIdentifier)) connecting to \(endpoint) (hello queued)")
        lastHeard = ProcessStats.now()
        var lastSent = lastHeard, lastTurn = lastHeard, lastMemory = lastHeard
        while true {
            if let parentPID, getppid() != parentPID {
                log.warning("parent process \(parentPID) is gone: exiting")
                return true
            }
            let ready = try poll([socket, monitor], timeoutMs: pollMs)
            if ready[1] { while let f = try monitor.receive(timeoutMs: 0) { try note(SocketEvent(frames: f)) } }
            if ready[0], try socket.receive(timeoutMs: 0).map({ try handle($0, send: send) }) == true { return true }
            let now = ProcessStats.now()
            if WireProtocol.wasSuspended(lastTurn: lastTurn, now: now, deadAfter: deadAfter) {
                log.warning("this worker did not run for \(String(format: "%.1f", now - lastTurn)) s (stopped or suspended): the coordinator's liveness starts again now")
                lastHeard = now
            }
            lastTurn = now
            let outcomes = finished.takeAll()
            // A finished job's memory is free again: the coordinator hears so just before its result, so the
            // shard it leases on that result is admitted on figures that count the memory free and no
            // longer held (WorkerPool+Memory). A result sent in pieces frees its payload once sent: the
            // report follows it (`memoryDue`).
            func reportMemory() {
                send(.memory(memoryNow()))
                lastMemory = now
                lastSent = now
                memoryDue = false
            }
            if memoryDue || now - lastMemory >= WireProtocol.memoryReportInterval
                || outcomes.contains(where: { $0.job != Self.applyingDeltas }) { reportMemory() }
            for (job, m) in outcomes {
                if case let .result(r, payload) = m, payload.count > WireProtocol.pieceBytes {
                    outgoing.append(OutgoingResult(job: job, result: r, payload: payload, window: PieceWindow(total: payload.count)))
                    continue
                }
                send(m)
                lastSent = now
                running[job] = nil
            }
            sendResultPieces(send: send)
            if memoryDue { reportMemory() }
            if !busy { try applyPendingDeltas(send: send) }
            if !deferred.isEmpty, !busy, pendingDeltas.isEmpty {
                let jobs = deferred
                deferred = []
                for job in jobs { start(job, send: send) }
            }
            if now - lastSent >= WireProtocol.heartbeatInterval {
                send(.heartbeat)
                lastSent = now
            }
            if now - lastHeard > deadAfter { return false }
        }
    }

    /// Sends the first outgoing result's next pieces while its window allows; once the coordinator holds
    /// every byte, the result itself (naming `piecesTotal`) frees the job's slot, and the next one starts.
    private func sendResultPieces(send: (Message) -> Void) {
        while var o = outgoing.first {
            if o.window.allAcknowledged {
                var r = o.result
                r.piecesTotal = o.window.total
                send(.result(r, payload: []))
                running[o.job] = nil
                outgoing.removeFirst()
                memoryDue = true
                continue
            }
            while let piece = o.window.next() {
                send(.resultPiece(ResultPiece(jobID: o.job, offset: piece.lowerBound, total: o.window.total), payload: Array(o.payload[piece])))
                o.window.markSent(piece)
            }
            outgoing[0].window = o.window
            return
        }
    }

    /// A handshake failure that retrying cannot mend (a refused key, a security mismatch, a coordinator
    /// without the pinned key) ends the worker with the reason; others are logged.
    private func note(_ event: SocketEvent?) throws {
        guard let event else { return }
        // A handshake that worked ends a run of failed ones: the guard below returned on it before, so
        // closed handshakes counted over the worker's whole life and a few network blips spread over
        // days could end a CURVE worker as "wrong coordinator key".
        if event.kind == .handshakeSucceeded {
            failedHandshakes = 0
            if !reached { log.info("connected to the coordinator at \(endpoint)") }
            reached = true
            return
        }
        guard let why = event.failure else { return }
        switch event.kind {
        case .authRejected, .mechanismMismatch, .cryptographic:
            let hint: String
            switch event.kind {
            case .authRejected: hint = ": add this worker's .pub line to the coordinator's authorized_keys"
            case .mechanismMismatch:
                if case .plaintext = security { hint = ": the coordinator requires CURVE (give --key and --coordinator-key)" }
                else { hint = ": the coordinator does not use CURVE" }
            default: hint = ": check --coordinator-key against the coordinator's .pub"
            }
            log.error("CURVE handshake with \(endpoint) failed: \(why)\(hint)")
            throw WorkerError.refused("handshake with \(endpoint) failed: \(why)\(hint)")
        default:
            // A CURVE server whose key is not the one pinned cannot read our hello and just closes the
            // connection: the worker sees only closed handshakes, again and again.
            failedHandshakes += 1
            if failedHandshakes == 1 { log.warning("handshake with \(endpoint) failed: \(why); retrying") }
            if failedHandshakes >= Self.maxFailedHandshakes, case .curve = security {
                let why = "the coordinator at \(endpoint) closed \(failedHandshakes) CURVE handshakes in a row: it does not hold "
                    + "the key --coordinator-key pins (check it against the coordinator's .pub)"
                log.error("\(why)")
                throw WorkerError.refused(why)
            }
        }
    }

    /// Whether this connection's handshake succeeded (a coordinator answered).
    private var reached = false

    /// Handshakes closed in a row (reset by a successful one).
    private var failedHandshakes = 0
    static let maxFailedHandshakes = 5

    /// When the coordinator was last heard from (any message that decodes).
    private var lastHeard = 0.0

    /// Handles one received message; true when it says shut down.
    private func handle(_ frames: [[UInt8]], send: (Message) -> Void) throws -> Bool {
        let message: Message
        do { message = try Message(frames: frames) } catch {
            if case let WireError.wrongVersion(found, _) = error {
                // The coordinator speaks another version: nothing it says can be understood.
                let why = "the coordinator speaks protocol version \(found); this worker speaks \(WireProtocol.version)"
                log.error("\(why)")
                throw WorkerError.refused(why)
            }
            log.warning("rejected a message from the coordinator: \(error)")
            if !Message.isRejection(frames: frames) { send(.rejected(Reason("\(error)"))) }
            return false
        }
        lastHeard = ProcessStats.now()
        switch message {
        case .welcome(let w):
            log.info("welcomed: coordinator at weights version \(w.weightsVersion), this worker at \(runner.weightsVersion)")
            // The coordinator's liveness rules both sides (a worker's own --dead-after covers only the
            // time before this); said unless both are the default.
            if let d = w.deadAfter {
                if !(1...600).contains(d) {
                    log.warning("the coordinator's welcome names dead_after \(d) s, outside 1-600 s: this worker keeps \(deadAfter) s")
                } else {
                    if d != deadAfter || d != WireProtocol.deadAfter {
                        log.info("the coordinator counts a peer dead after \(d) s of silence: so does this worker")
                    }
                    deadAfter = d
                }
            }
        case .refuse(let r):
            log.error("refused by the coordinator: \(r.reason)")
            throw WorkerError.refused(r.reason)
        case .heartbeat:
            break
        case .job(let job):
            start(job, send: send)
        case let .deltas(update, payload):
            receivePiece(update, payload, send: send)
            if !busy { try applyPendingDeltas(send: send) }
        case .rejected(let r):
            log.warning("the coordinator rejected a message of this worker: \(r.reason)")
        case .shutdown:
            log.info("shutdown requested")
            return true
        case .resultReceived(let p):
            // The next pieces go out on this turn of the loop (`sendResultPieces`).
            let i = outgoing.firstIndex { $0.job == p.jobID && $0.window.total == p.total }
            if let i, outgoing[i].window.saysDropped(p.offset) {
                // Fewer bytes than it held before: the coordinator dropped the payload (a piece it rejected).
                log.warning("the coordinator holds \(p.offset) of job \(p.jobID)'s \(p.total) result bytes after \(outgoing[i].window.acked): sending them again from the start")
                outgoing[i].window.restart()
            } else if i.map({ outgoing[$0].window.acknowledge(p.offset) }) != true {
                log.warning("ignored an acknowledgement of job \(p.jobID)'s result (\(p.offset) of \(p.total) bytes): no such transfer in progress")
            }
        case .hello, .result, .jobFailed, .deltasReceived, .resultPiece, .memory:
            log.warning("rejected an unexpected \(message.kind) message from the coordinator")
            send(.rejected(Reason("a worker does not accept \(message.kind) messages")))
        }
        return false
    }

    /// Adds a piece of a deltas transfer (in order: the first at offset 0, each where the last ended)
    /// and acknowledges it; a complete version waits in `pendingDeltas`. A piece out of order is
    /// rejected and drops what had arrived of its version; 0 bytes are acknowledged, so the coordinator
    /// sends the version again from its start.
    private func receivePiece(_ u: DeltaUpdate, _ payload: [UInt8], send: (Message) -> Void) {
        if u.offset == 0 { arriving = (u.version, PieceAssembly(total: u.total)) }
        var a = arriving
        arriving = nil   // `a` alone holds the bytes while appending, so they are not copied
        guard a?.version == u.version, a?.bytes.add(offset: u.offset, total: u.total, payload) == true, let a else {
            let held = a.map { "version \($0.version): \($0.bytes.held)" } ?? "none"
            let why = "deltas piece of version \(u.version) at \(u.offset) (\(payload.count) of \(u.total) bytes) does not follow what arrived (\(held))"
            log.error("\(why)")
            send(.rejected(Reason(why)))
            // Nothing of it is held now: 0 bytes acknowledged has the coordinator start it again from byte 0.
            send(.deltasReceived(DeltaUpdate(version: u.version, offset: 0, total: u.total)))
            return
        }
        send(.deltasReceived(DeltaUpdate(version: u.version, offset: a.bytes.bytes.count, total: u.total)))
        if a.bytes.isComplete { pendingDeltas.append((a.version, a.bytes.bytes)) } else { arriving = a }
    }

    /// `running`'s entry while received deltas are applied: an exclusive pseudo-job (jobs wait, retryable).
    private static let applyingDeltas = Int.min

    /// Applies the complete versions received, in order, on a thread of their own: parsing and adding a
    /// large ΔW takes seconds (two Qwen versions: 3–4 s on a busy 2-core machine), and this loop must keep
    /// heartbeating meanwhile or the coordinator counts the worker dead. Jobs are answered "busy"
    /// (retryable) until it is done; the thread's last word is a heartbeat, or `rejected` naming the failure.
    private func applyPendingDeltas(send: (Message) -> Void) throws {
        guard !pendingDeltas.isEmpty, !busy else { return }
        let versions = pendingDeltas
        pendingDeltas = []
        running[Self.applyingDeltas] = false
        let runner = self.runner, log = self.log, finished = self.finished
        let thread = Thread {
            var message = Message.heartbeat
            for (version, payload) in versions where version > runner.weightsVersion {  // else already held (a resent version)
                do {
                    let d = try BatchDeltas.read(bytes: payload, path: "deltas of version \(version)")
                    try runner.apply(version: version, deltas: d)
                    log.info("applied deltas: weights version \(version)")
                } catch {
                    log.error("cannot apply deltas of version \(version): \(error)")
                    message = .rejected(Reason("deltas of version \(version): \(error)"))
                    break
                }
            }
            finished.put(Self.applyingDeltas, message)
        }
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Whether `job` can start now: any job on an idle worker; a covariance shard or v* chunk beside
    /// others of their kind while a slot (a thread) is free.
    private func hasSlot(for job: JobAssignment) -> Bool {
        guard busy else { return true }
        return job.work.sharesWorker && running.count < runner.threads && running.values.allSatisfy { $0 }
    }

    /// Jobs for the weights this worker is applying (or has received and not applied yet), started once they
    /// are: the coordinator leases the next batch's v* right after the commit, and a "busy" answer had it
    /// re-queued with a warning (6 in a 4-batch local run; 0 now, the export byte-identical).
    private var deferred: [JobAssignment] = []

    private func start(_ job: JobAssignment, send: (Message) -> Void) {
        let applying = running.keys.allSatisfy { $0 == Self.applyingDeltas } && (busy || !pendingDeltas.isEmpty)
        if applying, job.weightsVersion > runner.weightsVersion {
            deferred.append(job)
            return
        }
        guard hasSlot(for: job) else {
            send(.jobFailed(JobFailure(jobID: job.id, reason: "worker \(name) is busy", retryable: true)))
            return
        }
        guard job.weightsVersion == runner.weightsVersion, pendingDeltas.isEmpty else {
            let e = JobError.wrongWeights(held: runner.weightsVersion, wanted: job.weightsVersion)
            log.warning("refused job \(job.id): \(e)")
            send(.jobFailed(JobFailure(jobID: job.id, reason: "\(e)", retryable: true)))
            return
        }
        running[job.id] = job.work.sharesWorker
        log.info("job \(job.id): \(job.work.name) started (\(running.count) running)")
        let runner = self.runner, log = self.log, finished = self.finished
        let thread = Thread {
            let t0 = ProcessStats.now()
            let message: Message
            do {
                let (output, payload) = try runner.run(job) { log.info("job \(job.id): \($0)") }
                let seconds = ProcessStats.now() - t0
                log.info("job \(job.id): \(job.work.name) done in \(String(format: "%.2f", seconds)) s")
                message = .result(JobResult(jobID: job.id, seconds: seconds, output: output), payload: payload)
            } catch {
                log.error("job \(job.id) failed: \(error)")
                let retry = (error as? JobError).map { if case .wrongWeights = $0 { true } else { false } } ?? false
                message = .jobFailed(JobFailure(jobID: job.id, reason: "\(error)", retryable: retry))
            }
            finished.put(job.id, message)
        }
        // The forward pass keeps activations on the heap; the stack only needs headroom for BLAS.
        thread.stackSize = 16 << 20
        thread.start()
    }
}
