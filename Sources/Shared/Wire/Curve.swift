// CurveZMQ keys (libzmq's built-in CURVE: Curve25519 key exchange, then every frame encrypted and
// authenticated) and the files that hold them. Keys travel as Z85 text (40 characters for 32 bytes).
//
//   NAME.key  the secret key (mode 0600; refused when group or others may read it, as ssh does):
//               # comment lines
//               public-key = <Z85>
//               secret-key = <Z85>
//   NAME.pub  one line `<Z85 public key> NAME`: the form of an authorized_keys line, so
//             `cat worker-*.pub >> authorized_keys` authorises workers.
//   authorized_keys  one public key a line, optionally followed by a label (shown in the logs);
//             a line whose first character is `#` is a comment, blank lines are skipped.
// `#` is a Z85 letter, so only whole lines are comments; it never starts a key (a group's first
// letter is at most the 83rd: 85⁴·83 > 2³²), so a key line is never mistaken for one.
//
// Every problem is an error naming the file and, inside a file, the line, raised before any socket
// exists (the caller loads keys first).
import Support
import CZMQ
import Foundation

public enum CurveError: Error, Equatable, CustomStringConvertible {
    case unavailable
    case cannotRead(path: String, reason: String)
    case badKey(path: String, line: Int, why: String)
    /// `why` is the whole sentence after the path ("no secret-key line: …").
    case noKey(path: String, why: String)
    case tooOpen(path: String, mode: Int)
    case mismatch(path: String, line: Int)
    case exists(path: String)
    case cannotWrite(path: String, why: String)
    case badName(String)

    public var description: String {
        switch self {
        case .unavailable:
            "this libzmq was built without CURVE (zmq_has(\"curve\") is false): install a libzmq with libsodium (Debian's libzmq5 has it)"
        case .cannotRead(let p, let why): "cannot read key file \(p): \(why)"
        case let .badKey(p, l, why): "\(p):\(l): \(why)"
        case let .noKey(p, why): "\(p): \(why)"
        case let .tooOpen(p, mode):
            "\(p): permissions \(String(format: "%04o", mode)) let others read this secret key: chmod 600 \(p)"
        case let .mismatch(p, l): "\(p):\(l): public-key does not belong to the file's secret-key"
        case .exists(let p): "\(p) exists: refusing to overwrite a key (remove it first if you mean to replace it)"
        case let .cannotWrite(p, why): "cannot write \(p): \(why)"
        case .badName(let n): "key name \"\(n.prefix(60))\" must be 1-64 characters of A-Z a-z 0-9 . _ - (not starting with .)"
        }
    }
}

/// A Curve25519 key, 32 bytes.
public struct CurveKey: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public var z85: String { Z85.encode(bytes) }
    public var description: String { z85 }

    public init?(z85 text: String) {
        guard let b = Z85.decode(text), b.count == 32 else { return nil }
        bytes = b
    }

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// Why `text` is not a Z85 key, or nil.
    public static func problem(_ text: String) -> String? {
        if text.count != 40 { return "a CURVE key is 40 Z85 characters, found \(text.count)" }
        if let bad = text.first(where: { Z85.value[$0] == nil }) { return "'\(bad)' is not a Z85 character" }
        if Z85.decode(text) == nil { return "not a valid Z85 key (a 5-character group exceeds 32 bits)" }
        return nil
    }
}

public struct CurveKeyPair: Sendable {
    public let publicKey: CurveKey
    public let secretKey: CurveKey

    /// A fresh pair from libzmq (libsodium's random source).
    public static func generate() throws -> CurveKeyPair {
        guard Curve.available else { throw CurveError.unavailable }
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0,
              let p = CurveKey(z85: Z85.text(pub)), let s = CurveKey(z85: Z85.text(sec)) else {
            throw CurveError.unavailable
        }
        return CurveKeyPair(publicKey: p, secretKey: s)
    }

    /// The pair of a secret key (its public key derived by libzmq).
    public init(secret: CurveKey) throws {
        guard Curve.available else { throw CurveError.unavailable }
        var pub = [CChar](repeating: 0, count: 41)
        let sec = Array(secret.z85.utf8CString)
        guard zmq_curve_public(&pub, sec) == 0, let p = CurveKey(z85: Z85.text(pub)) else { throw CurveError.unavailable }
        publicKey = p
        secretKey = secret
    }

