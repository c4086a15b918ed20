// The coordinator's and the workers' security from cluster.conf and the command line, with every key
// file read and checked before a socket exists, and the policy: a coordinator on tcp:// without
// `curve_key` refuses to start unless `insecure_tcp = true`; `ipc://` sockets live in a folder only
// their owner can enter (mode 0700).
import Support
import Wire
import Config
import Foundation
import Logging

public enum SecurityError: Error, Equatable, CustomStringConvertible {
    case plaintextTCP(String)
    case noAuthorizedKeys
    case coordinatorKeyWithoutKey
    case sharedIPCDirectory(String)
    case ipcPathNotASocket(String)
    case ipcInUse(String)

    public var description: String {
        switch self {
        case .plaintextTCP(let e):
            "refusing to bind \(e) in plaintext: anyone who can reach the port could join and hand back forged results. "
                + "Create keys (alphaedit keys --out keys --name coordinator) and set curve_key and authorized_keys in "
                + "cluster.conf, or set insecure_tcp = true on a network you trust"
        case .noAuthorizedKeys:
            "curve_key is set but authorized_keys is not: no remote worker could join (list their .pub lines in a file and set authorized_keys)"
        case .coordinatorKeyWithoutKey:
            "a worker given the coordinator's key needs its own key too (--key FILE, or curve_key)"
        case .sharedIPCDirectory(let d):
            "the ipc socket's folder \(d) is shared (other users may enter it) and not ours to restrict: put the endpoint in a folder of your own"
        case .ipcPathNotASocket(let p):
            "ipc://\(p): a file that is not a socket is there, and binding would replace it: name a path that does not exist yet"
        case .ipcInUse(let p):
            "ipc://\(p): another process (a coordinator?) is listening there; binding would take the socket from it: stop it or name another path"
        }
    }
}

extension ClusterConfig {
    /// The coordinator's security: CURVE when `curve_key` is set, with `authorized_keys` loaded
    /// (required unless only local workers join, which get keys of their own at start).
    public func serverSecurity() throws -> ServerSecurity {
        guard let curveKey else { return .plaintext }
        let pair = try Curve.loadKeyPair(path: curveKey)
        if let authorizedKeys { return .curve(pair, authorized: try Curve.loadAuthorizedKeys(path: authorizedKeys)) }
        guard case .local = workers else { throw SecurityError.noAuthorizedKeys }
        return .curve(pair, authorized: AuthorizedKeys())
    }
}

public enum WorkerSecurity {
    /// A worker's security from its key files: both or neither; with neither, from the environment a
    /// Slurm coordinator gives its srun workers (SlurmWorkers), else plaintext.
    public static func client(key: String?, coordinatorKey: String?,
                              environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ClientSecurity {
        switch (key, coordinatorKey) {
        case (nil, nil):
            let s = environment[SlurmWorkers.secretKeyVariable], c = environment[SlurmWorkers.coordinatorKeyVariable]
            guard s != nil || c != nil else { return .plaintext }
            func key(_ v: String?, _ name: String) throws -> CurveKey {
                guard let v else { throw CurveError.noKey(path: "environment", why: "\(name) is not set") }
                if let why = CurveKey.problem(v) { throw CurveError.badKey(path: "environment variable " + name, line: 1, why: why) }
                guard let k = CurveKey(z85: v) else { throw CurveError.badKey(path: "environment variable " + name, line: 1, why: "not a CURVE key") }
                return k
            }
            return .curve(try CurveKeyPair(secret: try key(s, SlurmWorkers.secretKeyVariable)),
                          server: try key(c, SlurmWorkers.coordinatorKeyVariable))
        case (nil, _?): throw SecurityError.coordinatorKeyWithoutKey
        case (let k?, nil):
            _ = try Curve.loadKeyPair(path: k)  // a bad file is still named first
            throw CurveError.noKey(path: "--coordinator-key", why: "missing: a worker with a key of its own pins the coordinator's public key (its .pub file)")
        case let (k?, c?): return .curve(try Curve.loadKeyPair(path: k), server: try Curve.loadPublicKey(path: c))
        }
    }
}

/// Keys made at start for the `local N` workers of a CURVE coordinator: a private temporary folder
/// with their pair and the coordinator's public key; removed when the pool shuts down.
struct LocalWorkerKeys {
    let directory: String
    let pair: CurveKeyPair
    var keyPath: String { directory + "/local-worker.key" }
    var coordinatorPath: String { directory + "/coordinator.pub" }

    static func create(coordinator: CurveKeyPair) throws -> LocalWorkerKeys {
        var template = Array("/tmp/alphaedit-keys-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw CurveError.cannotWrite(path: "/tmp/alphaedit-keys-*", why: String(cString: strerror(errno))) }
        let dir = String(cString: p)
        let (_, _, pair) = try Curve.writeKeyPair(directory: dir, name: "local-worker")
        let pub = "\(coordinator.publicKey.z85) coordinator\n"
        guard FileManager.default.createFile(atPath: dir + "/coordinator.pub", contents: Data(pub.utf8)) else {
            throw CurveError.cannotWrite(path: dir + "/coordinator.pub", why: "create failed")
        }
        return LocalWorkerKeys(directory: dir, pair: pair)
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

enum IPCDirectory {
    /// Checks that binding the `ipc://` endpoint takes nothing from anyone: libzmq's bind removes whatever
    /// is at the path, a user's file included, and a second coordinator silently took a live socket from
    /// the first (whose workers then never reached it). Nothing there, or a socket nobody listens on (left
    /// by a process that died), is free.
    static func checkFree(_ endpoint: String) throws {
        guard endpoint.hasPrefix("ipc://") else { return }
        let path = String(endpoint.dropFirst(6))
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard st.st_mode & S_IFMT == S_IFSOCK else { throw SecurityError.ipcPathNotASocket(path) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return }
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            for (i, b) in bytes.enumerated() { buf[i] = b }
        }
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
        if connected { throw SecurityError.ipcInUse(path) }
    }

    /// The folder of an `ipc://` socket made private (0700) when this process chose the endpoint
    /// (`own`: the state or output folder, created when missing); for an endpoint the user gave, a
    /// folder others may enter is reported (a warning), not changed. A shared sticky folder such as
    /// /tmp, or one of another user, is never changed: an error when we chose it.
    static func secure(_ endpoint: String, own: Bool, log: Logger) throws {
        guard endpoint.hasPrefix("ipc://") else { return }
        let dir = URL(fileURLWithPath: String(endpoint.dropFirst(6))).deletingLastPathComponent().path
        if own, !FileManager.default.fileExists(atPath: dir) {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        var st = stat()
        guard stat(dir, &st) == 0 else { return }
        let mode = st.st_mode & 0o7777
        if mode & 0o077 == 0 { return }
        guard own else {
            log.warning("the ipc socket's folder \(dir) has mode \(String(format: "%04o", mode)): other local users may connect to the coordinator")
            return
        }
        guard st.st_uid == geteuid(), mode & 0o1000 == 0, chmod(dir, 0o700) == 0 else { throw SecurityError.sharedIPCDirectory(dir) }
        log.info("made the ipc socket's folder \(dir) private (mode 0700, was \(String(format: "%04o", mode)))")
    }
}
