// Wire messages as a coordinator or worker receives them: 2 or 3 frames (header, JSON body, payload),
// and a result's payload decoded as the artifact its job kind names.
// Input layout: byte 0 picks 2 or 3 frames; bytes 1...8 are the header; with 3 frames bytes 9-10
// (little endian) give the body's length and the rest is the payload; with 2 the rest is the body.
import Editing
import Evaluation
import Wire
import Foundation

public enum WireFuzz: FuzzTarget {
    public static func seeds() throws -> [(String, [UInt8])] {
        let request = EditRequest(caseID: 7, prompt: "{} is located in", subject: "The Eiffel Tower", targetNew: "Rome",
                                  targetTrue: "Paris", paraphrasePrompts: ["Where is {}? It is in"])
        let z = try JSONDecoder().decode(ZResult.self, from: Data(#"{"z":[0.5,-1,2],"h0Norm":1.5,"deltaNorm":0.25,"losses":[[1,0.9,0.05,0.05]]}"#.utf8))
        let stats = try KeyStatistics(layers: [3, 4], f: 4, provenance: "seed")
        let deltas = BatchDeltas(rows: 2, cols: 2, deltas: [3: [1, 2, 3, 4]]).serialized()
        let messages: [Message] = [
            .hello(Hello(name: "w1", pid: 42, threads: 2, modelChecksum: "00ff", weightsVersion: 1)),
            .welcome(Welcome(weightsVersion: 2)),
            .refuse(Reason("model differs")),
            .heartbeat,
            .job(JobAssignment(id: 1, weightsVersion: 0, work: .covariance(
                CovarianceShard(corpus: "/data/wiki.txt", first: 0, count: 48, layers: [3, 4], batchSentences: 24)))),
            .job(JobAssignment(id: 2, weightsVersion: 1, work: .vstar(
                VStarChunk(batch: 0, chunk: 1, requests: [request], hyperparameters: EditHyperparameters(),
                           templates: ContextTemplates(groups: [["{}"], ["The. {}"]]))))),
            .job(JobAssignment(id: 3, weightsVersion: 1, work: .evaluation(
                EvaluationShard(facts: "/data/cf.json", first: 0, count: 2, generation: GenerationSettings(maxTokens: 4),
                                generationRecords: 0..<1)))),
            .result(JobResult(jobID: 1, seconds: 0.5, output: .covariance(tokens: 100)), payload: stats.serialized()),
            .result(JobResult(jobID: 2, seconds: 0.5, output: .vstar([z])), payload: ZResultSet([z]).serialized()),
            .jobFailed(JobFailure(jobID: 3, reason: "out of memory", retryable: true)),
            .deltas(DeltaUpdate(version: 1, offset: 0, total: deltas.count), payload: deltas),
            .rejected(Reason("bad frame")),
            .shutdown,
            .deltasReceived(DeltaUpdate(version: 1, offset: deltas.count, total: deltas.count)),
            .resultPiece(ResultPiece(jobID: 1, offset: 0, total: stats.serialized().count), payload: Array(stats.serialized().prefix(40))),
            .resultReceived(ResultPiece(jobID: 1, offset: 40, total: stats.serialized().count)),
            .result(JobResult(jobID: 1, seconds: 0.5, output: .covariance(tokens: 100), piecesTotal: stats.serialized().count), payload: []),
            .memory(MemoryReport(hostMemoryBytes: 3_000_000_000, heldBytes: 950_000_000)),
        ]
        return try messages.enumerated().map { i, m in
            let frames = try m.frames()
            var input: [UInt8] = [UInt8(frames.count - 2)] + frames[0]
            if frames.count == 3 {
                input += [UInt8(frames[1].count & 0xFF), UInt8(frames[1].count >> 8)] + frames[1] + frames[2]
            } else {
                input += frames[1]
            }
            return ("\(i)-\(m.kind)", input)
        }
    }

    public static func test(_ input: [UInt8]) {
        guard input.count >= 9 else { return }
        let header = Array(input[1...8])
        var frames: [[UInt8]]
        if input[0] & 1 == 1 {
            guard input.count >= 11 else { return }
            let length = min(Int(input[9]) | Int(input[10]) << 8, input.count - 11)
            frames = [header, Array(input[11 ..< 11 + length]), Array(input[(11 + length)...])]
        } else {
            frames = [header, Array(input[9...])]
        }
        _ = Message.isRejection(frames: frames)
        guard let message = try? Message(frames: frames) else { return }
        switch message {
        case let .result(result, payload):
            switch result.output {
            case .covariance: _ = try? KeyStatistics.read(bytes: payload)
            case .vstar: _ = try? ZResultSet.read(bytes: payload)
            case .evaluation: break
            }
        case let .deltas(_, payload): _ = try? BatchDeltas.read(bytes: payload)
        default: break
        }
        _ = try? message.frames()
    }
}
