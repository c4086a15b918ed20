// Facts to edit, read from a file into `[EditRequest]`. Four record schemas, each as JSON lines or as
// one JSON array:
//   - CounterFact (shared/data/SOURCES.md): case_id, relation_id,
//     requested_rewrite{prompt, subject, target_true{str}, target_new{str}}, paraphrase_prompts,
//     neighborhood_prompts, generation_prompts, attribute_prompts (the last is read and ignored);
//   - flat CounterFact (EasyEdit's): case_id, prompt (holding the subject literally), subject,
//     target_new, ground_truth, rephrase_prompt, locality_prompt, locality_ground_truth;
//   - zsRE (MEND's, docs/algorithm.md §7): subject, src (holding the subject literally), answers, alt,
//     rephrase, loc, loc_ans, and optionally portability{New Question, New Answer};
//   - simple: {prompt, subject, target}.
// The schema is read from each record's fields (`requested_rewrite`; any of zsRE's own fields; any of
// flat CounterFact's; else simple) unless the caller names one (`FactsFormat`). Every selected record is validated before
// any is returned, so a bad fact stops a run before model work starts, with its line (JSON lines) or
// its 0-based index (JSON array) in the message.
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model
import Foundation

public enum FactsError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotRead(path: String, reason: String)
    /// The file is neither a JSON array nor JSON lines (e.g. a stray byte before the first `[`).
    case invalidJSON(location: String)
    /// The whole file is one pretty-printed JSON object.
    case objectOverLines(name: String)
    case notAnObject(location: String)
    case missingField(location: String, field: String)
    case wrongType(location: String, field: String, expected: String)
    case emptyField(location: String, field: String)
    case noSubjectSlot(location: String, prompt: String)
    case manySubjectSlots(location: String, prompt: String, count: Int)
    case invalidSelection(String)
    case noRecords(name: String, offset: Int)
    case tooLong(location: String, field: String, tokens: Int, limit: Int, context: Int)
    case subjectNotInPrompt(location: String, field: String, subject: String)

    public var description: String {
        switch self {
        case let .cannotRead(path, reason): return "cannot read facts file \(path): \(reason)"
        case let .invalidJSON(at): return "\(at): not valid JSON"
        case let .objectOverLines(name):
            return "\(name): one JSON object over several lines; a facts file is one object a line (JSON lines) or one array of objects"
        case let .notAnObject(at): return "\(at): not a JSON object"
        case let .missingField(at, field): return "\(at): missing \"\(field)\""
        case let .wrongType(at, field, expected): return "\(at): \"\(field)\" must be \(expected)"
        case let .emptyField(at, field): return "\(at): \"\(field)\" is empty"
        case let .noSubjectSlot(at, prompt): return "\(at): prompt \"\(prompt)\" has no {} for the subject"
        case let .manySubjectSlots(at, prompt, n):
            return "\(at): prompt \"\(prompt)\" has \(n) {} (exactly one, for the subject, is allowed)"
        case let .invalidSelection(text): return "facts selection: \(text)"
        case let .subjectNotInPrompt(at, field, subject): return "\(at): \"\(field)\" does not contain the subject \"\(subject)\""
        case let .noRecords(name, offset):
            return offset == 0 ? "\(name): no records" : "\(name): no records after skipping \(offset)"
        case let .tooLong(at, field, tokens, limit, context):
            return "\(at): \(field) is \(tokens) tokens; at most \(limit) fit the model's context of \(context) "
                + "(with room for the context templates and generated tokens)"
        }
    }
}

/// A facts file's record schema (see the file comment); `auto` reads it from each record.
public enum FactsFormat: String, Sendable, Codable, CaseIterable {
    case auto, counterfact, counterfactFlat = "counterfact-flat", zsre, simple
}

/// Which zsRE answer is the edit's target: `answers[0]` (the paper's) or `alt` (EasyEdit's, whose
/// portability question then applies).
public enum ZsRETarget: String, Sendable, Codable, CaseIterable {
    case answers, alt
}

public struct FactsOptions: Sendable, Equatable, Codable {
    public var format: FactsFormat
    public var zsreTarget: ZsRETarget
    public init(format: FactsFormat = .auto, zsreTarget: ZsRETarget = .answers) {
        self.format = format; self.zsreTarget = zsreTarget
    }
}

