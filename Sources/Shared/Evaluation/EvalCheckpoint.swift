// Per-record results of one evaluation phase, kept on disk as they come (`eval --out DIR`): a run that
// stops midway (killed, out of time) and is started again with the same inputs evaluates only the
// records it had not finished. Each record is evaluated in its own forward passes on one BLAS thread
// (CounterFactEvaluator), so its result does not depend on which chunk it came in: a resumed report
// equals an uninterrupted one bit for bit (EvalCheckpointTests).
import Editing
import Support
import Foundation

public struct EvalCheckpoint {
    /// What the results were measured on and with (`key(...)`); a file with another key is not used.
    public let key: String
    /// nil: kept in memory only (a run without a report directory).
    public let path: String?
    /// The results so far, by record index.
    public private(set) var records: [Int: RecordEvaluation] = [:]

    struct File: Codable {
        var key: String
        var records: [RecordEvaluation]
    }

    /// The file at `path` when it holds results of `key` (else none); `note` says why a file there is not used.
    public init(path: String?, key: String, note: (String) -> Void = { _ in }) {
        self.path = path; self.key = key
        guard let path, let data = FileManager.default.contents(atPath: path) else { return }
        let dec = JSONDecoder()
        dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            let f = try dec.decode(File.self, from: data)
            guard f.key == key else {
                note("\(path) holds results of other inputs (model, weights, records or settings): not used")
                return
            }
            for r in f.records { records[r.index] = r }
        } catch {
            note("\(path) does not read (\(error)): not used")
        }
    }

    /// Adds a shard's results and rewrites the file (atomically: a kill leaves the old or the new one);
    /// the results are added even when the write fails.
    public mutating func add(_ shard: EvalShard) throws {
        for r in shard.records { records[r.index] = r }
        guard let path else { return }
        let enc = JSONEncoder()
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let data = try enc.encode(File(key: key, records: records.values.sorted { $0.index < $1.index }))
        try FileIO.writeAtomically([UInt8](data), to: path)
    }

    public func remove() { if let path { try? FileManager.default.removeItem(atPath: path) } }

    /// Results measured elsewhere on the same inputs (an earlier report's, `--pre-from`), not written.
    public mutating func seed(_ shard: EvalShard) {
        for r in shard.records where records[r.index] == nil { records[r.index] = r }
    }

    /// A phase's identity: the model file, the weights on it (the committed batches' deltas checksums, in
    /// order; none for the unedited model), the records (their decoded contents and first index) and how
    /// they are evaluated (generation settings, which records generate, attribute snippets or not).
    public static func key(phase: String, model: String, weights: [String], records: [EditRequest], firstIndex: Int,
                           evaluation: String) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let bytes = try enc.encode(records)
        let sum = bytes.withUnsafeBytes { FNV1a64.hash($0) }
        let parts = ["eval-checkpoint 1", phase, model, weights.joined(separator: ","),
                     "records \(records.count) from \(firstIndex) " + String(format: "%016llx", sum), evaluation]
        return parts.joined(separator: " | ")
    }
}
