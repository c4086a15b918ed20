// The wire protocol (Wire/Protocol.swift): a round trip per message case, every framing defect a
// typed error, and the libzmq wrapper moving multipart messages over inproc, ipc and tcp.
import Foundation
import Shared
import XCTest

final class WireProtocolTests: XCTestCase {
    static let request = EditRequest(caseID: 7, prompt: "{} is located in", subject: "Eiffel Tower", targetNew: "Rome",
                                     targetTrue: "Paris", paraphrasePrompts: ["Where is {}?"])

    /// One message of every kind, with non-default fields.
    static var samples: [Message] {
        var hp = EditHyperparameters()
        hp.vLR = 0.5
        // ZResult has no public memberwise init: built the way it travels, from JSON.
        let dec = JSONDecoder()
        dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let json = #"{"z":[1.5,-2.25,"inf"],"h0Norm":3,"deltaNorm":0.5,"losses":[[2,1.5,0.1,0.01],["nan",0,0,0]]}"#
        guard let z = try? dec.decode(ZResult.self, from: Data(json.utf8)) else { return [] }
        return [
            .hello(Hello(name: "w1", pid: 42, threads: 2, modelChecksum: "0123456789abc123", weightsVersion: 3)),
            .welcome(Welcome(weightsVersion: 5)),
            .refuse(Reason("model checksum differs")),
            .heartbeat,
            .job(JobAssignment(id: 9, weightsVersion: 2, work: .covariance(CovarianceShard(corpus: "c.jsonl", first: 100, count: 50,
                                                                               layers: [3, 7], batchSentences: 24)))),
            .job(JobAssignment(id: 10, weightsVersion: 2, work: .vstar(VStarChunk(batch: 1, chunk: 2, requests: [request], hyperparameters: hp,
                                                                      templates: ContextTemplates(groups: [["{}"], ["The cat. {}"]]))))),
            .job(JobAssignment(id: 11, weightsVersion: 0, work: .evaluation(EvaluationShard(facts: "dev.jsonl", first: 0, count: 10,
                                                                                          generation: GenerationSettings(maxTokens: 20))))),
            .result(JobResult(jobID: 9, seconds: 1.25, output: .covariance(tokens: 1234)), payload: [1, 2, 3, 0, 255]),
            .result(JobResult(jobID: 10, seconds: 2, output: .vstar([z])), payload: []),
            .result(JobResult(jobID: 11, seconds: 0.5, output: .evaluation(EvalShard(records: []))), payload: []),
            .jobFailed(JobFailure(jobID: 12, reason: "busy", retryable: true)),
            .deltas(DeltaUpdate(version: 4, offset: 2000, total: 5000), payload: Array(repeating: 7, count: 1000)),
            .rejected(Reason("bad magic")),
            .shutdown,
            .deltasReceived(DeltaUpdate(version: 4, offset: 3000, total: 5000)),
            .resultPiece(ResultPiece(jobID: 9, offset: 1000, total: 3000), payload: Array(repeating: 5, count: 2000)),
            .resultReceived(ResultPiece(jobID: 9, offset: 3000, total: 3000)),
            .result(JobResult(jobID: 9, seconds: 1.25, output: .covariance(tokens: 1234), piecesTotal: 3000), payload: []),
            .welcome(Welcome(weightsVersion: 5, deadAfter: 15)),
            .memory(MemoryReport(hostMemoryBytes: 3_000_000_000, heldBytes: 950_000_000)),
        ]
    }

