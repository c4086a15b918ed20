// The thin libzmq wrapper, written once: a context, sockets (linger 0, so closing never blocks on
// unsent messages of a dead peer), bind/connect, multipart send/receive and poll with a timeout.
// A socket is used by one thread only (ZeroMQ sockets are not thread-safe); other threads hand data
// to the socket's thread through a locked queue (see WorkerNode).
import Editing
import Evaluation
import CZMQ
import Foundation

public enum ZMQError: Error, Equatable, CustomStringConvertible {
    case call(String, errno: Int32, message: String)

    static func last(_ what: String) -> ZMQError {
        let e = zmq_errno()
        return .call(what, errno: e, message: String(cString: zmq_strerror(e)))
    }

    public var description: String {
        switch self {
        case let .call(what, errno, message): return "zmq \(what) failed: \(message) (errno \(errno))"
        }
    }
}

/// One per process; sockets keep it alive, and it is terminated after the last socket is closed.
public final class ZMQContext: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer

    public init() throws {
        guard let c = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        raw = c
    }

    deinit { zmq_ctx_term(raw) }
}

public enum ZMQSocketType {
    case router, dealer, pair, rep

    var raw: Int32 {
        switch self {
        case .router: ZMQ_ROUTER
        case .dealer: ZMQ_DEALER
        case .pair: ZMQ_PAIR
        case .rep: ZMQ_REP
        }
    }
}

public final class ZMQSocket {
    public let context: ZMQContext
    private var raw: UnsafeMutableRawPointer?

    public init(_ context: ZMQContext, _ type: ZMQSocketType) throws {
        guard let s = zmq_socket(context.raw, type.raw) else { throw ZMQError.last("zmq_socket") }
        self.context = context
        raw = s
        try setInt(ZMQ_LINGER, 0)
        if type == .router {
            // A reply to a peer that has gone away fails with EHOSTUNREACH instead of vanishing silently.
            try setInt(ZMQ_ROUTER_MANDATORY, 1)
        }
    }

    deinit { close() }

    public func close() {
        if let r = raw { zmq_close(r) }
        raw = nil
    }

    func socket(_ what: String) throws -> UnsafeMutableRawPointer {
        guard let r = raw else { throw ZMQError.call(what, errno: 0, message: "socket is closed") }
        return r
    }

    public func setInt(_ option: Int32, _ value: Int32) throws {
        var v = value
        guard zmq_setsockopt(try socket("setsockopt"), option, &v, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError.last("setsockopt \(option)")
        }
    }

    /// How long closing waits for messages still queued (milliseconds; 0, the default here: drop them).
    public func setLinger(milliseconds: Int32) throws { try setInt(ZMQ_LINGER, milliseconds) }

    /// The routing identity a DEALER presents to a ROUTER.
    public func setIdentity(_ id: [UInt8]) throws {
        let s = try socket("setsockopt identity")
        guard id.withUnsafeBytes({ zmq_setsockopt(s, ZMQ_ROUTING_ID, $0.baseAddress, id.count) }) == 0 else {
            throw ZMQError.last("setsockopt identity")
        }
    }

    /// IPv6 for an endpoint with an IPv6 address (tcp://[::1]:5570): off by default in libzmq, where such a
    /// bind failed with "No such device". Only there: with it on, a host name resolves to its IPv6 address
    /// first, and a worker would miss a coordinator bound to the IPv4 one.
    private func ipv6(for endpoint: String) throws {
        if endpoint.hasPrefix("tcp://[") { try setInt(ZMQ_IPV6, 1) }
    }

    public func bind(_ endpoint: String) throws {
        try ipv6(for: endpoint)
        guard zmq_bind(try socket("bind"), endpoint) == 0 else {
            let e = ZMQError.last("bind \(endpoint)")
            // libzmq binds an address or an interface; a host name is looked up as an interface.
            if case let .call(what, code, message) = e, code == ENODEV, endpoint.hasPrefix("tcp://") {
                throw ZMQError.call(what, errno: code, message: message + ": a coordinator binds an IP address, * (every interface) "
                                    + "or an interface name such as eth0, not a host name")
            }
            throw e
        }
    }

    public func connect(_ endpoint: String) throws {
        try ipv6(for: endpoint)
        guard zmq_connect(try socket("connect"), endpoint) == 0 else { throw ZMQError.last("connect \(endpoint)") }
    }

    /// Sends all frames as one multipart message.
    public func send(_ frames: [[UInt8]]) throws {
        let s = try socket("send")
        for (i, f) in frames.enumerated() {
            let flags: Int32 = i + 1 < frames.count ? ZMQ_SNDMORE : 0
            let rc = f.withUnsafeBytes { zmq_send(s, $0.baseAddress, f.count, flags) }
            guard rc >= 0 else { throw ZMQError.last("send") }
        }
    }

    /// The next multipart message, or nil when none arrives within `timeoutMs` (−1: wait forever).
    public func receive(timeoutMs: Int = -1) throws -> [[UInt8]]? {
        guard try poll([self], timeoutMs: timeoutMs)[0] else { return nil }
        return try receiveNow()
    }

    /// A whole multipart message that poll said is ready.
    func receiveNow() throws -> [[UInt8]]? {
        let s = try socket("recv")
        var frames: [[UInt8]] = []
        while true {
            var msg = zmq_msg_t()
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            let n = zmq_msg_recv(&msg, s, frames.isEmpty ? ZMQ_DONTWAIT : 0)
            if n < 0 {
                if zmq_errno() == EAGAIN, frames.isEmpty { return nil }
                throw ZMQError.last("recv")
            }
            let size = zmq_msg_size(&msg)
            if size > 0, let data = zmq_msg_data(&msg) {
                frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
            } else {
                frames.append([])
            }
            if zmq_msg_more(&msg) == 0 { return frames }
        }
    }

    /// The handle for poll.
    fileprivate var handle: UnsafeMutableRawPointer? { raw }
}

/// Which of `sockets` have a message to read, waiting at most `timeoutMs` (−1: forever).
/// An interrupted wait (EINTR) counts as "nothing ready".
public func poll(_ sockets: [ZMQSocket], timeoutMs: Int) throws -> [Bool] {
    var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
    let rc = zmq_poll(&items, Int32(items.count), timeoutMs)
    if rc < 0 {
        if zmq_errno() == EINTR { return sockets.map { _ in false } }
        throw ZMQError.last("poll")
    }
    return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
}

extension ZMQSocket {
    /// The endpoint actually bound (resolves `tcp://host:*` to the chosen port).
    public func lastEndpoint() throws -> String {
        var buf = [CChar](repeating: 0, count: 512)
        var size = buf.count
        guard let s = handle, zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, &buf, &size) == 0 else {
            throw ZMQError.last("getsockopt last endpoint")
        }
        return String(cString: buf)
    }
}
