// cluster.conf: `key = value` lines, `#` comments. Unknown keys and invalid values are errors
// naming the key and line. Relative paths resolve against the file's folder.
import Foundation

public enum ConfigError: Error, Equatable, CustomStringConvertible {
    case cannotRead(path: String)
    case syntax(line: Int, text: String)
    case unknownKey(key: String, line: Int)
    case invalidValue(key: String, line: Int, value: String, expected: String)
    case duplicateKey(key: String, line: Int)

    public var description: String {
        switch self {
        case .cannotRead(let p): "cannot read config file \(p)"
        case .syntax(let l, let t): "config line \(l): expected `key = value`, found \"\(t)\""
        case .unknownKey(let k, let l): "config line \(l): unknown key \"\(k)\""
        case .invalidValue(let k, let l, let v, let e): "config line \(l): \(k) = \"\(v)\" is invalid (expected \(e))"
        case .duplicateKey(let k, let l): "config line \(l): \(k) is set twice"
        }
    }
}

public struct ClusterConfig: Sendable, Equatable {
    /// Path of the GGUF model.
    public var model: String = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    /// Threads for linear algebra in this process.
    public var threads: Int = 2

    public init() {}

    /// Keys this version understands, with a one-line meaning (printed by `alphaedit config`).
    public static let keys: [(String, String)] = [
        ("model", "path of the GGUF model (relative to this file)"),
        ("threads", "OpenBLAS threads for this process (1-256)"),
    ]

    public static func load(path: String) throws -> ClusterConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ConfigError.cannotRead(path: path) }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try parse(text, baseDirectory: dir)
    }

    public static func parse(_ text: String, baseDirectory: String = ".") throws -> ClusterConfig {
        var c = ClusterConfig()
        var seen: Set<String> = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNo = i + 1
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else { throw ConfigError.syntax(line: lineNo, text: trimmed) }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { throw ConfigError.syntax(line: lineNo, text: trimmed) }
            guard !seen.contains(key) else { throw ConfigError.duplicateKey(key: key, line: lineNo) }
            seen.insert(key)
            switch key {
            case "model":
                guard !value.isEmpty else { throw ConfigError.invalidValue(key: key, line: lineNo, value: value, expected: "a file path") }
                c.model = value.hasPrefix("/") ? value : URL(fileURLWithPath: baseDirectory).appendingPathComponent(value).standardized.path
            case "threads":
                guard let n = Int(value), (1...256).contains(n) else {
                    throw ConfigError.invalidValue(key: key, line: lineNo, value: value, expected: "an integer 1-256")
                }
                c.threads = n
            default:
                throw ConfigError.unknownKey(key: key, line: lineNo)
            }
        }
        return c
    }
}
