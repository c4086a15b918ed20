// Helpers of the GGUF tests: a hand serializer for crafting valid and corrupt files byte by byte
// (independent of GGUFWriter), hex decoding for the Python fixture, and paths to the repo's models.
import Foundation
import XCTest
import Shared

/// GGUF bytes written field by field, so a test can put any value in any field.
struct RawGGUF {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func str(_ s: String) { strBytes(Array(s.utf8)) }
    mutating func strBytes(_ b: [UInt8]) { u64(UInt64(b.count)); bytes += b }
    mutating func zeros(_ n: Int) { bytes += [UInt8](repeating: 0, count: n) }
    mutating func pad(to a: Int) { zeros((a - bytes.count % a) % a) }

    mutating func header(magic: UInt32 = 0x4655_4747, version: UInt32 = 3, tensors: UInt64, kvs: UInt64) {
        u32(magic); u32(version); u64(tensors); u64(kvs)
    }

    mutating func kvU32(_ key: String, _ v: UInt32) { str(key); u32(GGUFValueType.uint32.rawValue); u32(v) }
    mutating func kvString(_ key: String, _ v: String) { str(key); u32(GGUFValueType.string.rawValue); str(v) }

    mutating func tensorInfo(_ name: String, dims: [UInt64], type: UInt32, offset: UInt64) {
        str(name); u32(UInt32(dims.count)); dims.forEach { u64($0) }; u32(type); u64(offset)
    }
}

enum Hex {
    static func bytes(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count / 2)
        var hi: UInt8?
        for c in s.utf8 {
            let v: UInt8 = c <= 57 ? c - 48 : (c | 0x20) - 87
            if let h = hi { out.append(h << 4 | v); hi = nil } else { hi = v }
        }
        return out
    }

    /// Little-endian float32 bit patterns.
    static func floats(_ s: String) -> [Float] {
        let b = bytes(s)
        return stride(from: 0, to: b.count, by: 4).map { i in
            Float(bitPattern: UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24)
        }
    }
}

enum TestPaths {
    /// Tests/SharedTests/<file> → repository root.
    static let repoRoot = RepoPaths.repo
    /// The test target's own fixtures, declared as resources in Package.swift (copied beside the tests).
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static let smolLM2 = repoRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf")
    static let sharedFixtures = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures")

    static func temporaryFile(_ name: String) -> String {
        FileManager.default.temporaryDirectory
            .appendingPathComponent("gguf-tests-\(getpid())-\(UUID().uuidString)-\(name)").path
    }
}

/// Parses `bytes` and requires exactly `expected`, whose description must mention `mentions`.
func assertGGUFError(_ bytes: [UInt8], _ expected: GGUFError, mentions: String,
                     file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try GGUFFile(bytes: bytes)
        XCTFail("parsed a corrupt file; expected \(expected)", file: file, line: line)
    } catch let e as GGUFError {
        XCTAssertEqual(e, expected, file: file, line: line)
        XCTAssertTrue(e.description.contains(mentions), "\"\(e.description)\" does not name \(mentions)", file: file, line: line)
    } catch {
        XCTFail("untyped error \(error)", file: file, line: line)
    }
}

/// Largest |a − b| over two equal-length arrays (infinity when the lengths differ).
func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