public enum FactsFile {
    /// Reads `path` (see the file comment); skips `offset` records and keeps at most `limit`.
    public static func read(path: String, offset: Int = 0, limit: Int? = nil, options: FactsOptions = FactsOptions()) throws -> [EditRequest] {
        guard let data = FileManager.default.contents(atPath: path) else { throw FactsError.cannotRead(path: path, reason: FileIO.whyUnreadable(path) ?? "read failed") }
        return try parse(data, name: path, offset: offset, limit: limit, options: options)
    }

    /// Parses a facts document held in memory; `name` starts every error message.
    public static func parse(_ data: Data, name: String, offset: Int = 0, limit: Int? = nil,
                             options: FactsOptions = FactsOptions()) throws -> [EditRequest] {
        guard offset >= 0 else { throw FactsError.invalidSelection("offset \(offset) is negative") }
        if let limit, limit < 1 { throw FactsError.invalidSelection("limit \(limit) must be at least 1") }
        // A byte-order mark (an editor's UTF-8 "with BOM") is not part of the first record.
        let data = data.starts(with: [0xEF, 0xBB, 0xBF]) ? data.dropFirst(3) : data
        let firstByte = data.first { !Self.isSpace($0) }
        let records: [EditRequest]
        if firstByte == UInt8(ascii: "[") {
            records = try arrayRecords(Data(data), name: name, offset: offset, limit: limit, options: options)
        } else {
            do {
                records = try lineRecords(Data(data), name: name, offset: offset, limit: limit, options: options)
            } catch FactsError.invalidJSON where firstByte == UInt8(ascii: "{")
                        && (try? JSONSerialization.jsonObject(with: Data(data))) is [String: Any] {
                // One pretty-printed object: valid JSON, but not one record a line.
                throw FactsError.objectOverLines(name: name)
            }
        }
        guard !records.isEmpty else { throw FactsError.noRecords(name: name, offset: offset) }
        return records
    }

    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    private static func arrayRecords(_ data: Data, name: String, offset: Int, limit: Int?, options: FactsOptions) throws -> [EditRequest] {
        guard let items = try? JSONSerialization.jsonObject(with: data) as? [Any] else {
            throw FactsError.invalidJSON(location: name)
        }
        let end = limit.map { $0 >= items.count - offset ? items.count : offset + $0 } ?? items.count
        guard offset < end else { return [] }
        return try (offset..<end).map { i in try record(items[i], at: "\(name) index \(i)", options: options) }
    }

    private static func lineRecords(_ data: Data, name: String, offset: Int, limit: Int?, options: FactsOptions) throws -> [EditRequest] {
        var out: [EditRequest] = []
        var seen = 0
        // Lines are numbered as an editor shows them: blank lines count but hold no record.
        for (i, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy(isSpace) { continue }
            defer { seen += 1 }
            if seen < offset { continue }
            if let limit, out.count >= limit { break }
            let at = "\(name) line \(i + 1)"
            guard let object = try? JSONSerialization.jsonObject(with: Data(line), options: .fragmentsAllowed) else {
                throw FactsError.invalidJSON(location: at)
            }
            out.append(try record(object, at: at, options: options))
        }
        return out
    }

    /// One record, validated.
    static func record(_ object: Any, at: String, options: FactsOptions = FactsOptions()) throws -> EditRequest {
        guard let r = object as? [String: Any] else { throw FactsError.notAnObject(location: at) }
        var at = at
        var format = options.format
        if format == .auto {
            func first(_ keys: [String]) -> String? { keys.first { r[$0] != nil } }
            let zsreKey = first(["src", "answers", "alt", "loc", "loc_ans"])
            let flatKey = first(["ground_truth", "target_new", "rephrase_prompt", "locality_prompt", "locality_ground_truth"])
            format = r["requested_rewrite"] != nil ? .counterfact : zsreKey != nil ? .zsre : flatKey != nil ? .counterfactFlat : .simple
            // A simple record with one extra field of another schema is read as that schema: its errors say so.
            if r["target"] != nil, format == .zsre || format == .counterfactFlat {
                at += " (read as \(format.rawValue), for its \"\(zsreKey ?? flatKey ?? "")\" field; --format simple reads {prompt, subject, target})"
            }
        }
        let f = Fields(r, at: at)
        switch format {
        case .zsre: return try zsre(f, at: at, target: options.zsreTarget)
        case .counterfactFlat: return try counterfactFlat(f, at: at)
        case .counterfact: return try counterfact(f, at: at)
        case .simple, .auto: break
        }
        let prompt = try f.text("prompt")
        try checkSlot(prompt, at: at)
        return EditRequest(prompt: prompt, subject: try f.text("subject"), targetNew: try f.text("target"))
    }