    init(publicKey: CurveKey, secretKey: CurveKey) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }
}

/// The public keys a coordinator admits, with the label each line gave (for the logs).
public struct AuthorizedKeys: Sendable, Equatable {
    public var labels: [CurveKey: String]
    public init(_ labels: [CurveKey: String] = [:]) { self.labels = labels }
    public func label(of key: CurveKey) -> String? { labels[key] }
    public var count: Int { labels.count }
}

public enum Curve {
    public static var available: Bool { zmq_has("curve") != 0 }

    /// Writes `dir/name.key` (mode 0600) and `dir/name.pub` for a fresh pair; refuses to overwrite either.
    @discardableResult
    public static func writeKeyPair(directory dir: String, name: String) throws -> (secret: String, public: String, CurveKeyPair) {
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
        guard (1...64).contains(name.count), name.allSatisfy({ allowed.contains($0) }), !name.hasPrefix(".") else {
            throw CurveError.badName(name)
        }
        let pair = try CurveKeyPair.generate()
        let secretPath = dir + "/" + name + ".key", publicPath = dir + "/" + name + ".pub"
        for p in [secretPath, publicPath] where FileManager.default.fileExists(atPath: p) { throw CurveError.exists(path: p) }
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw CurveError.cannotWrite(path: dir, why: "\(error.localizedDescription)")
        }
        let secretText = """
            # alphaedit CURVE key pair "\(name)": keep this file private (mode 0600).
            # Its public half is \(name).pub.
            public-key = \(pair.publicKey.z85)
            secret-key = \(pair.secretKey.z85)

            """
        try create(secretPath, secretText, mode: 0o600)
        do { try create(publicPath, "\(pair.publicKey.z85) \(name)\n", mode: 0o644) } catch {
            unlink(secretPath)
            throw error
        }
        return (secretPath, publicPath, pair)
    }

    /// Creates `path` exclusively (O_EXCL: never replaces a file that appeared meanwhile) with `mode`.
    private static func create(_ path: String, _ text: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            if errno == EEXIST { throw CurveError.exists(path: path) }
            throw CurveError.cannotWrite(path: path, why: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count, fchmod(fd, mode) == 0 else {
            unlink(path)
            throw CurveError.cannotWrite(path: path, why: String(cString: strerror(errno)))
        }
    }

    /// The lines of a key file without comments and blanks, numbered from 1.
    private static func lines(_ text: String) -> [(Int, String)] {
        text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { i, raw in
            let t = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            return t.isEmpty || t.hasPrefix("#") ? nil : (i + 1, t)
        }
    }

    private static func text(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CurveError.cannotRead(path: path, reason: FileIO.whyUnreadable(path) ?? "read failed")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CurveError.badKey(path: path, line: 1, why: "the file is not UTF-8 text")
        }
        return text
    }

    private static func key(_ text: String, _ path: String, _ line: Int) throws -> CurveKey {
        if let why = CurveKey.problem(text) { throw CurveError.badKey(path: path, line: line, why: why) }
        guard let k = CurveKey(z85: text) else { throw CurveError.badKey(path: path, line: line, why: "not a CURVE key") }
        return k
    }

    /// This process's key pair from a `.key` file (refused when others may read it).
    public static func loadKeyPair(path: String) throws -> CurveKeyPair {
        var st = stat()
        guard stat(path, &st) == 0 else { throw CurveError.cannotRead(path: path, reason: FileIO.whyUnreadable(path) ?? "cannot stat") }
        let body = try text(path)
        // A .pub given for the secret: said so, not "chmod 600" on a file that is public by design.
        if !body.contains("secret-key"), (try? parsePublicKey(body, path: path)) != nil {
            throw CurveError.badKey(path: path, line: 1, why: "this is a public .pub file: give the secret .key file made beside it")
        }
        let mode = Int(st.st_mode & 0o777)
        if mode & 0o077 != 0 { throw CurveError.tooOpen(path: path, mode: mode) }
        return try parseKeyPair(body, path: path)
    }

    /// A `.key` file's text (`path` names it in errors).
    public static func parseKeyPair(_ text: String, path: String) throws -> CurveKeyPair {
        var pub: (Int, CurveKey)?, sec: CurveKey?
        for (n, l) in lines(text) {
            let parts = l.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else {
                throw CurveError.badKey(path: path, line: n, why: "expected `public-key = …` or `secret-key = …`")
            }
            switch parts[0] {
            case "public-key": pub = (n, try key(parts[1], path, n))
            case "secret-key": sec = try key(parts[1], path, n)
            default: throw CurveError.badKey(path: path, line: n, why: "unknown field \"\(parts[0].prefix(40))\"")
            }
        }
        guard let sec else { throw CurveError.noKey(path: path, why: "no secret-key line (is this a .pub file? give the secret .key file)") }
        let pair = try CurveKeyPair(secret: sec)
        if let (n, p) = pub, p != pair.publicKey { throw CurveError.mismatch(path: path, line: n) }
        return pair
    }

    /// A peer's public key from a `.pub` file (its one key line; a label after it is allowed).
    public static func loadPublicKey(path: String) throws -> CurveKey { try parsePublicKey(try text(path), path: path) }

    public static func parsePublicKey(_ text: String, path: String) throws -> CurveKey {
        let ls = lines(text)
        guard let (n, l) = ls.first else { throw CurveError.noKey(path: path, why: "no public key line (the file holds none)") }
        if l.hasPrefix("secret-key") || l.hasPrefix("public-key") {
            throw CurveError.badKey(path: path, line: n, why: "this is a secret .key file: give the peer's .pub file")
        }
        guard ls.count == 1 else { throw CurveError.badKey(path: path, line: ls[1].0, why: "a .pub file holds one key line") }
        return try key(String(l.split(separator: " ", maxSplits: 1)[0]), path, n)
    }

    /// An authorized_keys file.
    public static func loadAuthorizedKeys(path: String) throws -> AuthorizedKeys {
        try parseAuthorizedKeys(try text(path), path: path)
    }

    public static func parseAuthorizedKeys(_ text: String, path: String) throws -> AuthorizedKeys {
        var keys = AuthorizedKeys()
        for (n, l) in lines(text) {
            if l.hasPrefix("secret-key") || l.hasPrefix("public-key") {
                throw CurveError.badKey(path: path, line: n, why: "this is a secret .key file: authorized_keys lists the workers' .pub lines")
            }
            let parts = l.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" })
            let k = try key(String(parts[0]), path, n)
            keys.labels[k] = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "\(URL(fileURLWithPath: path).lastPathComponent):\(n)"
        }
        return keys
    }
}

