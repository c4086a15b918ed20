// Who may talk to whom over the wire: the CURVE settings of the coordinator's ROUTER and of a worker's
// DEALER, the ZAP handler that admits worker keys (ZeroMQ RFC 27: libzmq asks it over
// inproc://zeromq.zap.01 during every CURVE handshake), and the socket monitor through which both
// sides learn why a handshake failed (libzmq otherwise just retries in silence).
import CZMQ
import Foundation

/// How a coordinator's socket admits peers.
public enum ServerSecurity: Sendable {
    /// No authentication, no encryption (ipc:// on one machine, or tcp:// with `insecure_tcp = true`).
    case plaintext
    /// CURVE with this coordinator's key pair; only the authorised worker keys are admitted.
    case curve(CurveKeyPair, authorized: AuthorizedKeys)

    public var isCurve: Bool { if case .curve = self { true } else { false } }
}

/// How a worker's socket meets the coordinator.
public enum ClientSecurity: Sendable {
    case plaintext
    /// CURVE with this worker's pair, pinning the coordinator's public key.
    case curve(CurveKeyPair, server: CurveKey)
}

extension ZMQSocket {
    func setBytes(_ option: Int32, _ bytes: [UInt8], _ what: String) throws {
        let s = try socket(what)
        guard bytes.withUnsafeBytes({ zmq_setsockopt(s, option, $0.baseAddress, bytes.count) }) == 0 else {
            throw ZMQError.last("setsockopt \(what)")
        }
    }

    /// Must precede bind.
    public func secure(_ security: ServerSecurity) throws {
        guard case let .curve(pair, _) = security else { return }
        guard Curve.available else { throw CurveError.unavailable }
        try setInt(ZMQ_CURVE_SERVER, 1)
        try setBytes(ZMQ_CURVE_SECRETKEY, pair.secretKey.bytes, "curve secret key")
        try setBytes(ZMQ_ZAP_DOMAIN, Array("alphaedit".utf8), "zap domain")
    }

    /// Must precede connect.
    public func secure(_ security: ClientSecurity) throws {
        guard case let .curve(pair, server) = security else { return }
        guard Curve.available else { throw CurveError.unavailable }
        try setBytes(ZMQ_CURVE_SERVERKEY, server.bytes, "curve server key")
        try setBytes(ZMQ_CURVE_PUBLICKEY, pair.publicKey.bytes, "curve public key")
        try setBytes(ZMQ_CURVE_SECRETKEY, pair.secretKey.bytes, "curve secret key")
    }

    /// A PAIR socket receiving this socket's handshake and connection events (read them with
    /// `SocketEvent(frames:)`). Used by the thread that owns this socket.
    public func monitor(name: String) throws -> ZMQSocket {
        let address = "inproc://monitor-\(name)-\(UInt32.random(in: 0...UInt32.max))"
        let events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
            | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
        guard zmq_socket_monitor(try socket("monitor"), address, events) == 0 else { throw ZMQError.last("socket monitor") }
        let pair = try ZMQSocket(context, .pair)
        try pair.connect(address)
        return pair
    }
}

