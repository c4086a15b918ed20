// Large bytes in acknowledged pieces (Protocol.swift): the sender's window and the receiver's assembly,
// shared by the deltas (coordinator → worker) and by result payloads (worker → coordinator).
import Foundation

/// The sending side of one transfer of `total` bytes: bytes [0, sent) are sent, [0, acked) acknowledged.
public struct PieceWindow: Sendable, Equatable {
    public let total: Int
    public private(set) var sent = 0
    public private(set) var acked = 0

    public init(total: Int) { self.total = total }

    /// The next piece to send, or nil when everything is sent or the window is full; `markSent` once it is.
    public func next(pieceBytes: Int = WireProtocol.pieceBytes, windowPieces: Int = WireProtocol.windowPieces) -> Range<Int>? {
        guard sent < total, sent - acked < windowPieces * pieceBytes else { return nil }
        return sent ..< min(total, sent + pieceBytes)
    }

    public mutating func markSent(_ piece: Range<Int>) {
        precondition(piece.lowerBound == sent && piece.upperBound <= total, "pieces are sent in order")
        sent = piece.upperBound
    }

    /// The receiver holds `offset` bytes; false (nothing changes) when that is more than was sent.
    @discardableResult
    public mutating func acknowledge(_ offset: Int) -> Bool {
        guard offset <= sent else { return false }
        acked = max(acked, offset)
        return true
    }

    public var allAcknowledged: Bool { acked == total }

    /// An acknowledgement of `offset` says the receiver dropped what it held (it rejected a piece): fewer
    /// bytes than it acknowledged before, or 0 once anything was sent (a piece always adds bytes, so no
    /// acknowledgement of a piece says 0). The sender then starts again from byte 0 (`restart`).
    public func saysDropped(_ offset: Int) -> Bool { offset < acked || (offset == 0 && sent > 0) }

    /// A new connection: the receiver holds nothing of it.
    public mutating func restart() { sent = 0; acked = 0 }
}

/// The receiving side: pieces in order, the first at offset 0, each where the last ended, none past `total`.
/// `total` is the peer's word: room for it is reserved at once only when it is at most a quarter of this
/// machine's memory (so a 2.3 GB result does not pass through a 4 GB array grown by doubling); a larger
/// claim gets memory as its bytes arrive.
public struct PieceAssembly: Sendable {
    public let total: Int
    public private(set) var bytes: [UInt8] = []

    public init(total: Int) {
        self.total = total
        if total > 0, UInt64(total) <= ProcessInfo.processInfo.physicalMemory / 4 { bytes.reserveCapacity(total) }
    }

    public var isComplete: Bool { bytes.count == total }

    /// Appends a piece; false (nothing appended) when it does not follow what arrived.
    public mutating func add(offset: Int, total: Int, _ payload: [UInt8]) -> Bool {
        guard total == self.total, offset == bytes.count, payload.count <= total - bytes.count else { return false }
        bytes += payload
        return true
    }

    public var held: String { "\(bytes.count) of \(total) bytes" }
}
