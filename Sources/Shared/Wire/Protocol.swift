// The coordinator ⇄ worker protocol, whole (in the style of ZeroMQ's Majordomo): one versioned
// message enum, its frames, and the heartbeat constants. ROUTER (coordinator) / DEALER (workers),
// over tcp:// or ipc://.
//
// A message is 2 or 3 frames (a ROUTER sees the sender's identity frame first):
//   frame 0  header, 8 bytes: magic "AEWP", protocol version (UInt16 LE), kind (UInt16 LE)
//   frame 1  body: JSON (control data; `{}` for kinds without fields)
//   frame 2  payload: raw bytes, only for `result` (an artifact, e.g. KeyStatistics) and `deltas`
//            (a piece of a BatchDeltas artifact) — matrices travel as checksummed artifacts, never as JSON.
// Conversation: worker → hello; coordinator → welcome (then every committed version's deltas, in
// order) or refuse. Large bytes travel in acknowledged pieces both ways: a version's deltas
// (coordinator → worker: `deltas` pieces, each answered `deltasReceived`) and a job result's payload
// larger than one piece (worker → coordinator: `resultPiece`s, each answered `resultReceived`, then the
// `result` itself naming `piecesTotal`, with an empty payload frame). Pieces are ≤ `pieceBytes`, in
// order; the sender keeps at most `windowPieces` unacknowledged, so a heartbeat never waits behind more
// than that on the link and a transfer far longer than `deadAfter` keeps both sides hearing each other.
// Both sides send heartbeat every `heartbeatInterval` while idle or busy; a peer silent for
// `heartbeatLiveness` intervals is dead (a worker's job leases expire with it). Workers also send
// `memory` (their machine's memory now) every `memoryReportInterval` and with each result, which the
// coordinator's admission of K₀ shards follows (WorkerPool+Memory). Coordinator → job;
// worker → result or jobFailed. A worker holds up to `Hello.threads` covariance jobs at once (one
// thread each) or one job of another kind; a job beyond that is answered jobFailed(retryable, busy). A frame that does not decode is logged and answered with `rejected`;
// the receiver keeps serving.
import Editing
import Evaluation
import Foundation

public enum WireProtocol {
    public static let magic: [UInt8] = Array("AEWP".utf8)
    /// Bump on any change to the header, a kind's number or a body's fields. 2: an evaluation shard
    /// names the records that generate and the attribute-snippets file. 3: a covariance shard names its
    /// global batch size in sentences (was tokens). 4: an evaluation shard names how its facts file is read
    /// (schema, zsRE target); a record evaluation carries token accuracies (zsRE) instead of NLL pairs.
    /// 5: a v* chunk's hyperparameters may carry the method's stages (ENCORE's stop runs on the worker).
    /// 6: deltas travel in acknowledged pieces (`deltas` names version, offset and total; new kind
    /// `deltasReceived`). As one message, Qwen's 174 MB update held the heartbeats of both sides for
    /// seconds on a busy 2-core machine: the worker reconnected, which made the coordinator send it again.
    /// 7: a result payload larger than a piece travels in acknowledged pieces too (`resultPiece`,
    /// `resultReceived`, `JobResult.piecesTotal`), and pieces are 256 KiB (were 4 MiB). As one message, a
    /// shard result that took longer than `deadAfter` to cross the link (Qwen's 473 MB at 1 Gbit/s: 3.8 s;
    /// SmolLM2's 47 MB at 50 Mbit/s) got its worker counted dead, which then heard no heartbeat,
    /// reconnected and dropped the result: the build never finished.
    /// 8: workers report their machine's memory while they run (new kind `memory`; `Hello.heldBytes`). Read
    /// once at hello, it did not see another process take the machine's memory during a K₀ build.
    public static let version: UInt16 = 8
    /// Seconds between a worker's memory reports (and one right after each result it sends).
    public static let memoryReportInterval = 1.0
    /// Memory figures above 2⁵² bytes (4 PiB) are not a real machine's.
    public static let maxMemoryBytes = 1 << 52
    /// Largest piece of a transfer (deltas or a result), and how many may be unacknowledged at once:
    /// a peer stays heard from while one piece crosses in under `deadAfter` (links from ≈ 1 Mbit/s), and
    /// 4 MiB in flight keep a 1 Gbit/s link full up to ≈ 30 ms of round trip.
    public static let pieceBytes = 256 << 10
    public static let windowPieces = 16
    /// Seconds between heartbeats in each direction.
    public static let heartbeatInterval = 0.5
    /// Heartbeat intervals of silence after which a peer counts as dead by default (3 s): long enough
    /// for a busy 2-core machine to miss a few beats, short enough that a killed worker's job is re-run
    /// soon. cluster.conf's `dead_after` sets another time (seconds) for links where a TCP stall can be
    /// longer (high delay with loss: 300 ms each way and 10 % loss needs ≈ 15 s); the coordinator tells
    /// its workers in `welcome`, and `alphaedit-worker --dead-after` covers the time before that.
    public static let heartbeatLiveness = 6
    public static var deadAfter: Double { heartbeatInterval * Double(heartbeatLiveness) }
    /// A loop that polls every ≤ 0.25 s and finds `deadAfter` gone since its last turn was not running
    /// (the process was stopped: Ctrl-Z, SIGSTOP, a suspended VM or laptop, or starved): its peers'
    /// silence over that gap says nothing about them, so their liveness starts again from now.
    public static func wasSuspended(lastTurn: Double, now: Double, deadAfter: Double = deadAfter) -> Bool {
        now - lastTurn > deadAfter
    }
    static let headerBytes = 8
    /// Bodies are small control data; anything larger is refused before parsing.
    static let maxBodyBytes = 64 << 20
}

