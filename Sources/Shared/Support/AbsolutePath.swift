// Paths handed to other processes must not depend on their working directory. (Foundation's
// `URL(fileURLWithPath:).standardized` drops a leading "../" of a relative path on Linux, so the
// current directory is joined first.)
import Foundation

public enum AbsolutePath {
    public static func of(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (joined as NSString).standardizingPath
    }
}
