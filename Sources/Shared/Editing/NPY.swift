// A minimal reader of NumPy .npy files (format versions 1–3): little-endian float32 or float64,
// C order, any shape; and a writer of float32 arrays (format 1.0, C order). Enough to load the reference's dumps (fixtures/alphaedit/*.npy) and compare
// them with ours; anything else is a typed error naming what is unsupported.
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model
import Foundation

public enum NPYError: Error, Equatable, Sendable, CustomStringConvertible {
    case io(path: String, reason: String)
    case badMagic(path: String)
    case unsupportedVersion(path: String, major: UInt8)
    case truncated(path: String, expectedBytes: Int, actualBytes: Int)
    case badHeader(path: String, reason: String)
    case unsupported(path: String, what: String)

    public var description: String {
        switch self {
        case let .io(path, reason): return "\(path): \(reason)"
        case let .badMagic(path): return "\(path): not a .npy file"
        case let .unsupportedVersion(path, major): return "\(path): .npy format version \(major) is not supported"
        case let .truncated(path, expected, actual): return "\(path): truncated, \(actual) of \(expected) bytes"
        case let .badHeader(path, reason): return "\(path): bad .npy header: \(reason)"
        case let .unsupported(path, what): return "\(path): unsupported .npy content: \(what)"
        }
    }
}

public enum NPY {
    /// Writes `values` (C order, `shape`'s product of them) as a float32 .npy file (version 1.0), whole or
    /// not at all (AtomicFileWriter).
    public static func writeFloat32(path: String, shape: [Int], values: UnsafeBufferPointer<Float>) throws {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) for \(values.count) values")
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        // The data starts on a multiple of 64 bytes: magic (6), version (2), length (2), header, '\n'.
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        let n = header.utf8.count
        var w = try AtomicFileWriter(path: path)
        do {
            try w.write([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(header.utf8))
            try w.write(UnsafeRawBufferPointer(values))
            try w.commit()
        } catch {
            w.abandon()
            throw error
        }
    }

    /// The array's shape and its values converted to float64, in C order.
    public static func read(path: String) throws -> (shape: [Int], values: [Double]) {
        let bytes: [UInt8]
        do { bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw NPYError.io(path: path, reason: "cannot read: \(error)")
        }
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw NPYError.badMagic(path: path) }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw NPYError.truncated(path: path, expectedBytes: 12, actualBytes: bytes.count) }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw NPYError.unsupportedVersion(path: path, major: major)
        }
        let dataStart = headerStart + headerLength
        guard dataStart <= bytes.count else {
            throw NPYError.truncated(path: path, expectedBytes: dataStart, actualBytes: bytes.count)
        }
        let header = String(decoding: bytes[headerStart..<dataStart], as: UTF8.self)
        let descr = try field("descr", in: header, path: path)
        let width: Int
        switch descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\" ")) {
        case "<f4": width = 4
        case "<f8": width = 8
        case let other: throw NPYError.unsupported(path: path, what: "dtype \(other)")
        }
        guard try field("fortran_order", in: header, path: path).hasPrefix("False") else {
            throw NPYError.unsupported(path: path, what: "Fortran order")
        }
        let shape = try parseShape(try field("shape", in: header, path: path), path: path)
        var count = 1
        for s in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: s)
            guard !overflow else { throw NPYError.badHeader(path: path, reason: "shape \(shape) overflows") }
            count = p
        }
        let needed = dataStart + count * width
        guard count <= (bytes.count - dataStart) / width else {
            throw NPYError.truncated(path: path, expectedBytes: needed, actualBytes: bytes.count)
        }
        let values = bytes.withUnsafeBytes { raw in
            [Double](unsafeUninitializedCapacity: count) { buf, initialized in
                for i in 0..<count {
                    let o = dataStart + i * width
                    buf[i] = width == 4
                        ? Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self))))
                        : Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self)))
                }
                initialized = count
            }
        }
        return (shape, values)
    }

    /// The text after `'key':` up to the next top-level comma or closing brace.
    static func field(_ key: String, in header: String, path: String) throws -> String {
        guard let k = header.range(of: "'\(key)':") else {
            throw NPYError.badHeader(path: path, reason: "no '\(key)'")
        }
        var depth = 0
        var out = ""
        for c in header[k.upperBound...] {
            if c == "(" { depth += 1 }
            if c == ")" { depth -= 1 }
            if depth == 0 && (c == "," || c == "}") { break }
            out.append(c)
        }
        return out.trimmingCharacters(in: .whitespaces)
    }

    static func parseShape(_ text: String, path: String) throws -> [Int] {
        let inner = text.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
        let parts = inner.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return try parts.map { p in
            guard let v = Int(p), v >= 0 else { throw NPYError.badHeader(path: path, reason: "shape \(text)") }
            return v
        }
    }
}
