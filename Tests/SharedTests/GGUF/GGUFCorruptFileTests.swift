// One corrupt file per failure mode of the GGUF reader, each pinned to its exact GGUFError (field and
// offset) and to a description that names the field; then a truncation sweep. Offsets: the header is
// 24 bytes, so the first key or tensor name "k"/"t" has its length at 24 and its byte at 32.
import Foundation
import XCTest
import Shared

final class GGUFCorruptFileTests: XCTestCase {
    private func file(tensors: UInt64 = 0, kvs: UInt64 = 0, _ body: (inout RawGGUF) -> Void) -> [UInt8] {
        var r = RawGGUF()
        r.header(tensors: tensors, kvs: kvs)
        body(&r)
        return r.bytes
    }

    /// One tensor "t" (its info: n_dims at 33, dims at 37, then type and offset), data at 64 + `data` bytes.
    private func oneTensor(dims: [UInt64], type: UInt32 = 0, offset: UInt64 = 0, data: Int = 256) -> [UInt8] {
        file(tensors: 1) { r in
            r.tensorInfo("t", dims: dims, type: type, offset: offset)
            r.pad(to: 32)
            r.zeros(data)
        }
    }

    // MARK: - header

    func testHeaderErrors() {
        assertGGUFError([], .truncated(field: "magic", offset: 0, needed: 4, fileSize: 0), mentions: "magic")
        var r = RawGGUF()
        r.header(magic: 0x4C4D_4747, tensors: 0, kvs: 0)  // "GGML"
        assertGGUFError(r.bytes, .badMagic(found: 0x4C4D_4747), mentions: "magic")
        for v: UInt32 in [1, 4, .max] {
            var r = RawGGUF()
            r.header(version: v, tensors: 0, kvs: 0)
            assertGGUFError(r.bytes, .unsupportedVersion(v), mentions: "version \(v)")
        }
        assertGGUFError(Array(file { _ in }.prefix(12)), .truncated(field: "tensor_count", offset: 8, needed: 8, fileSize: 12), mentions: "tensor_count")
        assertGGUFError(file(tensors: 1 << 40) { _ in }, .countBeyondFile(field: "tensor_count", value: 1 << 40, offset: 8, fileSize: 24), mentions: "truncated")
        assertGGUFError(file(kvs: .max) { _ in }, .countBeyondFile(field: "metadata_kv_count", value: .max, offset: 16, fileSize: 24), mentions: "metadata_kv_count")
    }

    func testMissingAndNonRegularFilesCannotBeOpened() {
        for path in ["/nonexistent/\(UUID().uuidString).gguf", NSTemporaryDirectory()] {
            XCTAssertThrowsError(try GGUFFile(path: path)) {
                guard case .cannotOpen(path: path, _)? = $0 as? GGUFError else { return XCTFail("\($0)") }
            }
        }
    }

    // MARK: - metadata

