// One real `alphaedit-worker` process driven from a raw ROUTER socket playing the coordinator
// (issue 4 §1, §2): its hello, garbage frames rejected while it keeps serving, a covariance shard
// equal to the in-process build, a job for weights it does not hold refused, deltas followed by a
// v* job and an evaluation shard equal to the in-process ComputeZ / evaluator on the same edited
// weights, heartbeats during a long job, a
// reconnect after the coordinator falls silent (after the coordinator's dead_after, from its welcome), and
// an exit when the coordinator speaks another version.
import Foundation
import Shared
import XCTest

final class WorkerProcessTests: XCTestCase {
    var heartbeats = 0
    var memoryReports: [MemoryReport] = []
    var workerID: [UInt8] = []

    /// The next message from the worker that is not a heartbeat or a memory report; meanwhile heartbeats
    /// to it, as a coordinator does (a worker that hears nothing for `deadAfter` reconnects).
    func next(_ router: ZMQSocket, _ what: String) throws -> Message {
        let deadline = ProcessStats.now() + 20
        var lastBeat = 0.0
        while ProcessStats.now() < deadline {
            if ProcessStats.now() - lastBeat >= WireProtocol.heartbeatInterval {
                try router.send([workerID] + (try Message.heartbeat.frames()))
                lastBeat = ProcessStats.now()
            }
            guard let f = try router.receive(timeoutMs: 100) else { continue }
            let m = try Message(frames: Array(f.dropFirst()))
            if case .heartbeat = m { heartbeats += 1; continue }
            if case .memory(let r) = m { memoryReports.append(r); continue }
            return m
        }
        throw ClusterTestSupport.NoAnswer(what: what, seconds: 20)   // a failure: a silent worker is a defect, not a reason to skip
    }

    /// The coordinator's `dead_after`, named in its welcome, rules the worker's side too: a worker started
    /// with `--dead-after 4` and welcomed with 1.5 says hello again after ≈ 1.5 s of silence; welcomed
    /// without one (a coordinator from before the field), or with one outside 1-600 s, it keeps its own 4 s.
    func testWorkerTakesTheCoordinatorsDeadAfter() throws {
        let workerExe = try ClusterTestSupport.executable("alphaedit-worker")
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ClusterTestSupport.model(in: dir)
        let ctx = try ZMQContext()
        let router = try ZMQSocket(ctx, .router)
        try router.bind("ipc://\(dir)/c.ipc")
        let p = try ClusterTestSupport.start(workerExe, ["--connect", "ipc://\(dir)/c.ipc", "--model", model, "--name", "solo",
                                                         "--dead-after", "4"], stderr: dir + "/worker.log")
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        /// Seconds from now until the worker's next hello (this side silent meanwhile), and its id.
        func nextHello(within seconds: Double) throws -> (Double, [UInt8]) {
            let t0 = ProcessStats.now()
            while ProcessStats.now() - t0 < seconds {
                guard let f = try router.receive(timeoutMs: 50), case .hello = try Message(frames: Array(f.dropFirst())) else { continue }
                return (ProcessStats.now() - t0, f[0])
            }
            throw ClusterTestSupport.NoAnswer(what: "hello", seconds: Int(seconds))
        }
        var (_, id) = try nextHello(within: 20)
        try router.send([id] + (try Message.welcome(Welcome(weightsVersion: 0, deadAfter: 1.5)).frames()))
        var waited: Double
        (waited, id) = try nextHello(within: 10)
        print(String(format: "welcomed with dead_after 1.5 (worker's own 4): hello again after %.2f s of silence", waited))
        XCTAssertGreaterThanOrEqual(waited, 1.2)
        XCTAssertLessThan(waited, 2.9, "the coordinator's 1.5 s, not the worker's 4 nor the default 3")
        XCTAssertTrue(ClusterTestSupport.read(dir + "/worker.log").contains("counts a peer dead after 1.5 s"))
        // A welcome without the field: the worker's value stands (here the 1.5 it adopted; a restart of the
        // worker would be back at its --dead-after). Shown with a fresh worker.
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let q = try ClusterTestSupport.start(workerExe, ["--connect", "ipc://\(dir)/c.ipc", "--model", model, "--name", "solo2",
                                                         "--dead-after", "4"], stderr: dir + "/worker2.log")
        defer { if q.isRunning { kill(q.processIdentifier, SIGKILL) } }
        (_, id) = try nextHello(within: 20)
        try router.send([id] + (try Message.welcome(Welcome(weightsVersion: 0)).frames()))
        (waited, id) = try nextHello(within: 10)
        print(String(format: "welcomed without dead_after (worker's own 4): hello again after %.2f s of silence", waited))
        XCTAssertGreaterThanOrEqual(waited, 3.7, "the worker's own 4 s")
        XCTAssertLessThan(waited, 6)
        // A value outside 1-600 s is not taken: the worker says so and keeps its own.
        try router.send([id] + (try Message.welcome(Welcome(weightsVersion: 0, deadAfter: 1e9)).frames()))
        (waited, id) = try nextHello(within: 10)
        XCTAssertGreaterThanOrEqual(waited, 3.7, "still the worker's own 4 s")
        XCTAssertLessThan(waited, 6)
        XCTAssertTrue(ClusterTestSupport.read(dir + "/worker2.log").contains("outside 1-600 s: this worker keeps 4.0 s"),
                      ClusterTestSupport.read(dir + "/worker2.log"))
    }

