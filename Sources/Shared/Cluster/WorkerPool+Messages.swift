// How the coordinator's I/O thread answers each message (see WorkerPool.swift). A frame that does
// not decode is logged and answered with `rejected`; the loop goes on.
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
    func handle(_ frames: [[UInt8]], _ socket: ZMQSocket) {
        guard let id = frames.first, !id.isEmpty else { return }
        cond.withLock {
            let message: Message
            do { message = try Message(frames: Array(frames.dropFirst())) } catch {
                if case let WireError.wrongVersion(found, kind) = error, kind == MessageKind.hello.rawValue {
                    let why = "protocol version \(found) differs from the coordinator's \(WireProtocol.version)"
                    log.error("refused worker \(hex(id)): \(why)")
                    send(.refuse(Reason(why)), to: id, socket)
                } else if workers[id] == nil {
                    let now = ProcessStats.now()
                    if now - strangerGarbage.since > 60 { strangerGarbage = (now, 0) }
                    strangerGarbage.count += 1
                    if strangerGarbage.count <= 3 {
                        log.warning("rejected a message from unknown peer \(hex(id)): \(error)")
                    } else {
                        if strangerGarbage.count == 4 { log.warning("more undecodable messages from unknown peers: logged at debug level for a minute") }
                        log.debug("rejected a message from unknown peer \(hex(id)): \(error)")
                    }
                    if !Message.isRejection(frames: Array(frames.dropFirst())) {
                        send(.rejected(Reason("\(error)")), to: id, socket)
                    }
                } else {
                    log.warning("rejected a message from \(workers[id]?.label ?? hex(id)): \(error)")
                    if !Message.isRejection(frames: Array(frames.dropFirst())) {
                        send(.rejected(Reason("\(error)")), to: id, socket)
                    }
                }
                return
            }
            let now = ProcessStats.now()
            if case .hello(let h) = message { return hello(h, id: id, now: now, socket) }
            guard workers[id] != nil else {
                // A peer that never said hello (or a previous coordinator's worker): it will time out
                // and say hello again.
                log.debug("ignored \(message.kind) from unknown peer \(hex(id))")
                return
            }
            if let w = workers[id], !w.alive {
                workers[id]?.alive = true
                workers[id]?.lostJobs = []
                log.warning("worker \(w.label) is heard from again")
                adoptRunning(w.lostJobs, of: id, w.label)
            }
            workers[id]?.lastHeard = now
            if case .jobFailed = message {} else { workers[id]?.heldOff = false }
            switch message {
            case .heartbeat:
                break
            case .memory(let r):
                workers[id]?.memory = r
                workers[id]?.coordinatorResidentAtReport = Self.residentBytes()
                log.trace("\(workers[id]?.label ?? hex(id)): \(MemoryAdmission.size(r.hostMemoryBytes - r.heldBytes)) free, \(MemoryAdmission.size(r.heldBytes)) held by its jobs")
            case let .result(r, frame):
                finish(id, job: r.jobID)
                var payload = frame
                // The payload of a result naming `piecesTotal` came before, in pieces (WireProtocol).
                let pieces = r.piecesTotal.flatMap { _ in workers[id]?.arriving.removeValue(forKey: r.jobID) }
                guard let job = jobs[r.jobID] else {
                    log.info("dropped a late result of job \(r.jobID) from \(workers[id]?.label ?? "")")
                    return
                }
                if let n = r.piecesTotal {
                    guard let a = pieces, a.total == n, a.isComplete else {
                        // Counted as an unusable result: a worker that keeps doing this is refused.
                        let why = "it names \(n) bytes sent in pieces, but \(pieces?.held ?? "nothing") arrived"
                        rejectResult(of: job, from: id, reason: why)
                        return
                    }
                    payload = a.bytes
                }
                jobs[r.jobID] = nil
                queue.removeAll { $0 == r.jobID }
                noteDone(job)
                events.append(.result(r, payload, worker: id))
                cond.broadcast()
            case .jobFailed(let f):
                finish(id, job: f.jobID)
                guard let job = jobs[f.jobID] else { return }
                if f.retryable, let other = workers.values.first(where: { $0.alive && $0.jobs.contains(f.jobID) }) {
                    // A straggler backup refused: the job still runs where it was leased first, so it is
                    // neither queued again nor counted against its retries.
                    workers[id]?.heldOff = true
                    log.info("backup of job \(f.jobID) not run by \(workers[id]?.label ?? ""): \(f.reason); it still runs on \(other.label)")
                    return
                }
                retries[f.jobID, default: 0] += 1
                if f.retryable, retries[f.jobID, default: 0] <= WorkerPool.maxRetries {
                    workers[id]?.heldOff = true
                    log.warning("job \(f.jobID) not run by \(workers[id]?.label ?? ""): \(f.reason); re-queued")
                    queue.insert(job.id, at: 0)
                } else {
                    log.error("job \(f.jobID) failed on \(workers[id]?.label ?? ""): \(f.reason)")
                    events.append(.failed(f))
                    cond.broadcast()
                }
            case .deltasReceived(let u):
                deltasReceived(u, from: id)
            case let .resultPiece(p, bytes):
                resultPiece(p, bytes, from: id, socket)
            case .rejected(let r):
                log.warning("\(workers[id]?.label ?? "") rejected a message: \(r.reason)")
            case .hello, .welcome, .refuse, .job, .deltas, .shutdown, .resultReceived:
                log.warning("rejected an unexpected \(message.kind) message from \(workers[id]?.label ?? "")")
                send(.rejected(Reason("a coordinator does not accept \(message.kind) messages")), to: id, socket)
            }
        }
    }

    /// A reconnecting worker's jobs still running that this pool had leased to it (or those of one counted
    /// dead and heard from again on the same connection) hold its slots again, so it gets no job it would refuse
    /// as busy (before, the refusals of a worker stopped with SIGSTOP for a few seconds ran out a v* job's
    /// retries while it computed: "v* job 9 failed: worker local-2 is busy"). A running job still wanted
    /// and queued (its lease voided by the reconnect) is leased back rather than run twice; one already
    /// leased elsewhere runs on both and the first result counts; one already done only holds the slot
    /// until its late result arrives.
    func adoptRunning(_ running: [Int], of id: [UInt8], _ label: String) {
        guard !running.isEmpty else { return }
        var back: [Int] = []
        for job in running {
            workers[id]?.jobs.append(job)
            if jobs[job] != nil, let i = queue.firstIndex(of: job) { queue.remove(at: i); back.append(job) }
        }
        let list = { (js: [Int]) in js.map(String.init).joined(separator: ", ") }
        let note = back.isEmpty ? "" : "; leased back: \(list(back))"
        log.info("worker \(label) is still running job\(running.count == 1 ? "" : "s") \(list(running))\(note)")
    }

    /// Adds a piece of a result payload (in order: the first at offset 0, each where the last ended) and
    /// acknowledges it. A piece out of order (never from a worker of this build, which restarts its
    /// transfers from byte 0 on every new connection) is rejected and drops what had arrived of that result,
    /// and 0 bytes are acknowledged, which has the worker send it again from the start; a `result` naming
    /// the dropped bytes counts as unusable.
    private func resultPiece(_ p: ResultPiece, _ bytes: [UInt8], from id: [UInt8], _ socket: ZMQSocket) {
        if p.offset == 0 { workers[id]?.arriving[p.jobID] = PieceAssembly(total: p.total) }
        // Removed while appending, so the bytes are not copied; an unusable piece leaves it removed.
        var arriving = workers[id]?.arriving.removeValue(forKey: p.jobID)
        guard arriving?.add(offset: p.offset, total: p.total, bytes) == true, let a = arriving else {
            let why = "result piece of job \(p.jobID) at \(p.offset) (\(bytes.count) of \(p.total) bytes) does not follow what arrived (\(arriving?.held ?? "nothing"))"
            log.warning("rejected a message from \(workers[id]?.label ?? hex(id)): \(why)")
            send(.rejected(Reason(why)), to: id, socket)
            // Nothing of it is held now: an acknowledgement of 0 bytes has the sender start it again
            // from byte 0 (it would otherwise wait for acknowledgements that never come).
            send(.resultReceived(ResultPiece(jobID: p.jobID, offset: 0, total: p.total)), to: id, socket)
            return
        }
        let held = a.bytes.count
        workers[id]?.arriving[p.jobID] = a
        send(.resultReceived(ResultPiece(jobID: p.jobID, offset: held, total: p.total)), to: id, socket)
    }

    /// Frees the worker if it held `job`.
    private func finish(_ id: [UInt8], job: Int) {
        workers[id]?.jobs.removeAll { $0 == job }
    }

    private func hello(_ h: Hello, id: [UInt8], now: Double, _ socket: ZMQSocket) {
        let label = "\(h.name) (pid \(h.pid))"
        var why: String?
        if h.protocolVersion != Int(WireProtocol.version) {
            why = "protocol version \(h.protocolVersion) differs from the coordinator's \(WireProtocol.version)"
        } else if h.modelChecksum != modelChecksum {
            why = "model checksum \(h.modelChecksum) differs from the coordinator's \(modelChecksum) (another model file)"
        } else if h.weightsVersion > committed.count {
            why = "weights version \(h.weightsVersion) is ahead of the coordinator's \(committed.count): restart the worker"
        } else if let earlier = refusedNames[h.name] {
            why = "a worker named \(h.name) was refused earlier: \(earlier)"
        }
        if let why {
            log.error("refused worker \(label): \(why)")
            send(.refuse(Reason(why)), to: id, socket)
            return
        }
        // What this pool leased to this process before: only those of its running jobs are its own again
        // (a worker that comes from another coordinator process may run jobs whose ids mean other work here).
        var leasedBefore = Set<Int>()
        if let old = workers[id] {
            // The worker restarted its conversation: its leases are void.
            queue.insert(contentsOf: old.jobs.filter { jobs[$0] != nil }, at: 0)
            leasedBefore.formUnion(old.jobs + old.lostJobs)
        }
        // The same process on a new connection (a worker reconnects after `deadAfter` of our silence,
        // e.g. while this machine is overloaded): its earlier connection is over, with its leases. Kept,
        // it would count as a second live worker and then be "counted dead".
        for (other, w) in workers where other != id && w.hello.name == h.name && w.hello.pid == h.pid {
            queue.insert(contentsOf: w.jobs.filter { jobs[$0] != nil }, at: 0)
            leasedBefore.formUnion(w.jobs + w.lostJobs)
            workers[other] = nil
            log.info("worker \(label) reconnected: its earlier connection is closed")
        }
        workers[id] = PoolWorker(hello: h, lastHeard: now, lastSent: now, sentVersion: h.weightsVersion,
                                 memory: h.hostMemoryBytes.map { MemoryReport(hostMemoryBytes: $0, heldBytes: min($0, h.heldBytes ?? 0)) },
                                 coordinatorResidentAtReport: Self.residentBytes())
        let memory = (h.hostMemoryBytes.map { ", \(MemoryAdmission.size($0)) available on \(h.host ?? "its machine")" } ?? "")
            + (h.memoryBytes.map { ", \(MemoryAdmission.size($0)) its own (--memory-mb)" } ?? "")
        log.info("worker \(label) joined: \(h.threads) threads, weights version \(h.weightsVersion)\(memory); \(workers.values.filter(\.alive).count) alive")
        adoptRunning((h.running ?? []).filter(leasedBefore.contains), of: id, label)
        send(.welcome(Welcome(weightsVersion: committed.count, deadAfter: deadAfter)), to: id, socket)
    }
}