    func testMetadataErrors() {
        assertGGUFError(file(kvs: 1) { r in r.u64(1000); r.bytes += Array("abc".utf8) },
                        .truncated(field: "metadata[0].key", offset: 32, needed: 1000, fileSize: 35), mentions: "metadata[0].key")
        assertGGUFError(file(kvs: 1) { r in r.strBytes([0x66, 0xFF]); r.u32(4); r.u32(0) },
                        .invalidUTF8(field: "metadata[0].key", offset: 32), mentions: "metadata[0].key")
        assertGGUFError(file(kvs: 1) { r in r.str("k"); r.u32(8); r.strBytes([0x61, 0xC3]) },
                        .invalidUTF8(field: "metadata k", offset: 45), mentions: "metadata k")
        assertGGUFError(file(kvs: 1) { r in r.str("k"); r.u32(13); r.u64(0) },
                        .unknownValueType(raw: 13, key: "k", offset: 33), mentions: "k")
        assertGGUFError(file(kvs: 1) { r in r.str("k"); r.u32(9); r.u32(77); r.u64(0) },
                        .unknownValueType(raw: 77, key: "k", offset: 37), mentions: "k")
        assertGGUFError(file(kvs: 1) { r in r.str("k"); r.u32(7); r.u8(2) },
                        .absurdCount(field: "metadata k bool", value: 2, offset: 37), mentions: "metadata k bool")
        assertGGUFError(file(kvs: 1) { r in r.str("k"); r.u32(9); r.u32(0); r.u64(1 << 50); r.zeros(16) },
                        .countBeyondFile(field: "metadata k array count", value: 1 << 50, offset: 41, fileSize: 65), mentions: "metadata k array count")
        // Counts are bounded by the element type's smallest encoding: 10 strings need at least 80 bytes.
        assertGGUFError(file(kvs: 1) { r in r.str("k"); r.u32(9); r.u32(8); r.u64(10); r.zeros(40) },
                        .countBeyondFile(field: "metadata k array count", value: 10, offset: 41, fileSize: 89), mentions: "metadata k array count")
        assertGGUFError(file(kvs: 1) { r in
            r.str("k"); r.u32(9)
            for _ in 0..<4 { r.u32(9); r.u64(1) }  // four nested arrays: element types at 37, 49, 61, 73
            r.u32(9); r.zeros(16)
        }, .absurdCount(field: "metadata k array nesting", value: 4, offset: 85), mentions: "metadata k array nesting")
        assertGGUFError(file(kvs: 1) { r in r.str("k"); r.u32(4) },
                        .truncated(field: "metadata k", offset: 37, needed: 4, fileSize: 37), mentions: "metadata k")
        assertGGUFError(file(kvs: 2) { r in r.kvU32("k", 1); r.kvU32("k", 2) }, .duplicateKey("k"), mentions: "k")
    }

    func testBadAlignmentValues() {
        for (value, reported) in [(GGUFValue.uint32(0), UInt64(0)), (.uint32(3), 3), (.uint32(48), 48), (.uint32(131_072), 131_072),
                                  (.int32(-32), 0), (.string("32"), 0)] {
            var r = RawGGUF()
            r.header(tensors: 0, kvs: 1)
            r.str(GGUFNames.alignment); r.u32(value.type.rawValue)
            switch value {
            case .uint32(let v): r.u32(v)
            case .int32(let v): r.u32(UInt32(bitPattern: v))
            case .string(let s): r.str(s)
            default: XCTFail("unexpected \(value)")
            }
            assertGGUFError(r.bytes, .badAlignment(reported), mentions: GGUFNames.alignment)
        }
    }

    // MARK: - tensor infos

    func testTensorInfoErrors() {
        assertGGUFError(oneTensor(dims: [32], type: 99), .unknownTensorType(raw: 99, tensor: "t", offset: 45), mentions: "t")
        assertGGUFError(oneTensor(dims: []), .absurdCount(field: "tensor t n_dims", value: 0, offset: 33), mentions: "tensor t n_dims")
        assertGGUFError(oneTensor(dims: [32, 1, 1, 1, 1]), .absurdCount(field: "tensor t n_dims", value: 5, offset: 33), mentions: "tensor t n_dims")
        assertGGUFError(oneTensor(dims: [32, 0]), .absurdCount(field: "tensor t dims[1]", value: 0, offset: 45), mentions: "tensor t dims[1]")
        assertGGUFError(oneTensor(dims: [1 << 40]), .absurdCount(field: "tensor t dims[0]", value: 1 << 40, offset: 37), mentions: "tensor t dims[0]")
        assertGGUFError(oneTensor(dims: [1 << 30, 1 << 30]), .badShape(tensor: "t", detail: "element count overflows"), mentions: "t")
        assertGGUFError(oneTensor(dims: [33], type: GGMLType.q8_0.rawValue),
                        .badShape(tensor: "t", detail: "row length 33 is not a multiple of the Q8_0 block size 32"), mentions: "row length 33")
        assertGGUFError(oneTensor(dims: [32], offset: 4), .misalignedTensor(tensor: "t", offset: 4, alignment: 32), mentions: "t offset 4")
        assertGGUFError(oneTensor(dims: [32], offset: 1 << 40), .absurdCount(field: "tensor t offset", value: 1 << 40, offset: 49), mentions: "tensor t offset")
        assertGGUFError(oneTensor(dims: [32], data: 10), .tensorOutOfBounds(tensor: "t", start: 64, end: 192, fileSize: 74), mentions: "t data [64, 192)")
        assertGGUFError(oneTensor(dims: [32], offset: 224), .tensorOutOfBounds(tensor: "t", start: 288, end: 416, fileSize: 320), mentions: "t data")
        assertGGUFError(file(tensors: 2) { r in
            r.tensorInfo("t", dims: [32], type: 0, offset: 0)
            r.tensorInfo("t", dims: [32], type: 0, offset: 128)
            r.pad(to: 32); r.zeros(256)
        }, .duplicateTensor("t"), mentions: "t")
        assertGGUFError(file(tensors: 1) { r in r.u64(100); r.bytes += Array("ab".utf8) + [UInt8](repeating: 0, count: 21) },
                        .truncated(field: "tensor[0].name", offset: 32, needed: 100, fileSize: 55), mentions: "tensor[0].name")
    }

