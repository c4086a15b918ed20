// An edit campaign's use of the cluster (issue 4 §7): the store's jobs table is the record of the v*
// work, the pool runs it. Per batch: one `vstar` job per fixed chunk of its requests (enqueued once;
// a re-run finds them), finished chunks re-used from their checksummed `zresults` artifacts, the
// others handed to the workers by the pool (the one lease authority: JobStore+Jobs says why) and
// recorded done with their artifact. The pool's workers are mirrored into
// the store's `workers` table once a second by a thread with its own database connection (so the
// mirror keeps going while this thread solves a batch), and `alphaedit status` shows workers_alive.
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

public final class CampaignCluster {
    public let store: JobStore
    public let pool: WorkerPool
    var log: Logger
    private let mirror = MirrorControl()
    private let mirrorDone = DispatchSemaphore(value: 0)
    private var mirroring = false

    public init(store: JobStore, pool: WorkerPool, logger: Logger) {
        self.store = store
        self.pool = pool
        log = logger
    }

    /// Starts mirroring the pool's workers into the store's `workers` table, once a second, on a
    /// second connection to the same database (SQLite in WAL mode: the two never corrupt each other;
    /// a write waits for the other's transaction).
    public func startWorkerMirror() throws {
        // Its own connection, moved to the mirror thread, its only user.
        nonisolated(unsafe) let mirrorStore = try JobStore(directory: store.directory, create: false)
        let pool = self.pool, log = self.log, control = mirror, done = mirrorDone
        mirroring = true
        let t = Thread {
            var known: [String: Bool] = [:]
            while true {
                let asked = control.startSync()
                do { try Self.syncWorkers(pool, mirrorStore, &known) } catch { log.warning("workers table: \(error)") }
                if control.finishSync(asked, wait: 1) { break }
            }
            let now = Date().timeIntervalSince1970
            for (name, alive) in known where alive { _ = try? mirrorStore.workerGone(name, now: now) }
            done.signal()
        }
        t.start()
    }

    /// Tells the pool about committed batches 1…n (their deltas files, checked against the store's
    /// checksums first): every worker is brought to weights version n before its next job.
    /// Versions the pool already holds are skipped (not re-read).
    public func announceCommitted(_ deltas: [ArtifactFile]) throws {
        for (i, d) in deltas.enumerated() where i + 1 > pool.weightsVersion {
            pool.commit(version: i + 1, deltas: try store.verified(d))
        }
    }

    public static func zresultsPath(batch: Int, chunk: Int) -> String {
        String(format: "zresults/batch-%05d-chunk-%03d.bin", batch, chunk)
    }

    /// v* for batch `b` of `campaign` (requests as stored), on weights version `b.index − 1`.
    public func targets(campaign: Campaign, batch b: BatchRecord, requests: [EditRequest],
                        progress: (Int, Int) -> Void = { _, _ in }) throws -> [ZResult] {
        let chunks = DistributedTargets.chunks(count: requests.count)
        var jobs = try store.jobs(kind: .vstar, campaign: campaign.id, batch: b.index)
        if jobs.isEmpty {
            try store.enqueue(try chunks.map { r in
                try NewJob.vstar(VStarPayload(campaign: campaign.id, batch: b.index,
                                              requests: Array((b.requests.lowerBound + r.lowerBound)..<(b.requests.lowerBound + r.upperBound)),
                                              weightsVersion: b.index - 1))
            })
            jobs = try store.jobs(kind: .vstar, campaign: campaign.id, batch: b.index)
        }
        guard jobs.count == chunks.count else {
            throw StoreError.badRecord(path: store.path, what: "v* jobs of batch \(b.index)",
                                       reason: "\(jobs.count) jobs for \(chunks.count) chunks")
        }
        var results = [[ZResult]?](repeating: nil, count: chunks.count)
        var pending: [Int] = []
        for (c, job) in jobs.enumerated() {
            switch job.state {
            case .done:
                guard let a = job.resultArtifact else {
                    throw StoreError.badRecord(path: store.path, what: "v* job \(job.id)", reason: "done without a result file")
                }
                // The checksum in the database is checked before the file is used.
                results[c] = try ZResultSet.read(from: try store.verified(a)).results
            case .failed:
                throw ClusterError.jobFailed(job: Int(job.id), work: "v*", reason: job.error ?? "failed")
            case .pending, .leased:
                pending.append(c)
            }
        }
        if !pending.isEmpty {
            log.info("batch \(b.index): \(chunks.count - pending.count) v* chunk(s) already done, \(pending.count) to run")
            try runChunks(pending, jobs: jobs, campaign: campaign, batch: b, requests: requests, chunks: chunks,
                          results: &results, progress: progress)
        }
        return try results.enumerated().flatMap { c, r -> [ZResult] in
            guard let r else { throw ClusterError.badResult(job: Int(jobs[c].id), reason: "no result") }
            return r
        }
    }