public enum MessageKind: UInt16, CaseIterable, Sendable {
    case hello = 1, welcome, refuse, heartbeat, job, result, jobFailed, deltas, rejected, shutdown, deltasReceived
    case resultPiece, resultReceived, memory
}

// MARK: - Bodies

/// Worker → coordinator, first message: who it is and what it holds.
public struct Hello: Codable, Equatable, Sendable {
    public var name: String
    public var pid: Int32
    public var threads: Int
    /// FNV-1a-64 of the model file, hex (ModelChecksum): every process must run the same weights.
    public var modelChecksum: String
    public var protocolVersion: Int
    /// Committed batches of deltas the worker has applied (0 = base model).
    public var weightsVersion: Int
    /// Jobs this process is still running from an earlier connection (it reconnected after `deadAfter`
    /// of silence, e.g. when the machine was stopped or overloaded): the coordinator leases them back
    /// to it instead of sending it other jobs that it could only refuse as busy. Absent: none (and
    /// what a worker from before this field sends).
    public var running: [Int]?
    /// The machine the worker runs on (its host name): workers that give the same one share its memory.
    /// Absent (a worker from before this field): a machine of its own.
    public var host: String?
    /// Memory of `host` that new allocations can take, measured when the worker says hello
    /// (ProcessStats.availableMemory, plus what this worker's running jobs hold): shared by the
    /// machine's workers, and reported again every `memoryReportInterval` (`memory`). Absent: not known.
    public var hostMemoryBytes: Int?
    /// Of `hostMemoryBytes`, what this worker's running jobs hold (its resident growth since its model
    /// was loaded). Absent: 0.
    public var heldBytes: Int?
    /// The memory this worker may give its jobs, where it was told (`alphaedit-worker --memory-mb`);
    /// absent: no cap of its own. The coordinator runs no more K₀ shards at once on a worker, or on a
    /// machine, than these hold (WorkerPool+Memory).
    public var memoryBytes: Int?
    public init(name: String, pid: Int32, threads: Int, modelChecksum: String,
                protocolVersion: Int = Int(WireProtocol.version), weightsVersion: Int = 0, running: [Int]? = nil,
                host: String? = nil, hostMemoryBytes: Int? = nil, heldBytes: Int? = nil, memoryBytes: Int? = nil) {
        self.name = name; self.pid = pid; self.threads = threads; self.modelChecksum = modelChecksum
        self.protocolVersion = protocolVersion; self.weightsVersion = weightsVersion; self.running = running
        self.host = host; self.hostMemoryBytes = hostMemoryBytes; self.heldBytes = heldBytes; self.memoryBytes = memoryBytes
    }
}