    func testEveryMessageKindRoundTrips() throws {
        var kinds = Set<MessageKind>()
        for m in Self.samples {
            let frames = try m.frames()
            let back = try Message(frames: frames)
            XCTAssertEqual(back.kind, m.kind)
            XCTAssertEqual(try back.frames(), frames, "\(m.kind): re-encoding the decoded message gives the same frames")
            kinds.insert(m.kind)
        }
        XCTAssertEqual(kinds, Set(MessageKind.allCases), "a sample of every kind")
        // Field-level checks on the cases with the most structure.
        guard case .job(let j) = try Message(frames: try Self.samples[5].frames()), case .vstar(let c) = j.work else {
            return XCTFail("v* job did not decode as one")
        }
        XCTAssertEqual(c.requests, [Self.request])
        XCTAssertEqual(c.hyperparameters.vLR, 0.5)
        guard case let .result(r, _) = try Message(frames: try Self.samples[8].frames()), case .vstar(let zs) = r.output else {
            return XCTFail("v* result did not decode as one")
        }
        XCTAssertEqual(zs[0].z[0..<2], [1.5, -2.25])
        XCTAssertEqual(zs[0].z[2], .infinity, "non-finite floats travel")
        XCTAssertTrue(zs[0].losses[1].total.isNaN)
        guard case let .deltas(d, payload) = try Message(frames: try Self.samples[11].frames()) else { return XCTFail() }
        XCTAssertEqual(d, DeltaUpdate(version: 4, offset: 2000, total: 5000))
        XCTAssertEqual(payload, Array(repeating: 7, count: 1000))
        // A piece or acknowledgement past its total, or of no bytes at all, is refused by field.
        for (offset, total) in [(5001, 5000), (0, 0), (-1, 10)] {
            let bad = try Message.deltasReceived(DeltaUpdate(version: 4, offset: offset, total: total)).frames()
            XCTAssertThrowsError(try Message(frames: bad), "offset \(offset) of \(total)") { e in
                guard case WireError.badField(_, let field, _, _) = e else { return XCTFail("\(e)") }
                XCTAssertTrue(field == "offset" || field == "total", field)
            }
        }
    }

    func testZResultSetArtifactRoundTripsAndRefusesCorruption() throws {
        guard case let .result(r, _) = Self.samples[8], case .vstar(let zs) = r.output else { return XCTFail("sample") }
        var two = zs + zs
        two[1].z = [0.25, -1, 3]
        let bytes = ZResultSet(two).serialized()
        let back = try ZResultSet.read(bytes: bytes).results
        XCTAssertEqual(back.map(\.z), two.map(\.z))
        XCTAssertEqual(back.map(\.h0Norm), two.map(\.h0Norm))
        XCTAssertEqual(back[0].losses[0], two[0].losses[0])
        XCTAssertTrue(back[0].losses[1].total.isNaN)
        var bad = bytes
        bad[bad.count / 2] ^= 1
        XCTAssertThrowsError(try ZResultSet.read(bytes: bad)) { XCTAssertTrue("\($0)".contains("checksum mismatch"), "\($0)") }
    }

    /// Result pieces: a payload that fits what remains of the total, and a result naming `piecesTotal`
    /// carries no bytes of its own; anything else is refused by field.
    func testResultPiecesAreCheckedByField() throws {
        func field(_ m: Message) -> String? {
            do { _ = try Message(frames: try m.frames()); return nil } catch {
                guard case WireError.badField(_, let f, _, _) = error else { return "\(error)" }
                return f
            }
        }
        XCTAssertNil(field(.resultPiece(ResultPiece(jobID: 1, offset: 0, total: 3), payload: [1, 2, 3])))
        XCTAssertEqual(field(.resultPiece(ResultPiece(jobID: 1, offset: 1, total: 3), payload: [1, 2, 3])), "payload", "past the total")
        XCTAssertEqual(field(.resultPiece(ResultPiece(jobID: 1, offset: 0, total: 3), payload: [])), "payload", "no bytes")
        XCTAssertEqual(field(.resultPiece(ResultPiece(jobID: 1, offset: 4, total: 3), payload: [1])), "offset")
        XCTAssertEqual(field(.resultPiece(ResultPiece(jobID: 0, offset: 0, total: 3), payload: [1])), "jobID")
        XCTAssertEqual(field(.resultReceived(ResultPiece(jobID: 1, offset: 0, total: 0))), "total")
        // Memory reports: what the worker holds is part of the figure; neither is negative or beyond a machine's.
        XCTAssertNil(field(.memory(MemoryReport(hostMemoryBytes: 2_000, heldBytes: 2_000))))
        XCTAssertEqual(field(.memory(MemoryReport(hostMemoryBytes: 2_000, heldBytes: 2_001))), "heldBytes")
        XCTAssertEqual(field(.memory(MemoryReport(hostMemoryBytes: -1, heldBytes: 0))), "hostMemoryBytes")
        XCTAssertEqual(field(.memory(MemoryReport(hostMemoryBytes: WireProtocol.maxMemoryBytes + 1, heldBytes: 0))), "hostMemoryBytes")
        XCTAssertEqual(field(.hello(Hello(name: "w", pid: 1, threads: 1, modelChecksum: "0123456789abcdef",
                                          hostMemoryBytes: 100, heldBytes: 200))), "heldBytes")
        let r = JobResult(jobID: 1, seconds: 0, output: .covariance(tokens: 1), piecesTotal: 10)
        XCTAssertEqual(field(.result(r, payload: [1])), "piecesTotal", "bytes in pieces and in the frame")
        var zero = r
        zero.piecesTotal = 0
        XCTAssertEqual(field(.result(zero, payload: [])), "piecesTotal")
    }

