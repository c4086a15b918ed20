// GGUF writer ↔ reader: block geometry, round trips of every metadata type and tensor encoding,
// seeded random round trips, the file layout against a hand serializer, atomic writes and copies.
import Foundation
import XCTest
import Shared

final class GGUFTests: XCTestCase {
    /// sizeof of the block structs of ggml-common.h (ggml_half = 2 bytes, QK_K = 256, K_SCALE_SIZE = 12).
    func testBlockByteSizesMatchGGMLCommon() {
        let expected: [(GGMLType, elements: Int, bytes: Int)] = [
            (.f32, 1, 4), (.f16, 1, 2), (.bf16, 1, 2),
            (.q4_0, 32, 18),   // block_q4_0: d, qs[16]
            (.q4_1, 32, 20),   // block_q4_1: d, m, qs[16]
            (.q5_0, 32, 22),   // block_q5_0: d, qh[4], qs[16]
            (.q5_1, 32, 24),   // block_q5_1: d, m, qh[4], qs[16]
            (.q8_0, 32, 34),   // block_q8_0: d, qs[32]
            (.q8_1, 32, 36),   // block_q8_1: d, s, qs[32]
            (.q2_K, 256, 84),  // block_q2_K: scales[16], qs[64], d, dmin
            (.q3_K, 256, 110), // block_q3_K: hmask[32], qs[64], scales[12], d
            (.q4_K, 256, 144), // block_q4_K: d, dmin, scales[12], qs[128]
            (.q5_K, 256, 176), // block_q5_K: d, dmin, scales[12], qh[32], qs[128]
            (.q6_K, 256, 210), // block_q6_K: ql[128], qh[64], scales[16], d
            (.q8_K, 256, 292), // block_q8_K: float d, qs[256], bsums[16] (int16)
            (.iq2_xxs, 256, 66),  // block_iq2_xxs: d, qs[32] (uint16)
            (.iq2_xs, 256, 74),   // block_iq2_xs: d, qs[32] (uint16), scales[8]
            (.iq3_xxs, 256, 98),  // block_iq3_xxs: d, qs[96]
            (.iq1_s, 256, 50),    // block_iq1_s: d, qs[32], qh[8] (uint16)
            (.iq4_nl, 32, 18),    // block_iq4_nl: d, qs[16]
            (.iq3_s, 256, 110),   // block_iq3_s: d, qs[64], qh[8], signs[32], scales[4]
            (.iq2_s, 256, 82),    // block_iq2_s: d, qs[64], qh[8], scales[8]
            (.iq4_xs, 256, 136),  // block_iq4_xs: d, scales_h (uint16), scales_l[4], qs[128]
            (.iq1_m, 256, 56),    // block_iq1_m: qs[32], qh[16], scales[8]
            (.tq1_0, 256, 54),    // block_tq1_0: qs[48], qh[4], d
            (.tq2_0, 256, 66),    // block_tq2_0: qs[64], d
            (.mxfp4, 32, 17),     // block_mxfp4: e (E8M0), qs[16]
            (.nvfp4, 64, 36),     // block_nvfp4: d[4] (UE4M3), qs[32]
            (.q1_0, 128, 18),     // block_q1_0: d, qs[16]
            (.i8, 1, 1), (.i16, 1, 2), (.i32, 1, 4), (.i64, 1, 8), (.f64, 1, 8),
        ]
        XCTAssertEqual(expected.count, GGMLType.allCases.count, "every type is listed")
        for (t, n, b) in expected {
            XCTAssertEqual(t.blockSize, n, "\(t) elements per block")
            XCTAssertEqual(t.blockBytes, b, "\(t) bytes per block")
        }
        XCTAssertNil(GGMLType.q8_0.byteCount(elements: 33))
        XCTAssertEqual(GGMLType.q4_1.byteCount(elements: 64), 40)
    }

    // MARK: - metadata

    static let everyValue: [(String, GGUFValue)] = [
        ("u8", .uint8(255)), ("i8", .int8(-128)), ("u16", .uint16(65535)), ("i16", .int16(-32768)),
        ("u32", .uint32(.max)), ("i32", .int32(.min)), ("u64", .uint64(.max)), ("i64", .int64(.min)),
        ("f32", .float32(-1.5e-38)), ("f32.inf", .float32(.infinity)), ("f64", .float64(.pi)),
        ("bool.t", .bool(true)), ("bool.f", .bool(false)),
        ("str", .string("héllo wörld — 世界 🌍 Ġthe")), ("str.empty", .string("")),
        ("arr.str", .array(.string, [.string("a"), .string(""), .string("🌍")])),
        ("arr.i32", .array(.int32, [.int32(1), .int32(-2), .int32(.max)])),
        ("arr.f64", .array(.float64, [.float64(0.1), .float64(-0)])),
        ("arr.bool", .array(.bool, [.bool(true), .bool(false)])),
        ("arr.empty", .array(.uint8, [])),
        ("arr.empty.str", .array(.string, [])),
        ("arr.arr", .array(.array, [.array(.string, [.string("x"), .string("y")]),
                                    .array(.uint64, [.uint64(7)]), .array(.int8, [])])),
        ("arr.arr.arr", .array(.array, [.array(.array, [.array(.float32, [.float32(2.5)])])])),
    ]

