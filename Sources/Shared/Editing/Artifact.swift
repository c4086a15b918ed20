// The binary container shared by the edit-math artifacts (key statistics, null-space projectors,
// sequential state). They are computed once per model and layer set and reused for days, by other
// processes, so a file must say what it is, which layout it uses, and prove it is intact:
//
//   offset  size  field
//        0     8  magic, ASCII, names the artifact kind (e.g. "AEKSTATS")
//        8     4  format version (UInt32)
//       12     4  reserved, zero (keeps the 8-byte fields aligned)
//       16     8  total file length in bytes, checksum included (UInt64) → truncation is named as such
//       24     …  kind-specific body: UInt32 / UInt64 / Int64 / Float64 fields and Float64 arrays
//   len − 8    8  FNV-1a-64 of bytes [0, len − 8) (UInt64)
//
// All integers and floats little-endian. FNV-1a-64 (offset basis 0xcbf29ce484222325, prime
// 0x100000001b3) rather than SHA-256: it guards against corruption, not against an adversary, and any
// single changed byte always changes it (each step is a bijection of the state); SwiftPM has no
// crypto dependency here. Readers check, in order: magic, version, length, checksum, then every field
// read is bounds-checked, so a bad file is a typed error, never a crash.
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model
import Foundation

public enum ArtifactError: Error, Equatable, Sendable, CustomStringConvertible {
    case io(path: String, reason: String)
    case badMagic(path: String, expected: String, found: String)
    case unsupportedVersion(path: String, found: UInt32, supported: UInt32)
    case truncated(path: String, expectedBytes: Int, actualBytes: Int)
    case trailingBytes(path: String, expectedBytes: Int, actualBytes: Int)
    case checksumMismatch(path: String, stored: UInt64, computed: UInt64)
    case malformed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .io(path, reason): return "\(path): \(reason)"
        case let .badMagic(path, expected, found): return "\(path): not a \(expected) file (magic \(found))"
        case let .unsupportedVersion(path, found, supported):
            return "\(path): format version \(found) is not supported (this build reads \(supported))"
        case let .truncated(path, expected, actual):
            return "\(path): truncated, \(actual) of \(expected) bytes"
        case let .trailingBytes(path, expected, actual):
            return "\(path): \(actual - expected) unexpected bytes after the declared end (\(expected) bytes)"
        case let .checksumMismatch(path, stored, computed):
            return "\(path): checksum mismatch (stored \(String(stored, radix: 16)), computed \(String(computed, radix: 16)))"
        case let .malformed(path, reason): return "\(path): malformed: \(reason)"
        }
    }
}

/// FNV-1a, 64 bits (see the file comment for why this hash).
public enum FNV1a64 {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let prime: UInt64 = 0x0000_0100_0000_01b3

    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = offsetBasis) -> UInt64 {
        var h = seed
        for b in bytes { h = (h ^ UInt64(b)) &* prime }
        return h
    }
}

enum ArtifactLayout {
    static let headerBytes = 24
    static let checksumBytes = 8
}

/// Builds an artifact in memory, then writes it atomically (temporary file + rename), so a reader
/// never sees half a file under the final name.
public struct ArtifactWriter {
    private(set) var bytes: [UInt8] = []

