// One log set-up for both executables: swift-log to stderr, the level from `--log-level`.
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

public enum LogSetup {
    public static let levels = Logger.Level.allCases.map(\.rawValue)

    /// Bootstraps swift-log once per process; an unknown level name is an error naming the choices.
    public static func bootstrap(level: String) throws {
        guard let l = Logger.Level(rawValue: level) else { throw LogSetupError.unknownLevel(level) }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = l
            return h
        }
    }
}

public enum LogSetupError: Error, CustomStringConvertible {
    case unknownLevel(String)
    public var description: String {
        switch self {
        case .unknownLevel(let s): "--log-level \(s): expected one of \(LogSetup.levels.joined(separator: ", "))"
        }
    }
}