    func testWorkerServesJobsRejectsGarbageAndFollowsDeltas() throws {
        let workerExe = try ClusterTestSupport.executable("alphaedit-worker")
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 200)
        let ctx = try ZMQContext()
        let router = try ZMQSocket(ctx, .router)
        try router.bind("ipc://\(dir)/c.ipc")
        let p = try ClusterTestSupport.start(workerExe, ["--connect", "ipc://\(dir)/c.ipc", "--model", model, "--name", "solo"],
                                             stderr: dir + "/worker.log")
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }

        guard let first = try router.receive(timeoutMs: 20_000) else { return XCTFail("no hello") }
        let id = first[0]
        workerID = id
        guard case .hello(let h) = try Message(frames: Array(first.dropFirst())) else { return XCTFail("first message is not hello") }
        XCTAssertEqual(h.name, "solo")
        XCTAssertEqual(h.pid, p.processIdentifier)
        XCTAssertEqual(h.modelChecksum, try ModelChecksum.of(path: model))
        XCTAssertEqual(h.protocolVersion, Int(WireProtocol.version))
        XCTAssertEqual(h.weightsVersion, 0)
        func send(_ m: Message) throws { try router.send([id] + (try m.frames())) }
        try send(.welcome(Welcome(weightsVersion: 0)))

        for (what, frames) in [("random bytes", [[UInt8](repeating: 0x41, count: 3)]),
                               ("job with a broken body", [Message.header(kind: MessageKind.job.rawValue), Array("[]".utf8)]),
                               ("a hello (workers do not take one)", try Message.hello(h).frames())] {
            try router.send([id] + frames)
            guard case .rejected(let r) = try next(router, what) else { return XCTFail("\(what): not rejected") }
            print("worker rejected \(what): \(r.reason)")
        }

        // A covariance shard, as the in-process builder computes it.
        let shard = CovarianceShard(corpus: corpus, first: 50, count: 150, layers: ClusterTestSupport.layers,
                                    batchSentences: CovarianceBuilder.defaultBatchSentences)
        let covarianceShard = shard
        // Its 2.1 MB result travels in acknowledged pieces: with the acknowledgements held back for longer
        // than `deadAfter`, the worker sends no more than the window, keeps heartbeating, stays on this
        // connection, and sends the result itself only once this side holds every byte.
        try send(.job(JobAssignment(id: 1, weightsVersion: 0, work: .covariance(shard))))
        var assembly: PieceAssembly?
        var pieces = 0
        while true {
            guard case let .resultPiece(piece, bytes) = try next(router, "covariance result piece") else { return XCTFail("no result piece") }
            XCTAssertEqual(piece.jobID, 1)
            if assembly == nil { assembly = PieceAssembly(total: piece.total) }
            XCTAssertTrue(assembly?.add(offset: piece.offset, total: piece.total, bytes) == true, "pieces in order")
            pieces += 1
            if assembly?.isComplete == true || pieces == WireProtocol.windowPieces { break }
        }
        let total = try XCTUnwrap(assembly).total
        XCTAssertGreaterThan(total, WireProtocol.pieceBytes, "a payload of several pieces")
        let beatsBefore = heartbeats, holdUntil = ProcessStats.now() + WireProtocol.deadAfter + 1
        while ProcessStats.now() < holdUntil {
            guard let f = try router.receive(timeoutMs: 100) else { continue }
            let m = try Message(frames: Array(f.dropFirst()))
            switch m {
            case .heartbeat: heartbeats += 1
            case .memory(let r): memoryReports.append(r)
            default: return XCTFail("while its pieces are unacknowledged the worker sent \(m.kind)")
            }
            try send(.heartbeat)
        }
        XCTAssertGreaterThanOrEqual(heartbeats - beatsBefore, 2, "heartbeats beside the held-back transfer")
        // Memory reports come every second (the coordinator's admission of K₀ shards follows them).
        XCTAssertGreaterThanOrEqual(memoryReports.count, 3, "memory reports beside the held-back transfer")
        XCTAssertGreaterThan(memoryReports.last?.hostMemoryBytes ?? 0, 0, "this machine's memory: \(memoryReports)")
        // This side drops what it held (as a coordinator that rejected a piece does) and acknowledges 0 bytes:
        // the worker sends the payload again from byte 0 (the fresh assembly below takes nothing else first).
        // Before, it waited for acknowledgements that never came, holding the job's slot for good.
        try send(.resultReceived(ResultPiece(jobID: 1, offset: 0, total: total)))
        assembly = PieceAssembly(total: total)
        var result: JobResult?
        while result == nil {
            switch try next(router, "covariance result") {
            case let .resultPiece(piece, bytes):
                XCTAssertTrue(assembly?.add(offset: piece.offset, total: piece.total, bytes) == true, "pieces in order")
                try send(.resultReceived(ResultPiece(jobID: 1, offset: assembly?.bytes.count ?? 0, total: total)))
            case let .result(r, frame):
                XCTAssertEqual(frame, [], "the payload came in pieces")
                XCTAssertEqual(r.piecesTotal, total)
                XCTAssertTrue(assembly?.isComplete == true, "the result follows the last acknowledgement")
                result = r
            case let m: return XCTFail("unexpected \(m.kind) during the result's transfer")
            }
        }
        XCTAssertEqual(result?.jobID, 1)
        let stats = try KeyStatistics.read(bytes: try XCTUnwrap(assembly).bytes)
        let reference = try ClusterTestSupport.inProcessStatistics(model: model, corpus: corpus, range: 50..<200)
        let rel = try ClusterTestSupport.relativeDifference(stats, reference)
        print(String(format: "worker covariance shard: max rel diff vs in-process %.2e", rel))
        XCTAssertLessThanOrEqual(rel, 1e-9)

        // Weights it does not hold: refused, retryable.
        try send(.job(JobAssignment(id: 2, weightsVersion: 1, work: .covariance(shard))))
        guard case .jobFailed(let f) = try next(router, "job at version 1") else { return XCTFail("not refused") }
        XCTAssertEqual(f.jobID, 2)
        XCTAssertTrue(f.retryable)
        XCTAssertTrue(f.reason.contains("holds 0"), f.reason)

        // Deltas of batch 1, then v* at version 1 equals ComputeZ on the same edited weights here.
        let c = ClusterTestSupport.modelConfig
        var rng = SplitMix64(seed: 5)
        let deltas = BatchDeltas(rows: c.hidden, cols: c.ffn, deltas: [1: (0..<(c.hidden * c.ffn)).map { _ in rng.symmetric(0.02) }])
        // In three pieces (WireProtocol: a transfer of any size keeps the heartbeats flowing), each acknowledged
        // with the bytes held so far; a piece out of order is rejected and drops the partial version.
        let bytes = deltas.serialized(), cut = [0, bytes.count / 3, 2 * bytes.count / 3, bytes.count]
        func piece(_ i: Int) -> Message {
            .deltas(DeltaUpdate(version: 1, offset: cut[i], total: bytes.count), payload: Array(bytes[cut[i]..<cut[i + 1]]))
        }
        try send(piece(0))
        guard case .deltasReceived(let a0) = try next(router, "deltas piece 0") else { return XCTFail("piece 0 not acknowledged") }
        XCTAssertEqual(a0, DeltaUpdate(version: 1, offset: cut[1], total: bytes.count))
        try send(piece(2))
        guard case .rejected(let skipped) = try next(router, "deltas piece 2 after 0") else { return XCTFail("a skipped piece was taken") }
        XCTAssertTrue(skipped.reason.contains("does not follow"), skipped.reason)
        // It holds nothing of the version now, and says so: 0 bytes (the coordinator then sends it again from the start).
        guard case .deltasReceived(let dropped) = try next(router, "deltas dropped") else { return XCTFail("no acknowledgement of 0 bytes") }
        XCTAssertEqual(dropped, DeltaUpdate(version: 1, offset: 0, total: bytes.count))
        for i in 0..<3 {
            try send(piece(i))
            guard case .deltasReceived(let a) = try next(router, "deltas piece \(i)") else { return XCTFail("piece \(i) not acknowledged") }
            XCTAssertEqual(a.offset, cut[i + 1])
        }
        var hp = EditHyperparameters()
        hp.layers = [1]
        hp.vSteps = 4
        let templates = ContextTemplates(groups: [["{}"], ["The river. {}"]])
        let requests = [EditRequest(prompt: "The capital of {} is", subject: "France", targetNew: "Rome"),
                        EditRequest(prompt: "{} flows through", subject: "The river", targetNew: "Paris")]
        // The worker applies the deltas on a thread of its own, heartbeating meanwhile; a job sent before it is
        // done is answered "busy" (retryable), and the coordinator would send it again: so does this test.
        var answer: Message
        var busyAnswers = 0
        repeat {
            try send(.job(JobAssignment(id: 3, weightsVersion: 1, work: .vstar(VStarChunk(batch: 1, chunk: 0, requests: requests,
                                                                              hyperparameters: hp, templates: templates)))))
            answer = try next(router, "v* job")
            guard case .jobFailed(let f) = answer, f.retryable, f.reason.contains("busy") else { break }
            busyAnswers += 1
            usleep(100_000)
        } while busyAnswers < 100
        guard case let .result(r3, _) = answer, case .vstar(let zs) = r3.output else {
            return XCTFail("no v* result (\(answer.kind)): \(ClusterTestSupport.read(dir + "/worker.log"))")
        }
        let m = try LlamaModel(path: model)
        try m.applyDelta(layer: 1, delta: deltas.deltas[1] ?? [])
        let want = try ComputeZ(model: m, tokenizer: try BPETokenizer(gguf: m.gguf), hp: hp).run(requests, templates: templates)
        XCTAssertEqual(zs.count, 2)
        for (a, b) in zip(zs, want) {
            let d = zip(a.z, b.z).map { abs($0 - $1) }.max() ?? .infinity
            let n = b.z.map { abs($0) }.max() ?? 1
            print(String(format: "worker v*: max |z − z_in-process| / max|z| = %.2e", d / n))
            XCTAssertLessThanOrEqual(d / n, 1e-5)
        }

        // An evaluation shard (records 1..<3 of a CounterFact file) on weights version 1 equals the
        // in-process evaluator on the same weights; a bad facts file is a non-retryable failure.
        let cf = (0..<3).map { i in
            #"{"case_id": \#(i), "requested_rewrite": {"prompt": "The capital of {} is", "subject": "France \#(i)", "#
                + #""target_true": {"str": "Paris"}, "target_new": {"str": "Rome"}}, "paraphrase_prompts": ["Where is {}? In"], "#
                + #""neighborhood_prompts": ["The river flows through"], "generation_prompts": []}"#
        }
        try cf.joined(separator: "\n").write(toFile: dir + "/cf.jsonl", atomically: true, encoding: .utf8)
        try send(.job(JobAssignment(id: 4, weightsVersion: 1, work: .evaluation(EvaluationShard(facts: dir + "/cf.jsonl", first: 1, count: 2)))))
        guard case let .result(r4, _) = try next(router, "evaluation job"), case .evaluation(let shard) = r4.output else {
            return XCTFail("no evaluation result: \(ClusterTestSupport.read(dir + "/worker.log"))")
        }
        let local = try CounterFactEvaluator(model: m, tokenizer: try BPETokenizer(gguf: m.gguf), generation: nil)
            .evaluate(try FactsFile.read(path: dir + "/cf.jsonl", offset: 1, limit: 2), firstIndex: 1)
        XCTAssertEqual(shard.records.map(\.index), [1, 2])
        for (a, b) in zip(shard.records, local.records) {
            let (x, y) = (try XCTUnwrap(a.rewrite), try XCTUnwrap(b.rewrite))
            XCTAssertEqual(x.nllNew, y.nllNew, accuracy: 1e-6 * abs(y.nllNew))
            XCTAssertEqual(x.nllTrue, y.nllTrue, accuracy: 1e-6 * abs(y.nllTrue))
        }
        try send(.job(JobAssignment(id: 6, weightsVersion: 1, work: .evaluation(EvaluationShard(facts: dir + "/missing.jsonl", first: 0, count: 1)))))
        guard case .jobFailed(let f6) = try next(router, "evaluation of a missing file") else { return XCTFail("not failed") }
        XCTAssertFalse(f6.retryable, "the same input fails anywhere")

        // Heartbeats continue while a job runs (the job has its own thread): a v* job of several seconds.
        var long = hp
        long.vSteps = 800
        long.earlyStopLoss = 0
        let eight = (0..<8).map { EditRequest(prompt: "{} flows through", subject: "The river \($0)", targetNew: "Paris") }
        let before = heartbeats + memoryReports.count
        try send(.job(JobAssignment(id: 5, weightsVersion: 1, work: .vstar(VStarChunk(batch: 1, chunk: 1, requests: eight,
                                                                                       hyperparameters: long, templates: templates)))))
        let m5 = try next(router, "long v* job")
        guard case let .result(r5, _) = m5 else { return XCTFail("no result of the long job: \(m5)") }
        let beats = heartbeats + memoryReports.count - before
        print(String(format: "long v* job: %.2f s, %d heartbeats and memory reports received meanwhile", r5.seconds, beats))
        XCTAssertGreaterThan(r5.seconds, 2 * WireProtocol.heartbeatInterval, "the job is long enough to need heartbeats")
        XCTAssertGreaterThanOrEqual(beats, max(1, Int(r5.seconds / WireProtocol.heartbeatInterval) - 1),
                                    "a heartbeat or memory report every interval during the job")
        // A coordinator silent for `deadAfter` in the middle of a result's transfer: the worker reconnects and
        // says hello again, keeping the weights it holds and naming the job whose result it still holds,
        // then sends that result again from its first byte on the new connection.
        try send(.job(JobAssignment(id: 7, weightsVersion: 1, work: .covariance(covarianceShard))))
        guard case let .resultPiece(p7, _) = try next(router, "covariance result before the silence") else { return XCTFail("no piece") }
        XCTAssertEqual(p7.offset, 0)
        let silent = ProcessStats.now()
        var again: Hello?
        while again == nil, ProcessStats.now() - silent < 3 * WireProtocol.deadAfter {
            guard let f = try router.receive(timeoutMs: 200), case .hello(let h2) = try Message(frames: Array(f.dropFirst())) else { continue }
            again = h2
            workerID = f[0]
        }
        let waited = ProcessStats.now() - silent
        XCTAssertEqual(again?.weightsVersion, 1, "hello again after \(waited) s of silence, still at weights version 1")
        XCTAssertGreaterThanOrEqual(waited, WireProtocol.deadAfter - 0.6, "not before the coordinator counts as dead")
        XCTAssertEqual(again?.running, [7], "the hello names the job whose result is still to be delivered")
        try router.send([workerID] + (try Message.welcome(Welcome(weightsVersion: 1)).frames()))
        var resent = PieceAssembly(total: p7.total)
        resending: while true {
            switch try next(router, "the result again") {
            case let .resultPiece(piece, bytes):
                XCTAssertTrue(resent.add(offset: piece.offset, total: piece.total, bytes), "again from byte 0, in order")
                try router.send([workerID] + (try Message.resultReceived(ResultPiece(jobID: 7, offset: resent.bytes.count, total: p7.total)).frames()))
            case let .result(r7, _):
                XCTAssertEqual(r7.jobID, 7)
                XCTAssertEqual(r7.piecesTotal, p7.total)
                break resending
            case let m: return XCTFail("unexpected \(m.kind) while the result is sent again")
            }
        }
        XCTAssertTrue(resent.isComplete)
        XCTAssertNoThrow(try KeyStatistics.read(bytes: resent.bytes), "the result sent again is whole")

        // A coordinator of another protocol version: nothing it says can be understood; the worker says
        // why and exits with code 3 (a clean `shutdown` is tested in ClusterRobustnessTests).
        try router.send([workerID, Array("AEWP".utf8) + [99, 0, 4, 0], Array("{}".utf8)])
        ClusterTestSupport.wait(p, seconds: 10, "worker facing protocol version 99")
        let said = ClusterTestSupport.read(dir + "/worker.log")
        XCTAssertEqual(p.terminationStatus, 3, said)
        XCTAssertTrue(said.contains("the coordinator speaks protocol version 99; this worker speaks \(WireProtocol.version)"), said)
    }
}