    /// `bodyBytes`: the body's size where known, so the whole artifact is allocated once (a K0 shard's
    /// triangles are hundreds of MB: growing the buffer layer by layer copied them and held both copies).
    init(magic: String, version: UInt32, bodyBytes: Int? = nil) {
        var m = Array(magic.utf8.prefix(8))
        while m.count < 8 { m.append(0) }
        bytes.reserveCapacity(ArtifactLayout.headerBytes + (bodyBytes ?? (1 << 16)) + ArtifactLayout.checksumBytes)
        bytes += m
        u32(version)
        u32(0)
        u64(0)  // total length, patched by `finish`
    }

    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func i64(_ v: Int) { u64(UInt64(bitPattern: Int64(v))) }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }

    /// Room for `extra` more bytes, growing geometrically: an exact `reserveCapacity` per call would copy
    /// the whole buffer on every call.
    private mutating func reserve(_ extra: Int) {
        let needed = bytes.count + extra
        if bytes.capacity < needed { bytes.reserveCapacity(max(needed, 2 * bytes.capacity)) }
    }

    mutating func f64s<C: Collection>(_ vs: C) where C.Element == Double {
        reserve(8 * vs.count)
        #if _endian(little)
        // Contiguous storage already has the file's byte order: one copy instead of 8-byte appends.
        let done: Bool? = vs.withContiguousStorageIfAvailable { buf in
            bytes += UnsafeRawBufferPointer(buf)
            return true
        }
        if done == true { return }
        #endif
        for v in vs { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
    }

    /// A length-prefixed UTF-8 string.
    mutating func string(_ s: String) {
        let u = Array(s.utf8)
        i64(u.count)
        bytes += u
    }

    /// The upper triangle (j ≥ i) of an n×n row-major matrix, row by row: n(n+1)/2 values. Symmetric
    /// matrices are stored this way (half the bytes; the lower triangle carries no information).
    mutating func upperTriangle(_ m: [Double], n: Int) {
        reserve(4 * n * (n + 1))
        for i in 0..<n { f64s(m[(i * n + i)..<(i * n + n)]) }
    }

    /// Patches the length and appends the checksum: the finished artifact's bytes.
    mutating func finish() -> [UInt8] {
        let total = UInt64(bytes.count + ArtifactLayout.checksumBytes)
        withUnsafeBytes(of: total.littleEndian) { raw in
            for i in 0..<8 { bytes[16 + i] = raw[i] }
        }
        let sum = bytes.withUnsafeBytes { FNV1a64.hash($0) }
        u64(sum)
        return bytes
    }

    /// Finishes and writes the file.
    mutating func finish(to path: String) throws {
        let out = finish()
        do {
            try FileIO.writeAtomically(out, to: path)  // not Data.write: it garbled files past 2 GiB (FileIO.swift)
        } catch {
            throw ArtifactError.io(path: path, reason: "cannot write: \(error)")
        }
    }
}

/// Reads and validates an artifact; every field read is bounds-checked against the body.
public struct ArtifactReader {
    let path: String
    let version: UInt32
    private let bytes: [UInt8]
    private var offset = ArtifactLayout.headerBytes
    private let end: Int

    init(path: String, magic: String, supportedVersion: UInt32) throws {
        let data: [UInt8]
        do { data = try FileIO.read(path) } catch {
            throw ArtifactError.io(path: path, reason: "cannot read: \(error)")
        }
        try self.init(bytes: data, path: path, magic: magic, supportedVersion: supportedVersion)
    }

    init(bytes: [UInt8], path: String, magic: String, supportedVersion: UInt32) throws {
        self.path = path
        self.bytes = bytes
        version = try Self.checkHeader(Array(bytes.prefix(ArtifactLayout.headerBytes)), size: bytes.count, path: path,
                                       magic: magic, supportedVersion: supportedVersion)
        end = bytes.count - ArtifactLayout.checksumBytes
        let stored = Self.readU64(bytes, at: end)
        let computed = bytes.withUnsafeBytes { FNV1a64.hash(UnsafeRawBufferPointer(rebasing: $0[0..<end])) }
        guard stored == computed else {
            throw ArtifactError.checksumMismatch(path: path, stored: stored, computed: computed)
        }
    }