    private func runChunks(_ pending: [Int], jobs: [Job], campaign: Campaign, batch b: BatchRecord, requests: [EditRequest],
                           chunks: [Range<Int>], results: inout [[ZResult]?], progress: (Int, Int) -> Void) throws {
        let dir = store.directory + "/zresults"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var done = chunks.count - pending.count
        do {
            try DistributedTargets.run(pool: pool, batch: b.index, requests: requests, pending: pending,
                                       hyperparameters: campaign.settings.hyperparameters, templates: campaign.templates) { c, zs in
                let rel = Self.zresultsPath(batch: b.index, chunk: c)
                try ZResultSet(zs).write(to: ArtifactFile.absolute(rel, in: store.directory))
                try store.complete(job: jobs[c].id,
                                   artifact: try ArtifactFile.describe(kind: .zresults, path: rel, in: store.directory))
                results[c] = zs
                done += 1
                progress(done, chunks.count)
            }
        } catch {
            for c in pending where results[c] == nil {
                _ = try? store.fail(job: jobs[c].id, error: "\(error)")
            }
            throw error
        }
    }

    /// Mirrors the pool's workers into the store: joined → upsert, alive → heartbeat, dead → gone.
    static func syncWorkers(_ pool: WorkerPool, _ store: JobStore, _ known: inout [String: Bool]) throws {
        let now = Date().timeIntervalSince1970
        let host = ProcessInfo.processInfo.hostName
        for w in pool.workerSnapshot {
            let name = w.hello.name
            switch (known[name], w.alive) {
            case (nil, true), (false?, true):
                try store.upsertWorker(WorkerInfo(name: name, pid: Int(w.hello.pid), host: host, threads: w.hello.threads,
                                                  modelChecksum: w.hello.modelChecksum, protocolVersion: w.hello.protocolVersion),
                                       now: now)
            case (true?, true):
                try store.heartbeat(worker: name, now: now)
            case (true?, false):
                try store.workerGone(name, now: now)
            case (nil, false), (false?, false):
                break
            }
            known[name] = w.alive
        }
    }

    /// Stops the mirror and marks every worker gone in the store (the campaign ends; the pool is shut
    /// down by its owner).
    public func finish() {
        guard mirroring else { return }
        mirroring = false
        mirror.stop()
        mirrorDone.wait()
    }

    /// Brings the workers table up to date now (the mirror's next pass, done before this returns), so
    /// that `alphaedit status` is current at every commit, however short the batch (the mirror's
    /// own pace is once a second).
    public func syncWorkersNow() {
        guard mirroring else { return }
        mirror.syncAndWait()
    }
}

/// The mirror thread's schedule: a pass a second, one at once when asked, and the stop.
private final class MirrorControl: @unchecked Sendable {
    private let cond = NSCondition()
    private var requested = 0, completed = 0
    private var stopping = false

    /// The mirror starts a pass: the requests made so far are served by it.
    func startSync() -> Int {
        cond.lock(); defer { cond.unlock() }
        return requested
    }

    /// The pass that started at request `asked` is done; waits up to `wait` seconds (less when asked
    /// again). Returns true when the mirror is to stop.
    func finishSync(_ asked: Int, wait: Double) -> Bool {
        cond.lock(); defer { cond.unlock() }
        completed = max(completed, asked)
        cond.broadcast()
        let until = Date(timeIntervalSinceNow: wait)
        while !stopping && requested == completed {
            if !cond.wait(until: until) { break }
        }
        return stopping
    }

    func syncAndWait() {
        cond.lock(); defer { cond.unlock() }
        requested += 1
        let mine = requested
        cond.broadcast()
        while completed < mine && !stopping { cond.wait() }
    }

    func stop() {
        cond.lock(); defer { cond.unlock() }
        stopping = true
        cond.broadcast()
    }
}