/// Worker → coordinator, every `memoryReportInterval` and after each result: its machine's memory now,
/// as `Hello.hostMemoryBytes` and `Hello.heldBytes` count it.
public struct MemoryReport: Codable, Equatable, Sendable {
    public var hostMemoryBytes: Int
    public var heldBytes: Int
    public init(hostMemoryBytes: Int, heldBytes: Int) { self.hostMemoryBytes = hostMemoryBytes; self.heldBytes = heldBytes }
}

public struct Welcome: Codable, Equatable, Sendable {
    /// The coordinator's committed weights version; deltas up to it follow.
    public var weightsVersion: Int
    /// Seconds of silence after which the coordinator counts this worker dead (cluster.conf
    /// `dead_after`): the worker reconnects after the same silence. Always sent; absent (a coordinator
    /// built before it): the worker keeps its own (`--dead-after`, default `WireProtocol.deadAfter`).
    public var deadAfter: Double?
    public init(weightsVersion: Int, deadAfter: Double? = nil) { self.weightsVersion = weightsVersion; self.deadAfter = deadAfter }
}

/// A reason, for `refuse` (the worker exits) and `rejected` (a bad frame; nothing else changes).
public struct Reason: Codable, Equatable, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// Sentences `first ..< first + count` of `corpus` → KeyStatistics of `layers` (the result's payload).
public struct CovarianceShard: Codable, Equatable, Sendable {
    public var corpus: String
    public var first: Int
    public var count: Int
    public var layers: [Int]
    /// The global batch size S of `CovarianceBuilder` (batches b·S ..< (b+1)·S of the corpus).
    public var batchSentences: Int
    /// Bytes the shard holds on its worker while it runs (KeyStatistics.shardBytes), for the coordinator's
    /// memory admission; nil: not counted.
    public var memoryBytes: Int?
    public init(corpus: String, first: Int, count: Int, layers: [Int], batchSentences: Int, memoryBytes: Int? = nil) {
        self.corpus = corpus; self.first = first; self.count = count; self.layers = layers; self.batchSentences = batchSentences
        self.memoryBytes = memoryBytes
    }
}

/// v* (docs/algorithm.md §3) for a fixed chunk of one batch's requests → [ZResult] in the result body.
public struct VStarChunk: Codable, Equatable, Sendable {
    public var batch: Int
    public var chunk: Int
    public var requests: [EditRequest]
    public var hyperparameters: EditHyperparameters
    public var templates: ContextTemplates
    public init(batch: Int, chunk: Int, requests: [EditRequest], hyperparameters: EditHyperparameters,
                templates: ContextTemplates) {
        self.batch = batch; self.chunk = chunk; self.requests = requests
        self.hyperparameters = hyperparameters; self.templates = templates
    }
}

/// Records `first ..< first + count` of a facts file (CounterFact, with true targets) evaluated on the
/// worker's current weights (docs/algorithm.md §6) → an EvalShard in the result body.
public struct EvaluationShard: Codable, Equatable, Sendable {
    public var facts: String
    public var first: Int
    public var count: Int
    /// nil: scores only (no generated texts, so no fluency).
    public var generation: GenerationSettings?
    /// Records (file indices) that generate; nil: all (CounterFactEvaluator.generationRecords).
    public var generationRecords: Range<Int>?
    /// Attribute snippets for consistency (a path the worker can read); nil: no consistency.
    public var snippets: String?
    /// How the facts file is read (schema, zsRE target); nil: the defaults.
    public var options: FactsOptions?
    public init(facts: String, first: Int, count: Int, generation: GenerationSettings? = nil,
                generationRecords: Range<Int>? = nil, snippets: String? = nil, options: FactsOptions? = nil) {
        self.facts = facts; self.first = first; self.count = count; self.generation = generation
        self.generationRecords = generationRecords; self.snippets = snippets; self.options = options
    }
}

public enum Work: Codable, Equatable, Sendable {
    case covariance(CovarianceShard)
    case vstar(VStarChunk)
    case evaluation(EvaluationShard)