    /// The header checks, in order: magic, the minimum length, version, the declared length against the
    /// file's `size` (`head`: its first `ArtifactLayout.headerBytes` bytes, or all of a shorter file).
    /// Returns the version. Also NullSpaceProjectorFile's, which reads a file in parts.
    static func checkHeader(_ head: [UInt8], size: Int, path: String, magic: String, supportedVersion: UInt32) throws -> UInt32 {
        var expectedMagic = Array(magic.utf8.prefix(8))
        while expectedMagic.count < 8 { expectedMagic.append(0) }
        let found = Array(head.prefix(8))
        guard found == expectedMagic else {
            let shown = String(decoding: found.map { (32...126).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
            throw ArtifactError.badMagic(path: path, expected: magic, found: shown)
        }
        let minimum = ArtifactLayout.headerBytes + ArtifactLayout.checksumBytes
        guard size >= minimum else {
            throw ArtifactError.truncated(path: path, expectedBytes: minimum, actualBytes: size)
        }
        let version = readU32(head, at: 8)
        guard version == supportedVersion else {
            throw ArtifactError.unsupportedVersion(path: path, found: version, supported: supportedVersion)
        }
        let declared = readU64(head, at: 16)
        guard declared <= UInt64(Int.max), Int(declared) >= minimum else {
            throw ArtifactError.malformed(path: path, reason: "declared length \(declared) is impossible")
        }
        if Int(declared) > size {
            throw ArtifactError.truncated(path: path, expectedBytes: Int(declared), actualBytes: size)
        }
        if Int(declared) < size {
            throw ArtifactError.trailingBytes(path: path, expectedBytes: Int(declared), actualBytes: size)
        }
        return version
    }

    static func readU32(_ b: [UInt8], at o: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(b[o + i]) << (8 * UInt32(i)) }
        return v
    }

    static func readU64(_ b: [UInt8], at o: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(b[o + i]) << (8 * UInt64(i)) }
        return v
    }

    private mutating func take(_ n: Int, _ what: String) throws -> Int {
        guard n >= 0, offset <= end, n <= end - offset else {
            throw ArtifactError.malformed(path: path, reason: "\(what) runs past the end of the body")
        }
        defer { offset += n }
        return offset
    }

    mutating func u32(_ what: String) throws -> UInt32 { Self.readU32(bytes, at: try take(4, what)) }
    mutating func u64(_ what: String) throws -> UInt64 { Self.readU64(bytes, at: try take(8, what)) }
    mutating func f64(_ what: String) throws -> Double { Double(bitPattern: try u64(what)) }

    /// A non-negative count or index, at most `limit` (guards allocations sized by file contents).
    mutating func count(_ what: String, limit: Int) throws -> Int {
        let v = Int64(bitPattern: try u64(what))
        guard v >= 0, v <= Int64(limit) else {
            throw ArtifactError.malformed(path: path, reason: "\(what) = \(v) is out of range 0...\(limit)")
        }
        return Int(v)
    }

    /// Before allocating for `matrices` packed n×n triangles: the body must still hold their values, so
    /// a file that declares a huge shape fails here instead of allocating for it (found by fuzzing).
    func expectTriangles(_ matrices: Int, n: Int, _ what: String) throws {
        let (perMatrix, o1) = (n * (n + 1) / 2).multipliedReportingOverflow(by: 8)
        let (needed, o2) = perMatrix.multipliedReportingOverflow(by: matrices)
        guard !o1, !o2, needed <= end - offset else {
            throw ArtifactError.malformed(path: path, reason: "\(what): \(matrices) matrices of \(n)×\(n) run past the end of the body")
        }
    }

    mutating func f64s(_ n: Int, _ what: String) throws -> [Double] {
        guard n >= 0, n <= (end - offset) / 8 else {
            throw ArtifactError.malformed(path: path, reason: "\(what) (\(n) values) runs past the end of the body")
        }
        let start = try take(8 * n, what)
        return bytes.withUnsafeBytes { raw in
            [Double](unsafeUninitializedCapacity: n) { buf, initialized in
                for i in 0..<n {
                    let bits = raw.loadUnaligned(fromByteOffset: start + 8 * i, as: UInt64.self)
                    buf[i] = Double(bitPattern: UInt64(littleEndian: bits))
                }
                initialized = n
            }
        }
    }