/// ZeroMQ's Z85 (RFC 32/Z85): 4 bytes as 5 characters of an 85-letter alphabet.
enum Z85 {
    static let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")
    static let value: [Character: UInt64] = Dictionary(uniqueKeysWithValues: alphabet.enumerated().map { ($1, UInt64($0)) })

    /// The 40 letters libzmq wrote into a NUL-terminated buffer.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func encode(_ bytes: [UInt8]) -> String {
        precondition(bytes.count % 4 == 0)
        var out = ""
        for i in stride(from: 0, to: bytes.count, by: 4) {
            var v = UInt64(bytes[i]) << 24 | UInt64(bytes[i + 1]) << 16 | UInt64(bytes[i + 2]) << 8 | UInt64(bytes[i + 3])
            var chunk = [Character](repeating: "0", count: 5)
            for j in (0..<5).reversed() { chunk[j] = alphabet[Int(v % 85)]; v /= 85 }
            out.append(contentsOf: chunk)
        }
        return out
    }

    /// nil for a length not a multiple of 5, a letter outside the alphabet, or a group above 2³² − 1.
    static func decode(_ text: String) -> [UInt8]? {
        let cs = Array(text)
        guard cs.count % 5 == 0 else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: cs.count, by: 5) {
            var v: UInt64 = 0
            for j in 0..<5 {
                guard let d = value[cs[i + j]] else { return nil }
                v = v * 85 + d
            }
            guard v <= UInt64(UInt32.max) else { return nil }
            out += [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
        }
        return out
    }
}