    public var name: String {
        switch self {
        case .covariance: "covariance"
        case .vstar: "v*"
        case .evaluation: "evaluation"
        }
    }

    /// Covariance shards and v* chunks run on one BLAS thread each (their results must not depend on the
    /// worker's thread count, see `BLAS.singleThreaded`), so they share a worker, one per thread;
    /// evaluation runs alone on all threads (WorkerNode, WorkerPool).
    public var sharesWorker: Bool {
        switch self {
        case .covariance, .vstar: true
        case .evaluation: false
        }
    }
}

public struct JobAssignment: Codable, Equatable, Sendable {
    public var id: Int
    /// The weights version the job must run on; a worker holding another one refuses it.
    public var weightsVersion: Int
    public var work: Work
    public init(id: Int, weightsVersion: Int, work: Work) { self.id = id; self.weightsVersion = weightsVersion; self.work = work }
}

public enum JobOutput: Codable, Sendable {
    /// Tokens counted; the KeyStatistics artifact is the payload.
    case covariance(tokens: Int)
    case vstar([ZResult])
    /// One RecordEvaluation per record, in record order.
    case evaluation(EvalShard)
}

public struct JobResult: Codable, Sendable {
    public var jobID: Int
    public var seconds: Double
    public var output: JobOutput
    /// Absent: the message's payload frame is the whole payload. Set: the payload came before in
    /// `resultPiece`s of this many bytes in all, and the payload frame is empty.
    public var piecesTotal: Int?
    public init(jobID: Int, seconds: Double, output: JobOutput, piecesTotal: Int? = nil) {
        self.jobID = jobID; self.seconds = seconds; self.output = output; self.piecesTotal = piecesTotal
    }
}

public struct JobFailure: Codable, Equatable, Sendable {
    public var jobID: Int
    public var reason: String
    /// True when another attempt can succeed (the worker was busy or lacked deltas); false for an
    /// error in the job itself, which would fail anywhere.
    public var retryable: Bool
    public init(jobID: Int, reason: String, retryable: Bool) { self.jobID = jobID; self.reason = reason; self.retryable = retryable }
}

/// A piece of the BatchDeltas artifact that brings the worker to weights `version` (from
/// `version − 1`): its bytes `offset ..< offset + payload` of `total`. In `deltasReceived`, `offset` is
/// how many bytes of the version the worker holds.
public struct DeltaUpdate: Codable, Equatable, Sendable {
    public var version: Int
    public var offset: Int
    public var total: Int
    public init(version: Int, offset: Int, total: Int) { self.version = version; self.offset = offset; self.total = total }
}

/// A piece of job `jobID`'s result payload: its bytes `offset ..< offset + payload` of `total`. In
/// `resultReceived`, `offset` is how many bytes of it the coordinator holds.
public struct ResultPiece: Codable, Equatable, Sendable {
    public var jobID: Int
    public var offset: Int
    public var total: Int
    public init(jobID: Int, offset: Int, total: Int) { self.jobID = jobID; self.offset = offset; self.total = total }
}

// MARK: - The message

public enum Message: Sendable {
    case hello(Hello)
    case welcome(Welcome)
    case refuse(Reason)
    case heartbeat
    case job(JobAssignment)
    case result(JobResult, payload: [UInt8])
    case jobFailed(JobFailure)
    case deltas(DeltaUpdate, payload: [UInt8])
    case rejected(Reason)
    case shutdown
    case deltasReceived(DeltaUpdate)
    case resultPiece(ResultPiece, payload: [UInt8])
    case resultReceived(ResultPiece)
    case memory(MemoryReport)

    public var kind: MessageKind {
        switch self {
        case .hello: .hello
        case .welcome: .welcome
        case .refuse: .refuse
        case .heartbeat: .heartbeat
        case .job: .job
        case .result: .result
        case .jobFailed: .jobFailed
        case .deltas: .deltas
        case .rejected: .rejected
        case .shutdown: .shutdown
        case .deltasReceived: .deltasReceived
        case .resultPiece: .resultPiece
        case .resultReceived: .resultReceived
        case .memory: .memory
        }
    }
}