    /// The sender's window and the receiver's assembly of a transfer in pieces.
    func testPieceWindowAndAssembly() {
        var w = PieceWindow(total: 10)
        var sent: [Range<Int>] = []
        while let r = w.next(pieceBytes: 3, windowPieces: 2) { sent.append(r); w.markSent(r) }
        XCTAssertEqual(sent, [0..<3, 3..<6], "two pieces, then the window is full")
        XCTAssertFalse(w.acknowledge(7), "more than was sent")
        XCTAssertTrue(w.acknowledge(3))
        XCTAssertTrue(w.acknowledge(2))
        XCTAssertEqual(w.acked, 3, "an older acknowledgement changes nothing")
        while let r = w.next(pieceBytes: 3, windowPieces: 2) { sent.append(r); w.markSent(r) }
        XCTAssertEqual(sent.last, 6..<9)
        XCTAssertTrue(w.acknowledge(9))
        while let r = w.next(pieceBytes: 3, windowPieces: 2) { sent.append(r); w.markSent(r) }
        XCTAssertEqual(sent.last, 9..<10, "the tail")
        XCTAssertFalse(w.allAcknowledged)
        XCTAssertTrue(w.acknowledge(10))
        XCTAssertTrue(w.allAcknowledged)
        XCTAssertNil(w.next(pieceBytes: 3, windowPieces: 2))
        XCTAssertTrue(w.saysDropped(4), "fewer bytes than acknowledged before: the receiver dropped them")
        XCTAssertTrue(w.saysDropped(0))
        XCTAssertFalse(w.saysDropped(10))
        w.restart()
        XCTAssertEqual(w.next(pieceBytes: 3, windowPieces: 2), 0..<3, "a new connection starts from byte 0")
        XCTAssertFalse(w.saysDropped(0), "nothing sent yet")
        w.markSent(0..<3)
        XCTAssertTrue(w.saysDropped(0), "0 once a piece went: no piece's acknowledgement says 0")
        XCTAssertFalse(w.saysDropped(3))

        var a = PieceAssembly(total: 5)
        XCTAssertFalse(a.add(offset: 2, total: 5, [1]), "not where the last ended")
        XCTAssertTrue(a.add(offset: 0, total: 5, [1, 2]))
        XCTAssertFalse(a.add(offset: 2, total: 6, [3]), "another total")
        XCTAssertFalse(a.add(offset: 2, total: 5, [3, 4, 5, 6]), "past the total")
        XCTAssertTrue(a.add(offset: 2, total: 5, [3, 4, 5]))
        XCTAssertTrue(a.isComplete)
        XCTAssertEqual(a.bytes, [1, 2, 3, 4, 5])
    }

    func testHeaderLayoutIsPinned() throws {
        let f = try Message.heartbeat.frames()
        XCTAssertEqual(f[0], Array("AEWP".utf8) + [8, 0, 4, 0], "magic, version 8 LE, kind 4 (heartbeat) LE")
        XCTAssertEqual(f[1], Array("{}".utf8))
    }