    /// A file that ends exactly at its last tensor's data: every shorter prefix must throw a GGUFError
    /// that says "truncated" (issue 15 §6: counts bounded by the file size said "absurd value").
    func testEveryTruncationThrows() throws {
        var w = GGUFWriter()
        try w.set("general.architecture", .string("llama"))
        try w.set("names", .array(.string, [.string("a"), .string("Ġb")]))
        try w.set("nested", .array(.array, [.array(.uint16, [.uint16(1), .uint16(2)])]))
        try w.set("eps", .float32(1e-5))
        try w.add(tensor: "q", dims: [32], floats: (0..<32).map { Float($0) / 7 }, as: .q8_0)
        try w.add(tensor: "f", dims: [8, 2], floats: (0..<16).map(Float.init))
        let full = w.bytes()
        XCTAssertEqual(full.count % 32, 0)
        let f = try GGUFFile(bytes: full)
        XCTAssertEqual(f.dataOffset + (try XCTUnwrap(f.tensorInfo("f"))).offset + 64, full.count, "no trailing padding")
        var untyped = 0, parsed: [Int] = [], unclear: [String] = []
        for n in 0..<full.count {
            do { _ = try GGUFFile(bytes: Array(full.prefix(n))); parsed.append(n) } catch let e as GGUFError {
                if !"\(e)".contains("truncated") { unclear.append("\(n) bytes: \(e)") }
            } catch { untyped += 1 }
        }
        XCTAssertEqual(parsed, [], "prefixes that parsed")
        XCTAssertEqual(unclear, [], "prefixes whose error does not say truncated")
        XCTAssertEqual(untyped, 0, "prefixes that threw something other than GGUFError")
    }

    /// Seeded random byte corruptions: each file parses or throws a GGUFError, and never traps
    /// (run the debug build to have Swift's bounds and overflow checks on).
    func testRandomCorruptionsNeverTrap() throws {
        var w = GGUFWriter()
        try w.set("a", .array(.array, [.array(.string, [.string("x")]), .array(.int64, [.int64(-1)])]))
        try w.set("b", .string("héllo"))
        try w.set(GGUFNames.alignment, .uint32(16))
        try w.add(tensor: "q", dims: [32, 2], floats: (0..<64).map { Float($0) }, as: .q4_1)
        try w.add(tensor: "f", dims: [3], floats: [1, 2, 3])
        let valid = w.bytes()
        var rng = SplitMix64(seed: 99)
        var outcomes = (parsed: 0, threw: 0)
        for _ in 0..<3000 {
            var b = valid
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let i = Int(rng.next() % UInt64(b.count))
                // Small values, 0xFF runs and bit flips reach the interesting branches of length and type fields.
                switch rng.next() % 3 {
                case 0: b[i] = UInt8(truncatingIfNeeded: rng.next() % 16)
                case 1: b[i] = 0xFF
                default: b[i] ^= UInt8(1) << UInt8(rng.next() % 8)
                }
            }
            do {
                let f = try GGUFFile(bytes: b)
                for t in f.tensors where t.type.canDequantize { _ = try f.floats(t) }
                outcomes.parsed += 1
            } catch is GGUFError { outcomes.threw += 1 }
        }
        XCTAssertGreaterThan(outcomes.threw, 1000, "\(outcomes)")
        XCTAssertGreaterThan(outcomes.parsed, 100, "\(outcomes)")
    }
}