public enum WireError: Error, Equatable, CustomStringConvertible {
    case frameCount(Int)
    case badHeader(bytes: Int)
    case badMagic([UInt8])
    case wrongVersion(found: UInt16, kind: UInt16)
    case unknownKind(UInt16)
    case bodyTooLarge(Int)
    case badBody(kind: String, detail: String)
    case badField(kind: String, field: String, value: String, expected: String)
    case payload(kind: String, expected: Bool)

    public var description: String {
        switch self {
        case .frameCount(let n): "expected 2 or 3 frames (header, body, payload), got \(n)"
        case .badHeader(let n): "header frame is \(n) bytes, expected \(WireProtocol.headerBytes)"
        case .badMagic(let m): "bad magic \(m.map { String(format: "%02x", $0) }.joined()), expected \"AEWP\""
        case let .wrongVersion(v, k): "protocol version \(v) (message kind \(k)); this build speaks version \(WireProtocol.version)"
        case .unknownKind(let k): "unknown message kind \(k)"
        case .bodyTooLarge(let n): "body of \(n) bytes exceeds \(WireProtocol.maxBodyBytes)"
        case let .badBody(k, d): "\(k) body does not decode: \(d)"
        case let .badField(k, f, v, e): "\(k) field \(f) = \(v) is invalid (expected \(e))"
        case let .payload(k, expected): expected ? "\(k) needs a payload frame" : "\(k) carries an unexpected payload frame"
        }
    }
}