    /// A question or prompt that names its subject literally, as a template: the first occurrence
    /// becomes `{}` (docs/algorithm.md §7: every record holds its subject).
    private static func template(_ text: String, subject: String, field: String, at: String) throws -> String {
        guard text.range(of: subject) != nil else { throw FactsError.subjectNotInPrompt(location: at, field: field, subject: subject) }
        guard !text.contains("{}") else { throw FactsError.manySubjectSlots(location: at, prompt: text, count: 2) }
        return text.replacingFirst(subject, with: "{}")
    }

    private static func zsre(_ f: Fields, at: String, target: ZsRETarget) throws -> EditRequest {
        let subject = try f.text("subject")
        let prompt = try template(try f.text("src"), subject: subject, field: "src", at: at)
        let targetNew: String
        switch target {
        case .answers:
            guard let first = try f.strings("answers").first else { throw FactsError.missingField(location: at, field: "answers[0]") }
            guard !first.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw FactsError.emptyField(location: at, field: "answers[0]")
            }
            targetNew = first
        case .alt:
            targetNew = try f.text("alt")
        }
        // The portability answer follows from the `alt` edit (EasyEdit's variant); checked either way.
        let portability = try f.optionalObject("portability").map {
            EditRequest.Portability(question: try $0.text("New Question"), answer: try $0.text("New Answer"))
        }
        return EditRequest(caseID: try f.optionalInt("case_id"), prompt: prompt, subject: subject, targetNew: targetNew,
                           paraphrasePrompts: [try f.text("rephrase")],
                           neighborhoodPrompts: [try f.text("loc") + "?"],
                           neighborhoodAnswer: try f.text("loc_ans"), portability: target == .alt ? portability : nil)
    }

    private static func counterfactFlat(_ f: Fields, at: String) throws -> EditRequest {
        let subject = try f.text("subject")
        let prompt = try template(try f.text("prompt"), subject: subject, field: "prompt", at: at)
        return EditRequest(caseID: try f.optionalInt("case_id"), prompt: prompt, subject: subject,
                           targetNew: try f.text("target_new"), targetTrue: try f.text("ground_truth"),
                           paraphrasePrompts: [try f.text("rephrase_prompt")],
                           neighborhoodPrompts: [try f.text("locality_prompt")],
                           neighborhoodAnswer: try f.text("locality_ground_truth"))
    }

    private static func counterfact(_ f: Fields, at: String) throws -> EditRequest {
        let rw = try f.object("requested_rewrite")
        let prompt = try rw.text("prompt")
        try checkSlot(prompt, at: at)
        return EditRequest(caseID: try f.optionalInt("case_id"), prompt: prompt, subject: try rw.text("subject"),
                           targetNew: try rw.object("target_new").text("str"),
                           targetTrue: try rw.optionalObject("target_true")?.text("str"),
                           relationID: try f.optionalString("relation_id"),
                           paraphrasePrompts: try f.strings("paraphrase_prompts"),
                           neighborhoodPrompts: try f.strings("neighborhood_prompts"),
                           generationPrompts: try f.strings("generation_prompts"))
    }

    /// The prompt is filled like Python's `str.format` with one argument: exactly one `{}`.
    private static func checkSlot(_ prompt: String, at: String) throws {
        let n = prompt.components(separatedBy: "{}").count - 1
        if n == 0 { throw FactsError.noSubjectSlot(location: at, prompt: prompt) }
        if n > 1 { throw FactsError.manySubjectSlots(location: at, prompt: prompt, count: n) }
    }
}

/// Typed access to one JSON object's fields; `path` is the dotted name used in messages.
private struct Fields {
    let values: [String: Any]
    let at: String
    let path: String

    init(_ values: [String: Any], at: String, path: String = "") {
        self.values = values; self.at = at; self.path = path
    }