    func testDefectiveFramesAreTypedErrors() throws {
        let good = try Message.hello(Hello(name: "w", pid: 1, threads: 1, modelChecksum: "0123456789abcdef")).frames()
        func expect(_ frames: [[UInt8]], _ error: WireError, _ what: String) {
            XCTAssertThrowsError(try Message(frames: frames), what) { XCTAssertEqual($0 as? WireError, error, what) }
        }
        expect([], .frameCount(0), "no frames")
        expect([good[0]], .frameCount(1), "header only")
        expect(good + [[], []], .frameCount(4), "too many frames")
        expect([[1, 2, 3], good[1]], .badHeader(bytes: 3), "short header")
        expect([Array("XXXX".utf8) + [1, 0, 1, 0], good[1]], .badMagic(Array("XXXX".utf8)), "bad magic")
        expect([Array("AEWP".utf8) + [9, 0, 1, 0], good[1]], .wrongVersion(found: 9, kind: 1), "wrong version")
        expect([Array("AEWP".utf8) + [UInt8(WireProtocol.version), 0, 99, 0], good[1]], .unknownKind(99), "unknown kind")
        expect([good[0], good[1], [1]], .payload(kind: "hello", expected: false), "payload on hello")
        let result = try Message.result(JobResult(jobID: 1, seconds: 0, output: .covariance(tokens: 1)), payload: []).frames()
        expect(Array(result.prefix(2)), .payload(kind: "result", expected: true), "result without payload")
        XCTAssertThrowsError(try Message(frames: [good[0], Array("{not json".utf8)])) { e in
            guard case .badBody(let k, _)? = e as? WireError else { return XCTFail("\(e)") }
            XCTAssertEqual(k, "hello")
        }
        XCTAssertThrowsError(try Message(frames: [good[0], Array("{\"name\":\"w\"}".utf8)])) { e in
            XCTAssertTrue("\(e)".contains("missing field \"pid\""), "\(e)")
        }
        XCTAssertTrue(Message.isRejection(frames: [Array("AEWP".utf8) + [9, 0, 9, 0], []]), "rejected kind, any version")
        XCTAssertFalse(Message.isRejection(frames: [Array("AEWP".utf8) + [9, 0, 4, 0], []]))
        XCTAssertFalse(Message.isRejection(frames: [[9, 0]]))
        var rng = SplitMix64(seed: 3)
        for _ in 0..<200 {  // random bytes never crash the decoder
            let n = Int(rng.next() % 3) + 1
            let frames = (0..<n).map { _ in (0..<Int(rng.next() % 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            _ = try? Message(frames: frames)
        }
    }

    func testSocketsCarryMultipartMessagesOverInprocIpcAndTcp() throws {
        let ctx = try ZMQContext()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aewire-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for endpoint in ["inproc://wire-test", "ipc://\(dir)/c.ipc", "tcp://127.0.0.1:*"] {
            let router = try ZMQSocket(ctx, .router)
            try router.bind(endpoint)
            let dealer = try ZMQSocket(ctx, .dealer)
            try dealer.setIdentity(Array("d1".utf8))
            try dealer.connect(endpoint == "tcp://127.0.0.1:*" ? try router.lastEndpoint() : endpoint)
            let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 * 31) }
            try dealer.send([[1, 2], [], big])
            let got = try XCTUnwrap(try router.receive(timeoutMs: 5000), "\(endpoint): nothing received")
            XCTAssertEqual(got, [Array("d1".utf8), [1, 2], [], big], endpoint)
            try router.send([Array("d1".utf8), [9]])
            XCTAssertEqual(try dealer.receive(timeoutMs: 5000), [[9]], endpoint)
            XCTAssertNil(try dealer.receive(timeoutMs: 10), "\(endpoint): nothing more")
            XCTAssertThrowsError(try router.send([Array("nobody".utf8), [1]]), "unroutable identity is an error, not a silent drop")
        }
    }
}