extension Message {
    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        // v* losses can be non-finite on a diverging run; they must still travel.
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }()

    private static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    public static func header(kind: UInt16, version: UInt16 = WireProtocol.version) -> [UInt8] {
        WireProtocol.magic + [UInt8(version & 0xff), UInt8(version >> 8), UInt8(kind & 0xff), UInt8(kind >> 8)]
    }

    /// The frames of this message (without a ROUTER's identity frame).
    public func frames() throws -> [[UInt8]] {
        func json<T: Encodable>(_ v: T) throws -> [UInt8] { Array(try Self.encoder.encode(v)) }
        let empty = Array("{}".utf8)
        var out = [Self.header(kind: kind.rawValue)]
        switch self {
        case .hello(let b): out.append(try json(b))
        case .welcome(let b): out.append(try json(b))
        case .refuse(let b), .rejected(let b): out.append(try json(b))
        case .heartbeat, .shutdown: out.append(empty)
        case .job(let b): out.append(try json(b))
        case let .result(b, payload): out += [try json(b), payload]
        case .jobFailed(let b): out.append(try json(b))
        case let .deltas(b, payload): out += [try json(b), payload]
        case .deltasReceived(let b): out.append(try json(b))
        case let .resultPiece(b, payload): out += [try json(b), payload]
        case .resultReceived(let b): out.append(try json(b))
        case .memory(let b): out.append(try json(b))
        }
        return out
    }

    /// Parses frames; every defect is a typed WireError (a peer's bytes never crash the process).
    public init(frames: [[UInt8]]) throws {
        guard frames.count == 2 || frames.count == 3 else { throw WireError.frameCount(frames.count) }
        let h = frames[0]
        guard h.count == WireProtocol.headerBytes else { throw WireError.badHeader(bytes: h.count) }
        guard Array(h[0..<4]) == WireProtocol.magic else { throw WireError.badMagic(Array(h[0..<4])) }
        let version = UInt16(h[4]) | UInt16(h[5]) << 8, rawKind = UInt16(h[6]) | UInt16(h[7]) << 8
        guard version == WireProtocol.version else { throw WireError.wrongVersion(found: version, kind: rawKind) }
        guard let kind = MessageKind(rawValue: rawKind) else { throw WireError.unknownKind(rawKind) }
        let body = frames[1]
        guard body.count <= WireProtocol.maxBodyBytes else { throw WireError.bodyTooLarge(body.count) }
        let payload: [UInt8]? = frames.count == 3 ? frames[2] : nil
        let needsPayload = kind == .result || kind == .deltas || kind == .resultPiece
        guard (payload != nil) == needsPayload else { throw WireError.payload(kind: "\(kind)", expected: needsPayload) }
        func parse<T: Decodable>(_ t: T.Type) throws -> T {
            let value: T
            do { value = try Self.decoder().decode(T.self, from: Data(body)) } catch {
                throw WireError.badBody(kind: "\(kind)", detail: Self.describe(error))
            }
            try (value as? any CheckedBody)?.check(FieldCheck(kind: "\(kind)"))
            return value
        }
        switch kind {
        case .hello: self = .hello(try parse(Hello.self))
        case .welcome: self = .welcome(try parse(Welcome.self))
        case .refuse: self = .refuse(try parse(Reason.self))
        case .heartbeat: _ = try parse(Empty.self); self = .heartbeat
        case .job: self = .job(try parse(JobAssignment.self))
        case .result:
            let r = try parse(JobResult.self)
            if r.piecesTotal != nil, payload?.isEmpty == false {
                throw WireError.badField(kind: "\(kind)", field: "piecesTotal", value: "\(r.piecesTotal ?? 0)",
                                         expected: "absent when the payload frame carries bytes")
            }
            self = .result(r, payload: payload ?? [])
        case .jobFailed: self = .jobFailed(try parse(JobFailure.self))
        case .deltas: self = .deltas(try parse(DeltaUpdate.self), payload: payload ?? [])
        case .rejected: self = .rejected(try parse(Reason.self))
        case .shutdown: _ = try parse(Empty.self); self = .shutdown
        case .deltasReceived: self = .deltasReceived(try parse(DeltaUpdate.self))
        case .resultPiece:
            let p = try parse(ResultPiece.self)
            guard let bytes = payload, !bytes.isEmpty, bytes.count <= p.total - p.offset else {
                throw WireError.badField(kind: "\(kind)", field: "payload", value: "\(payload?.count ?? 0) bytes",
                                         expected: "1...\(p.total - p.offset) (what remains of total \(p.total) from offset \(p.offset))")
            }
            self = .resultPiece(p, payload: bytes)
        case .resultReceived: self = .resultReceived(try parse(ResultPiece.self))
        case .memory: self = .memory(try parse(MemoryReport.self))
        }
    }

    private struct Empty: Codable {}

    /// Whether undecodable `frames` still carry the `rejected` kind in their header (any version):
    /// such a frame is logged but never answered, so two builds of different versions cannot bounce
    /// rejections back and forth forever.
    public static func isRejection(frames: [[UInt8]]) -> Bool {
        guard let h = frames.first, h.count == WireProtocol.headerBytes, Array(h[0..<4]) == WireProtocol.magic else { return false }
        return UInt16(h[6]) | UInt16(h[7]) << 8 == MessageKind.rejected.rawValue
    }

    /// A one-line reason for a JSON decoding error (the default text is a nested dump).
    private static func describe(_ error: Error) -> String {
        switch error as? DecodingError {
        case .dataCorrupted(let c)?: return "invalid JSON (\(c.debugDescription))"
        case .keyNotFound(let k, _)?: return "missing field \"\(k.stringValue)\""
        case .typeMismatch(_, let c)?, .valueNotFound(_, let c)?:
            return "wrong type at \(c.codingPath.map(\.stringValue).joined(separator: ".")): \(c.debugDescription)"
        default: return "\(error)"
        }
    }
}

// MARK: - Field checks: every field of every body, on decoding (a peer's numbers never crash or mislead)

/// A body whose fields are checked after decoding; a value out of range is a `WireError.badField`.
protocol CheckedBody { func check(_ c: FieldCheck) throws }

struct FieldCheck {
    let kind: String
    /// Worker threads and request counts above these are not a real machine's or batch's.
    static let maxThreads = 1024, maxLayers = 4096, maxItems = 1 << 24, maxName = 128
    static var maxBytes: Int { WireProtocol.maxMemoryBytes }

    func fail(_ field: String, _ value: Any, _ expected: String) -> WireError {
        let text = "\(value)"
        return .badField(kind: kind, field: field, value: text.count > 40 ? String(text.prefix(40)) + "…" : text, expected: expected)
    }
    func range<T: Comparable>(_ field: String, _ v: T, _ r: ClosedRange<T>) throws {
        guard r.contains(v) else { throw fail(field, v, "\(r.lowerBound)...\(r.upperBound)") }
    }
    func span(_ field: String, first: Int, count: Int) throws {
        try range(field + ".first", first, 0...Int.max / 2)
        try range(field + ".count", count, 1...Self.maxItems)
    }
}