    func name(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    /// A required non-blank string (subjects and targets made of spaces would edit nothing).
    func text(_ key: String) throws -> String {
        guard let v = values[key], !(v is NSNull) else { throw FactsError.missingField(location: at, field: name(key)) }
        guard let s = v as? String else {
            throw FactsError.wrongType(location: at, field: name(key), expected: "a string")
        }
        guard !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw FactsError.emptyField(location: at, field: name(key))
        }
        return s
    }

    func object(_ key: String) throws -> Fields {
        guard let f = try optionalObject(key) else { throw FactsError.missingField(location: at, field: name(key)) }
        return f
    }

    func optionalObject(_ key: String) throws -> Fields? {
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard let o = v as? [String: Any] else {
            throw FactsError.wrongType(location: at, field: name(key), expected: "an object")
        }
        return Fields(o, at: at, path: name(key))
    }

    func optionalString(_ key: String) throws -> String? {
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard let s = v as? String else { throw FactsError.wrongType(location: at, field: name(key), expected: "a string") }
        return s
    }

    func optionalInt(_ key: String) throws -> Int? {
        guard let v = values[key], !(v is NSNull) else { return nil }
        // JSON numbers and booleans both arrive as NSNumber (`is Bool` holds for 1 too); booleans carry
        // the objCType "c". A fractional or boolean value is not an id.
        guard let n = v as? NSNumber, String(cString: n.objCType) != "c", let i = Int(exactly: n.doubleValue) else {
            throw FactsError.wrongType(location: at, field: name(key), expected: "an integer")
        }
        return i
    }

    /// An optional list of prompts (absent means none).
    func strings(_ key: String) throws -> [String] {
        guard let v = values[key], !(v is NSNull) else { return [] }
        guard let a = v as? [Any], let s = a as? [String] else {
            throw FactsError.wrongType(location: at, field: name(key), expected: "a list of strings")
        }
        return s
    }
}

extension FactsFile {
    /// Tokens reserved beside a record's text: a v* context template (≤ 10 tokens) and BOS, with margin.
    public static let templateReserve = 32

    /// Requests of one batch that ask the same prompt about the same subject for different targets
    /// (records counted from 1): only one answer can hold, and the batch's solve settles between them.
    public static func conflicts(_ requests: [EditRequest], batchSize: Int) -> [String] {
        var out: [String] = []
        for start in stride(from: 0, to: requests.count, by: max(1, batchSize)) {
            var first: [String: Int] = [:]
            for i in start..<min(requests.count, start + batchSize) {
                let key = requests[i].filledPrompt
                if let j = first[key] {
                    if requests[j].targetNew != requests[i].targetNew {
                        out.append("records \(j + 1) and \(i + 1) (one batch) ask \"\(key)\" for different targets (\"\(requests[j].targetNew)\", "
                                   + "\"\(requests[i].targetNew)\"): at most one can hold")
                    }
                } else {
                    first[key] = i
                }
            }
        }
        return out
    }

    /// Checks that every text of every record, tokenized, fits the model's `context` with `reserve`
    /// tokens to spare (context templates; generated tokens for evaluation), before any work starts:
    /// the error names the record (1-based, counting from `firstRecord`) and the field.
    public static func checkLengths(_ records: [EditRequest], name: String, firstRecord: Int = 1,
                                    tokenizer: any Tokenizer, context: Int, reserve: Int) throws {
        let limit = context - reserve
        for (i, r) in records.enumerated() {
            let at = "\(name) record \(firstRecord + i)" + (r.caseID.map { " (case_id \($0))" } ?? "")
            var texts: [(String, String)] = [("prompt + target", r.filledPrompt + r.targetText)]
            if let t = r.targetTrue { texts.append(("prompt + target_true", r.filledPrompt + " " + t)) }
            texts += r.paraphrasePrompts.enumerated().map { ("paraphrase_prompts[\($0)] + target", $1 + r.targetText) }
            texts += r.neighborhoodPrompts.enumerated().map { ("neighborhood_prompts[\($0)] + target", $1 + r.targetText) }
            texts += r.generationPrompts.enumerated().map { ("generation_prompts[\($0)]", $1) }
            for (field, text) in texts {
                // A token holds at least one byte: only a text longer than `limit` bytes can be too long.
                guard text.utf8.count > limit else { continue }
                let n = tokenizer.encode(text, addSpecial: true).count
                if n > limit { throw FactsError.tooLong(location: at, field: field, tokens: n, limit: limit, context: context) }
            }
        }
    }
}
