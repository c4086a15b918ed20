// The endpoints a coordinator binds and a worker connects to: `tcp://host:port` (port 1-65535; `*`
// as the host to bind every interface) or `ipc://path` (a Unix socket path, at most 107 bytes).
// Checked once, here, for the config, the coordinator's --endpoint and the worker's --connect, so a
// typo is a message naming the endpoint instead of a ZeroMQ error or a connection that never comes.
public enum Endpoint {
    /// Where a peer connects to reach a socket bound at `bound`: a wildcard host (`*`, 0.0.0.0, [::])
    /// becomes `host`; any other endpoint is returned as it is.
    public static func connectable(_ bound: String, host: String) -> String {
        for any in ["tcp://*:", "tcp://0.0.0.0:", "tcp://[::]:"] where bound.hasPrefix(any) {
            return "tcp://\(host):" + bound.dropFirst(any.count)
        }
        return bound
    }

    /// nil when `text` is a valid endpoint, else what is wrong with it.
    public static func problem(_ text: String) -> String? {
        if text.hasPrefix("ipc://") {
            let path = text.dropFirst(6)
            if path.isEmpty { return "ipc:// needs a socket path" }
            if path.utf8.count > 107 { return "the ipc socket path is \(path.utf8.count) bytes; Unix sockets allow 107" }
            return nil
        }
        guard text.hasPrefix("tcp://") else { return "it starts with neither tcp:// nor ipc://" }
        let rest = text.dropFirst(6)
        guard let colon = rest.lastIndex(of: ":") else { return "tcp:// needs host:port" }
        let host = rest[..<colon], port = rest[rest.index(after: colon)...]
        if host.isEmpty { return "tcp:// needs a host before the port" }
        guard let p = Int(port), (1...65535).contains(p) else { return "port \"\(port.prefix(20))\" is not 1-65535" }
        return nil
    }
}