extension Hello: CheckedBody {
    func check(_ c: FieldCheck) throws {
        guard (1...FieldCheck.maxName).contains(name.count), !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw c.fail("name", name.debugDescription, "1-\(FieldCheck.maxName) printable characters")
        }
        try c.range("pid", pid, 1...Int32.max)
        try c.range("threads", threads, 1...FieldCheck.maxThreads)
        guard modelChecksum.count == 16, modelChecksum.allSatisfy(\.isHexDigit) else {
            throw c.fail("modelChecksum", modelChecksum.debugDescription, "16 hex digits")
        }
        try c.range("protocolVersion", protocolVersion, 0...Int(UInt16.max))
        try c.range("weightsVersion", weightsVersion, 0...FieldCheck.maxItems)
        if let m = hostMemoryBytes { try c.range("hostMemoryBytes", m, 0...FieldCheck.maxBytes) }
        if let m = heldBytes { try c.range("heldBytes", m, 0...(hostMemoryBytes ?? FieldCheck.maxBytes)) }
        if let m = memoryBytes { try c.range("memoryBytes", m, 0...FieldCheck.maxBytes) }
    }
}

extension MemoryReport: CheckedBody {
    func check(_ c: FieldCheck) throws {
        try c.range("hostMemoryBytes", hostMemoryBytes, 0...FieldCheck.maxBytes)
        try c.range("heldBytes", heldBytes, 0...hostMemoryBytes)
    }
}

extension Welcome: CheckedBody {
    func check(_ c: FieldCheck) throws { try c.range("weightsVersion", weightsVersion, 0...FieldCheck.maxItems) }
}

extension JobAssignment: CheckedBody {
    func check(_ c: FieldCheck) throws {
        try c.range("id", id, 1...Int.max)
        try c.range("weightsVersion", weightsVersion, 0...FieldCheck.maxItems)
        switch work {
        case .covariance(let s):
            try c.span("covariance", first: s.first, count: s.count)
            guard !s.layers.isEmpty, s.layers.allSatisfy({ (0..<FieldCheck.maxLayers).contains($0) }) else {
                throw c.fail("covariance.layers", s.layers, "layer indices 0-\(FieldCheck.maxLayers - 1), at least one")
            }
            try c.range("covariance.batchSentences", s.batchSentences, 1...FieldCheck.maxItems)
        case .vstar(let v):
            try c.range("vstar.batch", v.batch, 1...FieldCheck.maxItems)
            try c.range("vstar.chunk", v.chunk, 0...FieldCheck.maxItems)
            try c.range("vstar.requests", v.requests.count, 1...FieldCheck.maxItems)
        case .evaluation(let e):
            try c.span("evaluation", first: e.first, count: e.count)
        }
    }
}

extension JobResult: CheckedBody {
    func check(_ c: FieldCheck) throws {
        try c.range("jobID", jobID, 1...Int.max)
        guard seconds.isFinite, seconds >= 0 else { throw c.fail("seconds", seconds, "a finite number ≥ 0") }
        if case .covariance(let tokens) = output { try c.range("tokens", tokens, 0...Int.max / 2) }
        if let n = piecesTotal { try c.range("piecesTotal", n, 1...DeltaUpdate.maxTotal) }
    }
}

extension JobFailure: CheckedBody {
    func check(_ c: FieldCheck) throws { try c.range("jobID", jobID, 1...Int.max) }
}

extension DeltaUpdate: CheckedBody {
    static let maxTotal = 1 << 44
    func check(_ c: FieldCheck) throws {
        try c.range("version", version, 1...FieldCheck.maxItems)
        try c.range("total", total, 1...Self.maxTotal)
        try c.range("offset", offset, 0...total)
    }
}

extension ResultPiece: CheckedBody {
    func check(_ c: FieldCheck) throws {
        try c.range("jobID", jobID, 1...Int.max)
        try c.range("total", total, 1...DeltaUpdate.maxTotal)
        try c.range("offset", offset, 0...total)
    }
}