    /// Reads what `ArtifactWriter.upperTriangle` wrote into an n×n row-major matrix: the full
    /// symmetric matrix when `mirror`, else the upper triangle with zeros below the diagonal.
    /// Adds a packed n×n upper triangle (row by row) into the upper triangle of a row-major n×n buffer.
    mutating func addPackedUpper(n: Int, into m: UnsafeMutablePointer<Double>, _ what: String) throws {
        let count = n * (n + 1) / 2
        guard count <= (end - offset) / 8 else {
            throw ArtifactError.malformed(path: path, reason: "\(what) (\(count) values) runs past the end of the body")
        }
        let start = try take(8 * count, what)
        bytes.withUnsafeBytes { raw in
            var p = start
            for i in 0..<n {
                for j in i..<n {
                    m[i * n + j] += Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt64.self)))
                    p += 8
                }
            }
        }
    }

    /// The body ends exactly `bytes` after this point (checked before any of them is used).
    func expectEnd(after bytes: Int, _ what: String) throws {
        guard bytes == end - offset else {
            throw ArtifactError.malformed(path: path, reason: "\(what): \(end - offset) bytes left in the body, \(bytes) expected")
        }
    }

    mutating func squareFromUpper(n: Int, mirror: Bool, _ what: String) throws -> [Double] {
        let packed = try f64s(n * (n + 1) / 2, what)
        var m = [Double](repeating: 0, count: n * n)
        var p = 0
        for i in 0..<n {
            for j in i..<n {
                m[i * n + j] = packed[p]
                if mirror { m[j * n + i] = packed[p] }
                p += 1
            }
        }
        return m
    }

    /// A UTF-8 string written by `ArtifactWriter.string`.
    mutating func string(_ what: String, limit: Int = 1 << 20) throws -> String {
        let n = try count("\(what) length", limit: limit)
        let start = try take(n, what)
        guard let s = String(validating: bytes[start..<(start + n)], as: UTF8.self) else {
            throw ArtifactError.malformed(path: path, reason: "\(what) is not valid UTF-8")
        }
        return s
    }

    /// The body must be consumed exactly: leftover bytes mean writer and reader disagree on the layout.
    func finish() throws {
        guard offset == end else {
            throw ArtifactError.malformed(path: path, reason: "\(end - offset) unread bytes in the body")
        }
    }

    func fail(_ reason: String) -> ArtifactError { .malformed(path: path, reason: reason) }
}

/// A value stored as an artifact: it writes and parses its own body; the framing (magic, version,
/// length, checksum) and the atomic file I/O are shared here, once.
public protocol ArtifactCodable {
    static var magic: String { get }
    static var formatVersion: UInt32 { get }
    func encodeBody(into w: inout ArtifactWriter)
    static func decodeBody(_ r: inout ArtifactReader) throws -> Self
    /// The body's size in bytes where it is cheap to know (nil: unknown), so the writer allocates once.
    var artifactBodyBytes: Int? { get }
}

extension ArtifactCodable {
    public var artifactBodyBytes: Int? { nil }

    private func makeWriter() -> ArtifactWriter {
        var w = ArtifactWriter(magic: Self.magic, version: Self.formatVersion, bodyBytes: artifactBodyBytes)
        encodeBody(into: &w)
        return w
    }

    /// Writes the artifact atomically (temporary file + rename).
    public func write(to path: String) throws {
        var w = makeWriter()
        try w.finish(to: path)
    }

    /// The artifact's bytes (for sending a result over the wire).
    public func serialized() -> [UInt8] {
        var w = makeWriter()
        return w.finish()
    }

    public static func read(from path: String) throws -> Self {
        var r = try ArtifactReader(path: path, magic: magic, supportedVersion: formatVersion)
        return try decodeBody(&r)
    }

    /// Parses an artifact held in memory (`path` only names it in errors).
    public static func read(bytes: [UInt8], path: String = "<memory>") throws -> Self {
        var r = try ArtifactReader(bytes: bytes, path: path, magic: magic, supportedVersion: formatVersion)
        return try decodeBody(&r)
    }
}