/// One event of a socket monitor.
public struct SocketEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case handshakeSucceeded
        /// The ZAP handler answered this status (400: the key is not authorised).
        case authRejected(status: UInt32)
        /// The peer speaks another security mechanism (CURVE against plaintext).
        case mechanismMismatch
        /// CURVE's cryptography failed: on a worker, the coordinator does not hold the pinned key.
        case cryptographic
        case protocolError(UInt32)
        case failedNoDetail
        case other(UInt16)
    }

    public let kind: Kind
    public let endpoint: String

    public init?(frames: [[UInt8]]) {
        guard frames.count == 2, frames[0].count == 6 else { return nil }
        let f = frames[0]
        let event = UInt16(f[0]) | UInt16(f[1]) << 8
        let value = UInt32(f[2]) | UInt32(f[3]) << 8 | UInt32(f[4]) << 16 | UInt32(f[5]) << 24
        endpoint = String(decoding: frames[1], as: UTF8.self)
        switch Int32(event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: kind = .handshakeSucceeded
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: kind = .authRejected(status: value)
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: kind = .failedNoDetail
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            switch Int32(bitPattern: value) {
            case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: kind = .mechanismMismatch
            case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: kind = .cryptographic
            default: kind = .protocolError(value)
            }
        default: kind = .other(event)
        }
    }

    /// A failed handshake's cause in words, or nil for an event that is not a failure.
    public var failure: String? {
        switch kind {
        case .handshakeSucceeded, .other: nil
        case .authRejected(let s): "the key was refused by the coordinator's authenticator (ZAP status \(s))"
        case .mechanismMismatch: "the peers disagree on security: one side uses CURVE, the other plaintext"
        case .cryptographic: "CURVE cryptography failed: the coordinator does not hold the key the worker pins, or the keys are not a pair"
        case .protocolError(let c): "protocol error 0x\(String(c, radix: 16)) in the handshake"
        case .failedNoDetail: "the handshake failed (connection closed during it)"
        }
    }
}

/// The coordinator's authenticator: admits a CURVE client whose public key is in `authorized`, refuses
/// every other with a reason, and reports each decision (the caller logs it). Bind it before the
/// secured socket binds: libzmq admits every key when no handler is bound.
public final class ZAPHandler: @unchecked Sendable {  // `stopping` only under `lock`
    public struct Decision: Sendable {
        public let allowed: Bool
        /// The peer's IP address as libzmq gives it.
        public let address: String
        public let key: String
        public let label: String?
        public let reason: String
    }

    private let lock = NSLock()
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)

    public init(context: ZMQContext, authorized: AuthorizedKeys, onDecision: @escaping @Sendable (Decision) -> Void) throws {
        let rep = try ZMQSocket(context, .rep)
        try rep.bind("inproc://zeromq.zap.01")
        nonisolated(unsafe) let socket = rep  // moved: the handler thread is its only user from here on
        let t = Thread { [self] in
            while !lock.withLock({ stopping }) {
                do {
                    guard let request = try socket.receive(timeoutMs: 100) else { continue }
                    let (reply, decision) = Self.answer(request, authorized)
                    try socket.send(reply)
                    if let decision { onDecision(decision) }
                } catch {
                    onDecision(Decision(allowed: false, address: "?", key: "?", label: nil, reason: "ZAP handler: \(error)"))
                }
            }
            socket.close()
            done.signal()
        }
        t.start()
    }

    /// The reply frames to a ZAP request (RFC 27) and the decision to report.
    public static func answer(_ f: [[UInt8]], _ authorized: AuthorizedKeys) -> ([[UInt8]], Decision?) {
        func reply(_ id: [UInt8], _ code: String, _ text: String, user: String = "") -> [[UInt8]] {
            [Array("1.0".utf8), id, Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
        }
        guard f.count >= 6, f[0] == Array("1.0".utf8) else {
            return (reply(f.count > 1 ? f[1] : [], "500", "malformed ZAP request"), nil)
        }
        let address = String(decoding: f[3], as: UTF8.self), mechanism = String(decoding: f[5], as: UTF8.self)
        guard mechanism == "CURVE", f.count == 7, f[6].count == 32 else {
            let why = "mechanism \(mechanism) is not CURVE"
            return (reply(f[1], "400", why), Decision(allowed: false, address: address, key: "-", label: nil, reason: why))
        }
        let key = CurveKey(bytes: f[6])
        if let label = authorized.label(of: key) {
            return (reply(f[1], "200", "OK", user: label),
                    Decision(allowed: true, address: address, key: key.z85, label: label, reason: "key in authorized_keys"))
        }
        let why = "public key \(key.z85) is not in authorized_keys"
        return (reply(f[1], "400", why), Decision(allowed: false, address: address, key: key.z85, label: nil, reason: why))
    }

    public func stop() {
        let first: Bool = lock.withLock { defer { stopping = true }; return !stopping }
        if first { done.wait() }
    }

    deinit { stop() }
}