    func testEveryMetadataValueTypeRoundTrips() throws {
        var w = GGUFWriter()
        for (k, v) in Self.everyValue { try w.set(k, v) }
        let f = try GGUFFile(bytes: w.bytes())
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.metadataKeys, Self.everyValue.map(\.0), "insertion order is kept")
        for (k, v) in Self.everyValue { XCTAssertEqual(f.metadata[k], v, k) }
        XCTAssertEqual(try f.stringArray("arr.str"), ["a", "", "🌍"])
        XCTAssertEqual(try f.int32Array("arr.i32"), [1, -2, .max])
        XCTAssertEqual(try f.string("str"), "héllo wörld — 世界 🌍 Ġthe")
        XCTAssertEqual(try f.uint32("u32"), .max)
        XCTAssertThrowsError(try f.string("u8")) { XCTAssertEqual($0 as? GGUFError, .wrongValueType(key: "u8", expected: "string", found: "uint8")) }
    }

    func testSetReplacesValueInPlace() throws {
        var w = GGUFWriter()
        try w.set("a", .uint32(1)); try w.set("b", .uint32(2)); try w.set("a", .string("again"))
        let f = try GGUFFile(bytes: w.bytes())
        XCTAssertEqual(f.metadataKeys, ["a", "b"])
        XCTAssertEqual(f.metadata["a"], .string("again"))
    }

    func testWriterRejectsWhatTheReaderWouldReject() {
        var w = GGUFWriter()
        XCTAssertThrowsError(try w.set("mixed", .array(.string, [.string("a"), .uint8(1)]))) {
            XCTAssertEqual($0 as? GGUFError, .wrongValueType(key: "mixed", expected: "array of string", found: "element of uint8"))
        }
        for bad: GGUFValue in [.uint32(0), .uint32(48), .uint32(131_072), .int32(-32), .string("32")] {
            XCTAssertThrowsError(try w.set(GGUFNames.alignment, bad), "\(bad)") { XCTAssertTrue($0 is GGUFError) }
        }
        let shapes: [[Int]] = [[], [32, 1, 1, 1, 1], [32, 0], [33], [-32]]
        for dims in shapes {
            XCTAssertThrowsError(try w.add(tensor: "t", dims: dims, floats: [Float](repeating: 0, count: max(0, dims.reduce(1, *))), as: .q8_0), "\(dims)") {
                guard case .badShape(tensor: "t", _)? = $0 as? GGUFError else { return XCTFail("\($0)") }
            }
        }
        XCTAssertThrowsError(try w.add(tensor: "t", dims: [4], floats: [1, 2, 3])) {
            guard case .badShape(tensor: "t", _)? = $0 as? GGUFError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try w.add(tensor: "t", dims: [32], type: .q8_0, raw: [UInt8](repeating: 0, count: 33))) {
            guard case .badShape(tensor: "t", _)? = $0 as? GGUFError else { return XCTFail("\($0)") }
        }
        XCTAssertNoThrow(try w.add(tensor: "t", dims: [2], floats: [1, 2]))
        XCTAssertThrowsError(try w.add(tensor: "t", dims: [2], floats: [1, 2])) { XCTAssertEqual($0 as? GGUFError, .duplicateTensor("t")) }
    }

    // MARK: - tensors

    func testTensorEncodingsRoundTripWithinTheirPrecision() throws {
        var rng = SplitMix64(seed: 7)
        let x = (0..<(64 * 3)).map { _ in rng.symmetric(1) * (1 + rng.symmetric(4)) }
        var w = GGUFWriter()
        for e in TensorEncoding.allCases { try w.add(tensor: "t.\(e)", dims: [64, 3], floats: x, as: e) }
        let f = try GGUFFile(bytes: w.bytes())
        for e in TensorEncoding.allCases {
            let info = try XCTUnwrap(f.tensorInfo("t.\(e)"))
            XCTAssertEqual(info.dims, [64, 3]); XCTAssertEqual(info.type, e.ggmlType)
            XCTAssertEqual(info.rows, 3); XCTAssertEqual(info.cols, 64)
            let y = try f.floats(info)
            var worst: Float = 0
            for b in 0..<(x.count / 32) {
                let blk = x[(32 * b)..<(32 * b + 32)]
                let lo = blk.min() ?? 0, hi = blk.max() ?? 0, amax = blk.map(abs).max() ?? 0
                for i in blk.indices {
                    let tol: Float
                    switch e {
                    case .f32: tol = 0
                    // Half a step, plus what rounding the scales (and the min) to f16 adds over ±127 or 15 steps.
                    case .f16: tol = max(abs(x[i]) * 0x1p-11, 0x1p-25)
                    case .bf16: tol = abs(x[i]) * 0x1p-8
                    case .q8_0: let d = amax / 127; tol = 0.5 * d + 127 * d * 0x1p-11 + amax * 1e-6
                    case .q4_1: let d = (hi - lo) / 15; tol = 0.5 * d + 15 * d * 0x1p-11 + abs(lo) * 0x1p-11 + amax * 1e-6
                    }
                    worst = max(worst, abs(y[i] - x[i]) - tol)
                }
            }
            XCTAssertLessThanOrEqual(worst, 0, "\(e): max excess over the quantization step \(worst)")
        }
    }

    func testRawBytesOfEveryTypeRoundTripExactly() throws {
        var rng = SplitMix64(seed: 11)
        var w = GGUFWriter()
        var expected: [String: [UInt8]] = [:]
        for t in GGMLType.allCases {
            let dims = [t.blockSize * 2, 3]
            let raw = (0..<(t.byteCount(elements: dims[0] * dims[1]) ?? 0)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            try w.add(tensor: "raw.\(t)", dims: dims, type: t, raw: raw)
            expected["raw.\(t)"] = raw
        }
        let f = try GGUFFile(bytes: w.bytes())
        for (name, raw) in expected {
            let info = try XCTUnwrap(f.tensorInfo(name))
            XCTAssertEqual(Array(f.rawBytes(info)), raw, name)
        }
    }

    /// Random keys, values, shapes, encodings and alignments (seeded): what is written is read back.
    func testRandomizedRoundTrips() throws {
        var rng = SplitMix64(seed: 2024)
        for round in 0..<60 {
            var w = GGUFWriter()
            var values: [(String, GGUFValue)] = []
            let alignment = 1 << Int(rng.next() % 8)
            if rng.next() % 2 == 0 { try w.set(GGUFNames.alignment, .uint32(UInt32(alignment))); values.append((GGUFNames.alignment, .uint32(UInt32(alignment)))) }
            for i in 0..<Int(rng.next() % 12) {
                let v = RandomValue.make(&rng, depth: 0)
                let key = "k\(i).\(rng.next() % 1000)"
                try w.set(key, v); values.append((key, v))
            }
            var tensors: [(String, [Int], TensorEncoding, [Float])] = []
            for i in 0..<Int(rng.next() % 6) {
                let e = TensorEncoding.allCases[Int(rng.next() % UInt64(TensorEncoding.allCases.count))]
                var dims = [e.ggmlType.blockSize * (1 + Int(rng.next() % 3))]
                for _ in 0..<Int(rng.next() % 4) { dims.append(1 + Int(rng.next() % 3)) }
                let x = (0..<dims.reduce(1, *)).map { _ in rng.symmetric(2) }
                try w.add(tensor: "t\(i)", dims: dims, floats: x, as: e)
                tensors.append(("t\(i)", dims, e, x))
            }
            let f = try GGUFFile(bytes: w.bytes())
            let effective = values.first { $0.0 == GGUFNames.alignment } != nil ? alignment : 32
            XCTAssertEqual(f.alignment, effective, "round \(round)")
            XCTAssertEqual(f.metadataKeys, values.map(\.0), "round \(round)")
            for (k, v) in values { XCTAssertEqual(f.metadata[k], v, "round \(round) key \(k)") }
            XCTAssertEqual(f.tensors.map(\.name), tensors.map(\.0), "round \(round)")
            XCTAssertEqual(f.dataOffset % effective, 0)
            for (name, dims, e, x) in tensors {
                let info = try XCTUnwrap(f.tensorInfo(name))
                XCTAssertEqual(info.dims, dims); XCTAssertEqual(info.type, e.ggmlType)
                XCTAssertEqual(info.offset % effective, 0, "round \(round) \(name) offset")
                XCTAssertEqual(Array(f.rawBytes(info)), Quantize.run(x, as: e), "round \(round) \(name)")
                if e == .f32 { XCTAssertEqual(try f.floats(info), x) }
            }
        }
    }

    // MARK: - layout, files, copies

    /// The writer's bytes equal a file serialized field by field from the GGUF spec.
    func testLayoutMatchesHandSerializedFile() throws {
        var w = GGUFWriter()
        try w.set("general.architecture", .string("llama"))
        try w.set("n", .array(.int32, [.int32(3)]))
        try w.add(tensor: "a", dims: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        try w.add(tensor: "b", dims: [32], floats: [Float](repeating: 0.5, count: 32), as: .q8_0)

        var r = RawGGUF()
        r.header(tensors: 2, kvs: 2)
        r.kvString("general.architecture", "llama")
        r.str("n"); r.u32(GGUFValueType.array.rawValue); r.u32(GGUFValueType.int32.rawValue); r.u64(1); r.u32(3)
        r.tensorInfo("a", dims: [2, 3], type: 0, offset: 0)
        r.tensorInfo("b", dims: [32], type: 8, offset: 32)   // 24 bytes of "a" padded to 32
        r.pad(to: 32)
        for v: Float in [1, 2, 3, 4, 5, 6] { r.u32(v.bitPattern) }
        r.pad(to: 32)
        let d = Float16(Float(0.5) / 127).bitPattern
        r.bytes += [UInt8(d & 0xFF), UInt8(d >> 8)] + [UInt8](repeating: 127, count: 32)  // q = 0.5/d = 127
        r.pad(to: 32)
        XCTAssertEqual(w.bytes(), r.bytes)
    }

    func testWriteIsAtomicAndMatchesBytes() throws {
        var w = GGUFWriter()
        try w.set("k", .string("v"))
        try w.add(tensor: "t", dims: [32, 2], floats: (0..<64).map(Float.init), as: .q4_1)
        let path = TestPaths.temporaryFile("atomic.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try w.write(to: path)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".tmp"))
        XCTAssertEqual(try Array(Data(contentsOf: URL(fileURLWithPath: path))), w.bytes())
        let f = try GGUFFile(path: path)
        XCTAssertEqual(f.tensors.count, 1)
        XCTAssertEqual(f.path, path)

        let bad = "/nonexistent-dir-\(UUID().uuidString)/x.gguf"
        XCTAssertThrowsError(try w.write(to: bad)) {
            guard case .writeFailed(path: bad, _)? = $0 as? GGUFError else { return XCTFail("\($0)") }
            XCTAssertTrue("\($0)".contains(bad))
        }
    }

    func testCopyKeepsEverythingButTheReplacedTensors() throws {
        let original = try SyntheticModel.writer(SyntheticConfig(matrixType: .q4_1)).bytes()
        let source = try GGUFFile(bytes: original)
        XCTAssertEqual(try GGUFWriter.copy(from: source).bytes(), original, "an unchanged copy is byte-identical")

        let target = GGUFNames.ffnDown(1)
        let info = try XCTUnwrap(source.tensorInfo(target))
        let edited = (0..<info.elementCount).map { Float($0) * 1e-3 }
        let copy = try GGUFFile(bytes: GGUFWriter.copy(from: source, replacing: [target: edited]).bytes())
        XCTAssertEqual(copy.metadataKeys, source.metadataKeys)
        for k in source.metadataKeys { XCTAssertEqual(copy.metadata[k], source.metadata[k], k) }
        XCTAssertEqual(copy.tensors.map(\.name), source.tensors.map(\.name))
        for t in source.tensors {
            let c = try XCTUnwrap(copy.tensorInfo(t.name))
            XCTAssertEqual(c.dims, t.dims, t.name)
            if t.name == target {
                XCTAssertEqual(c.type, .f32); XCTAssertEqual(try copy.floats(c), edited)
            } else {
                XCTAssertEqual(c.type, t.type, t.name)
                XCTAssertEqual(Array(copy.rawBytes(c)), Array(source.rawBytes(t)), t.name)
            }
        }
        XCTAssertThrowsError(try GGUFWriter.copy(from: source, replacing: ["nope": [1]])) { XCTAssertEqual($0 as? GGUFError, .missingTensor("nope")) }

        // A copy is never written over the file it copies from (by its path, another spelling or a hard
        // link), nor onto a directory: refused before anything is written, the original intact.
        let dir = TestPaths.temporaryFile("copy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/model.gguf", link = dir + "/link.gguf"
        try Data(original).write(to: URL(fileURLWithPath: path))
        try FileManager.default.linkItem(atPath: path, toPath: link)
        let mapped = try GGUFFile(path: path)
        let w = try GGUFWriter.copy(from: mapped, replacing: [target: edited])
        for out in [path, dir + "/./model.gguf", link, dir] {
            XCTAssertThrowsError(try w.write(to: out), out) {
                guard case .writeFailed(path: out, let reason)? = $0 as? GGUFError else { return XCTFail("\($0)") }
                XCTAssertTrue(reason.contains(out == dir ? "it is a directory" : "the file this one copies its tensors from"), reason)
            }
        }
        // Nor through a symbolic link, nor into a FIFO (whose read for the magic blocked forever): only a
        // regular file is opened or replaced.
        let symlink = dir + "/sym.gguf", fifo = dir + "/fifo"
        try FileManager.default.createSymbolicLink(atPath: symlink, withDestinationPath: dir + "/elsewhere.gguf")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        for (out, kind) in [(symlink, "a symbolic link"), (fifo, "a FIFO (named pipe)")] {
            XCTAssertThrowsError(try w.write(to: out)) { XCTAssertTrue("\($0)".contains("it is \(kind), not a regular file"), "\($0)") }
        }
        XCTAssertEqual(FileIO.nonRegularKind(symlink), "a symbolic link")
        try FileManager.default.removeItem(atPath: symlink)
        try FileManager.default.removeItem(atPath: fifo)
        // Nor over a file that is not a GGUF (a state's database); over an earlier GGUF or an empty file, yes.
        let db = dir + "/state.sqlite"
        try Data("SQLite format 3\0".utf8).write(to: URL(fileURLWithPath: db))
        XCTAssertThrowsError(try w.write(to: db)) { XCTAssertTrue("\($0)".contains("it exists and is not a GGUF file"), "\($0)") }
        XCTAssertEqual(try String(contentsOfFile: db, encoding: .utf8), "SQLite format 3\0")
        XCTAssertEqual(try Array(Data(contentsOf: URL(fileURLWithPath: path))), original)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["link.gguf", "model.gguf", "state.sqlite"], "no .tmp left")
        try Data().write(to: URL(fileURLWithPath: dir + "/edited.gguf"))
        try w.write(to: dir + "/edited.gguf")
        try w.write(to: dir + "/edited.gguf")
        XCTAssertEqual(try GGUFFile(path: dir + "/edited.gguf").floats(try XCTUnwrap(GGUFFile(path: dir + "/edited.gguf").tensorInfo(target))), edited)
        XCTAssertThrowsError(try GGUFWriter.copy(from: source, replacing: [target: [1, 2]])) {
            guard case .badShape(tensor: target, _)? = $0 as? GGUFError else { return XCTFail("\($0)") }
        }
    }
}

/// Random metadata values of every type, nested arrays included (finite floats, so == holds).
enum RandomValue {
    static func make(_ rng: inout SplitMix64, depth: Int) -> GGUFValue {
        let kinds: [GGUFValueType] = [.uint8, .int8, .uint16, .int16, .uint32, .int32, .float32, .bool, .string, .uint64, .int64, .float64]
            + (depth < 3 ? [.array, .array] : [])
        return make(kinds[Int(rng.next() % UInt64(kinds.count))], &rng, depth: depth)
    }

    static func make(_ t: GGUFValueType, _ rng: inout SplitMix64, depth: Int) -> GGUFValue {
        let r = rng.next()
        switch t {
        case .uint8: return .uint8(UInt8(truncatingIfNeeded: r))
        case .int8: return .int8(Int8(truncatingIfNeeded: r))
        case .uint16: return .uint16(UInt16(truncatingIfNeeded: r))
        case .int16: return .int16(Int16(truncatingIfNeeded: r))
        case .uint32: return .uint32(UInt32(truncatingIfNeeded: r))
        case .int32: return .int32(Int32(truncatingIfNeeded: r))
        case .uint64: return .uint64(r)
        case .int64: return .int64(Int64(bitPattern: r))
        case .float32: return .float32(rng.symmetric(1e6))
        case .float64: return .float64(Double(rng.symmetric(1)) * 1e-200)
        case .bool: return .bool(r % 2 == 0)
        case .string:
            let alphabet = Array("aZ09 _.-éß世界🌍Ġ\u{0}\n")
            return .string(String((0..<Int(r % 12)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }))
        case .array:
            let kinds: [GGUFValueType] = [.uint8, .int32, .float32, .bool, .string, .int64] + (depth < 2 ? [.array] : [])
            let elem = kinds[Int(r % UInt64(kinds.count))]
            let n = Int(rng.next() % 6)
            return .array(elem, (0..<n).map { _ in make(elem, &rng, depth: depth + 1) })
        }
    }
}
