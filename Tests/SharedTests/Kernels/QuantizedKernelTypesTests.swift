// The quantized linear kernels of every format (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_K, Q3_K, Q4_K,
// Q5_K, Q6_K, IQ4_XS, the grid-coded IQ2_XXS … IQ1_M, and the unquantized F16 and BF16) and every ISA this
// CPU runs, against `Dequantize.run` + a float64 product: random valid blocks over token counts,
// shapes (odd row counts, inner sizes of several super-blocks), accumulate and thread counts; one-hot
// activations that must read every weight back exactly; and real tensors of the Qwen2.5 Q4_K_M
// model against dequantize + sgemm. QuantizedLinearTests covers the thread pool and the model's use.
import CQuantKernels
import Foundation
import Shared
import XCTest

final class QuantizedKernelTypesTests: XCTestCase {
    static let types: [GGMLType] = [.q4_1, .q8_0, .q5_0, .q4_K, .q6_K, .q4_0, .q5_1, .iq4_nl, .q5_K, .iq4_xs, .q3_K, .q2_K, .f16, .bf16,
                                    .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m, .q1_0]

    /// |y − ref| / Σ|x·w| per output element; float32 sums of ≤ 2560 terms stay far below it.
    static let tolerance = 1e-5

    /// Seeded random blocks of `type`: random quant bytes (every nibble, high-bit pattern, 6-bit scale
    /// and min, int8 scale occurs), finite random f16 super-scales. Q4_1 / Q8_0 as QuantizedLinearTests.
    static func randomMatrix(_ type: GGMLType, rows: Int, cols: Int, seed: UInt64) -> [UInt8] {
        if type == .q4_1 || type == .q8_0 { return QuantizedLinearTests.randomMatrix(type, rows: rows, cols: cols, seed: seed) }
        var rng = SplitMix64(seed: seed)
        if type == .f16 || type == .bf16 {  // unquantized halves, little-endian
            return (0..<(rows * cols)).flatMap { _ -> [UInt8] in
                let v = rng.symmetric(0.05)
                let b = type == .f16 ? Float16(v).bitPattern : UInt16(v.bitPattern >> 16)
                return [UInt8(b & 0xFF), UInt8(b >> 8)]
            }
        }
        let blocks = rows * cols / type.blockSize
        var out = (0..<(blocks * type.blockBytes)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        func f16(_ v: Float, at o: Int) {
            let b = Float16(v).bitPattern
            out[o] = UInt8(b & 0xFF); out[o + 1] = UInt8(b >> 8)
        }
        for b in 0..<blocks {
            let o = b * type.blockBytes
            switch type {
            case .q5_0, .q4_0, .q1_0: f16(rng.symmetric(0.02), at: o)
            case .q5_1: f16(rng.symmetric(0.02), at: o); f16(rng.symmetric(0.3), at: o + 2)
            case .iq4_nl: f16(rng.symmetric(0.002), at: o)
            case .q4_K, .q5_K: f16(rng.symmetric(0.002), at: o); f16(rng.symmetric(0.004), at: o + 2)
            case .q6_K: f16(rng.symmetric(0.0005), at: o + 208)
            case .iq4_xs: f16(rng.symmetric(0.0001), at: o)
            case .q3_K: f16(rng.symmetric(0.002), at: o + 108)
            case .q2_K: f16(rng.symmetric(0.01), at: o + 80); f16(rng.symmetric(0.01), at: o + 82)
            case .iq2_xxs, .iq2_xs, .iq2_s: f16(rng.symmetric(0.0005), at: o)
            case .iq3_xxs, .iq3_s: f16(rng.symmetric(0.0002), at: o)
            case .iq1_s: f16(rng.symmetric(0.005), at: o)
            case .iq1_m:  // d in the top nibbles of the four scale words at 48…55
                let d = Float16(rng.symmetric(0.005)).bitPattern
                for k in 0..<4 { out[o + 49 + 2 * k] = out[o + 49 + 2 * k] & 0x0F | UInt8((d >> UInt16(4 * k)) & 0xF) << 4 }
            default: fatalError("no generator for \(type)")
            }
        }
        return out
    }

    static func dequantized(_ type: GGMLType, _ bytes: [UInt8], count: Int) -> [Float] {
        var w = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { Dequantize.run(type, from: $0, into: &w, count: count) }
        return w
    }

    var isas: [QuantizedLinear.ISA] {
        QuantizedLinear.ISA.allCases.filter { $0.rawValue <= (QuantizedLinear.bestISA?.rawValue ?? 0) }
    }

    func testEveryFormatMatchesDequantizedFloat64Product() throws {
        guard !isas.isEmpty else { throw XCTSkip("no AVX2/AVX-512 on this CPU: the model uses BLAS only") }
        // Odd and even row counts (AVX-512 pairs rows), 1 to 10 super-blocks; 257 × 1024 is large
        // enough that `run` splits even T = 1 over two threads.
        let shapes = [(rows: 1, cols: 256), (rows: 7, cols: 768), (rows: 33, cols: 512), (rows: 257, cols: 1024),
                      (rows: 4, cols: 2560)]
        let ts = [1, 2, 3, 5, 10, 32], maxT = 32  // 1…5: the AVX2 tiles of several output rows (rows_256)
        for type in Self.types {
            for (si, s) in shapes.enumerated() {
                let bytes = Self.randomMatrix(type, rows: s.rows, cols: s.cols, seed: 1000 * UInt64(type.rawValue) + UInt64(si))
                let w = Self.dequantized(type, bytes, count: s.rows * s.cols)
                XCTAssertTrue(w.allSatisfy(\.isFinite), "\(type): finite weights")
                let x = QuantizedLinearTests.randomFloats(maxT * s.cols, seed: 77 + UInt64(si))
                let start = QuantizedLinearTests.randomFloats(maxT * s.rows, seed: 99 + UInt64(si))
                // Reference of all token rows: Σ x·w in float64, and Σ|x·w| for the tolerance.
                var ref = [Double](repeating: 0, count: maxT * s.rows), mag = ref
                for t in 0..<maxT {
                    for o in 0..<s.rows {
                        var acc = 0.0, a = 0.0
                        for i in 0..<s.cols {
                            let p = Double(x[t * s.cols + i]) * Double(w[o * s.cols + i])
                            acc += p; a += abs(p)
                        }
                        ref[t * s.rows + o] = acc; mag[t * s.rows + o] = a
                    }
                }
                for isa in isas {
                    var worst = 0.0
                    for t in ts {
                        for accumulate in [false, true] {
                            for threads in [1, 2] {
                                let y = try QuantizedLinearTests.kernel(type, bytes, rows: s.rows, cols: s.cols, x: x, t: t, isa: isa,
                                                                        threads: threads, start: accumulate ? Array(start.prefix(t * s.rows)) : nil)
                                for k in 0..<(t * s.rows) {
                                    let expected = ref[k] + (accumulate ? Double(start[k]) : 0)
                                    worst = max(worst, abs(Double(y[k]) - expected) / max(mag[k], 1e-30))
                                }
                                XCTAssertTrue(y.allSatisfy(\.isFinite), "\(type) \(isa) T=\(t): every output written")
                            }
                        }
                    }
                    if s.rows == 257 { print("quantized kernel \(type) \(isa) \(s.rows)×\(s.cols): max |y − ref| / Σ|x·w| = \(worst)") }
                    XCTAssertLessThanOrEqual(worst, Self.tolerance, "\(type) \(isa) \(s.rows)×\(s.cols)")
                }
            }
        }
    }

    /// One-hot rows of x read single weights back: y[t, o] = W[o, i_t] with no rounding at all, so the
    /// registers hold exactly Dequantize's float32 values (every weight position of a (super-)block is
    /// probed across the 32 rows and several blocks).
    func testOneHotRowsReadWeightsBackExactly() throws {
        guard !isas.isEmpty else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        let (rows, cols, t) = (5, 1024, 32)
        for type in Self.types {
            let bytes = Self.randomMatrix(type, rows: rows, cols: cols, seed: 4242 + UInt64(type.rawValue))
            let w = Self.dequantized(type, bytes, count: rows * cols)
            for isa in isas {
                for pass in 0..<(cols / t) {
                    // Row r probes column (r·33 + pass·32) mod cols: every column once over the passes.
                    let cols_ = (0..<t).map { ($0 * 33 + pass * t) % cols }
                    var x = [Float](repeating: 0, count: t * cols)
                    for (r, c) in cols_.enumerated() { x[r * cols + c] = 1 }
                    let y = try QuantizedLinearTests.kernel(type, bytes, rows: rows, cols: cols, x: x, t: t, isa: isa)
                    for (r, c) in cols_.enumerated() {
                        for o in 0..<rows where y[r * rows + o] != w[o * cols + c] {
                            XCTFail("\(type) \(isa): weight [\(o), \(c)] read as \(y[r * rows + o]), dequantized \(w[o * cols + c])")
                            return
                        }
                    }
                }
            }
        }
    }

    func testViewsTakeEveryFormatAndCheckTheBlockSize() {
        let bytes = [UInt8](repeating: 0, count: 2 * 512 * 2)  // two rows of 512 halves: the largest here
        bytes.withUnsafeBytes { raw in
            for format in QuantizedMatrix.Format.allCases {
                XCTAssertEqual(QuantizedMatrix(type: format.type, bytes: raw, rows: 2, cols: 512)?.format, format, "\(format)")
            }
            XCTAssertEqual(Set(QuantizedMatrix.Format.allCases.map(\.type)), Set(Self.types), "every format is tested")
            XCTAssertNil(QuantizedMatrix(type: .q4_K, bytes: raw, rows: 2, cols: 640), "not a whole super-block")
            XCTAssertNil(QuantizedMatrix(type: .q6_K, bytes: raw, rows: 5, cols: 512), "bytes too short")
            XCTAssertNotNil(QuantizedMatrix(type: .q5_0, bytes: raw, rows: 3, cols: 96))
            XCTAssertNil(QuantizedMatrix(type: .tq2_0, bytes: raw, rows: 2, cols: 256), "no TQ2_0 kernel")
            XCTAssertNil(QuantizedMatrix(type: .f16, bytes: raw, rows: 2, cols: 48), "F16 rows of whole 32-weight blocks only")
            XCTAssertNil(QuantizedMatrix(type: .f32, bytes: raw, rows: 2, cols: 64), "no F32 kernel")
        }
        // The C entry point refuses an inner size that is no whole number of super-blocks, and unknown formats.
        var y = [Float](repeating: 7, count: 2)
        let x = [Float](repeating: 1, count: 288)
        let isa = qk_best_isa()
        if isa != QK_ISA_NONE {
            bytes.withUnsafeBytes { raw in
                XCTAssertEqual(qk_linear(QK_Q6_K, isa, x, 1, 288, raw.baseAddress, &y, 2, 0, 2, 0), -1)
                XCTAssertEqual(qk_linear(qk_format(rawValue: QK_FORMATS.rawValue), isa, x, 1, 256, raw.baseAddress, &y, 2, 0, 2, 0), -1)
                XCTAssertEqual(qk_linear(QK_Q5_0, isa, x, 1, 288, raw.baseAddress, &y, 2, 0, 2, 0), 0, "288 = 9 blocks of 32")
            }
            XCTAssertEqual(y, [0, 0], "zero weights")
        }
    }

    /// `a` and `b` (the same shape) give the same products bit for bit, on every ISA, at 1–12 token rows.
    private func assertSameProducts(_ a: QuantizedMatrix, _ b: QuantizedMatrix, cols: Int, seed: UInt64,
                                    file: StaticString = #filePath, line: UInt = #line) {
        var rng = SplitMix64(seed: seed)
        for isa in isas {
            for t in [1, 2, 5, 10, 12] {
                let x = (0..<(t * cols)).map { _ in rng.symmetric(1) }
                var ya = [Float](repeating: 0, count: t * a.rows), yb = ya
                XCTAssertTrue(QuantizedLinear.run(x, a, &ya, rows: t, threads: 2, isa: isa), file: file, line: line)
                XCTAssertTrue(QuantizedLinear.run(x, b, &yb, rows: t, threads: 2, isa: isa), file: file, line: line)
                XCTAssertEqual(ya.map(\.bitPattern), yb.map(\.bitPattern), "\(isa), T = \(t)", file: file, line: line)
            }
        }
    }

    /// A Q5_0 matrix rewritten as Q8_0 (`asQ8_0`, what the products read with AVX2) holds the
    /// same weights and gives the same products bit for bit, on every ISA and token count.
    func testQ5_0AsQ8_0IsTheSameMatrix() throws {
        let rows = 37, cols = 640
        let bytes = Self.randomMatrix(.q5_0, rows: rows, cols: cols, seed: 77)
        try bytes.withUnsafeBytes { raw in
            let m = try XCTUnwrap(QuantizedMatrix(type: .q5_0, bytes: raw, rows: rows, cols: cols))
            let q8 = try XCTUnwrap(m.asQ8_0())
            XCTAssertEqual(q8.matrix.format, .q8_0)
            XCTAssertNil(q8.matrix.asQ8_0(), "only Q5_0 is rewritten")
            let copy = Array(UnsafeRawBufferPointer(q8.storage.bytes).prefix(rows * cols / 32 * 34))
            XCTAssertEqual(Self.dequantized(.q8_0, copy, count: rows * cols), Self.dequantized(.q5_0, bytes, count: rows * cols))
            assertSameProducts(m, q8.matrix, cols: cols, seed: 5)
        }
    }

    /// A Q1_0 matrix rewritten as Q4_0 (`q4_0Copy`, `ALPHAEDIT_Q1_0=q4`) holds the same weights, ±d, bit for
    /// bit, and the Q4_0 kernels' products of it are the Q1_0 kernels' bit for bit (the same values in the
    /// same order), on every ISA and token count.
    func testQ1_0AsQ4_0IsTheSameMatrix() throws {
        let rows = 9, cols = 384
        let bytes = Self.randomMatrix(.q1_0, rows: rows, cols: cols, seed: 78)
        try bytes.withUnsafeBytes { raw in
            let m = try XCTUnwrap(QuantizedMatrix(type: .q1_0, bytes: raw, rows: rows, cols: cols))
            let c = try XCTUnwrap(QuantizedMatrix.q4_0Copy(ofQ1_0: raw, rows: rows, cols: cols))
            assertSameProducts(m, c.matrix, cols: cols, seed: 6)
            XCTAssertEqual(c.matrix.format, .q4_0)
            let copy = Array(UnsafeRawBufferPointer(c.storage.bytes).prefix(rows * cols / 32 * 18))
            let w = Self.dequantized(.q1_0, bytes, count: rows * cols)
            XCTAssertEqual(Self.dequantized(.q4_0, copy, count: rows * cols).map(\.bitPattern), w.map(\.bitPattern))
            XCTAssertEqual(Set(w.map(abs)).count, rows * cols / 128, "one |d| a block of 128")
            XCTAssertNil(QuantizedMatrix.q4_0Copy(ofQ1_0: UnsafeRawBufferPointer(rebasing: raw.prefix(raw.count - 1)), rows: rows, cols: cols),
                         "short bytes")
        }
    }

    /// A Q4_1 matrix rewritten with float32 scales (`withFloatScales`, what the model's products read)
    /// gives the same products bit for bit, float32 and int8, on every ISA and token count; its blocks hold
    /// d and m exactly (halves widened: subnormal, NaN and infinite ones too) and the same nibbles.
    func testQ4_1WithFloatScalesIsTheSameMatrix() throws {
        let rows = 41, cols = 576
        var bytes = Self.randomMatrix(.q4_1, rows: rows, cols: cols, seed: 79)
        // Block 0's d subnormal and m a signalling NaN, block 1's m −∞: widened as F16C widens them.
        bytes[0] = 0x03; bytes[1] = 0x00; bytes[2] = 0x01; bytes[3] = 0x7C; bytes[22] = 0x00; bytes[23] = 0xFC
        try bytes.withUnsafeBytes { raw in
            let m = try XCTUnwrap(QuantizedMatrix(type: .q4_1, bytes: raw, rows: rows, cols: cols))
            let f = try XCTUnwrap(m.withFloatScales())
            XCTAssertTrue(f.matrix.floatScales)
            XCTAssertEqual(f.matrix.format, .q4_1)
            XCTAssertNil(f.matrix.withFloatScales(), "already float32")
            XCTAssertNil(try XCTUnwrap(QuantizedMatrix(type: .q8_0, bytes: raw, rows: 1, cols: 32)).withFloatScales(), "only Q4_1")
            let copy = UnsafeRawBufferPointer(f.storage.bytes)
            for b in 0..<(rows * cols / 32) {
                for (k, o) in [0, 2].enumerated() {
                    let half = Float16(bitPattern: UInt16(bytes[20 * b + o]) | UInt16(bytes[20 * b + o + 1]) << 8)
                    let widened = copy.loadUnaligned(fromByteOffset: 24 * b + 4 * k, as: Float.self)
                    XCTAssertEqual(widened.bitPattern, half.isNaN ? Float(half).bitPattern | 0x40_0000 : Float(half).bitPattern, "block \(b)")
                }
                XCTAssertEqual(Array(copy[(24 * b + 8)..<(24 * b + 24)]), Array(bytes[(20 * b + 4)..<(20 * b + 20)]))
            }
            let good = try XCTUnwrap(QuantizedMatrix(type: .q4_1, bytes: UnsafeRawBufferPointer(rebasing: raw[(2 * cols / 32 * 20)...]),
                                                     rows: rows - 2, cols: cols))  // rows without the odd scales
            let goodCopy = try XCTUnwrap(good.withFloatScales())
            assertSameProducts(good, goodCopy.matrix, cols: cols, seed: 7)
            var rng = SplitMix64(seed: 8)
            for isa in isas {
                for t in [1, 2, 3, 4] {
                    let x = (0..<(t * cols)).map { _ in rng.symmetric(1) }
                    var ya = [Float](repeating: 0, count: t * good.rows), yb = ya
                    XCTAssertTrue(QuantizedLinear.runInt8(x, good, &ya, rows: t, threads: 2, isa: isa))
                    XCTAssertTrue(QuantizedLinear.runInt8(x, goodCopy.matrix, &yb, rows: t, threads: 2, isa: isa))
                    XCTAssertEqual(ya.map(\.bitPattern), yb.map(\.bitPattern), "int8, \(isa), T = \(t)")
                }
            }
        }
    }

    // MARK: - real tensors

    static let qwenPath = RepoPaths.repo.appendingPathComponent("models/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf").path

    /// Tensors of the Qwen2.5-Coder-0.5B Q4_K_M file, one or two of each format it holds, against
    /// dequantize + `BLAS.linear` (sgemm) for T = 1, 10 and 32 on two threads.
    func testQwenTensorsMatchDequantizedSgemm() throws {
        guard let isa = QuantizedLinear.bestISA else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        guard FileManager.default.fileExists(atPath: Self.qwenPath) else {
            XCTFail("model not present at \(Self.qwenPath): run scripts/fetch-model.sh qwen2.5-0.5b")
            return
        }
        let gguf = try GGUFFile(path: Self.qwenPath)
        let names: [(String, GGMLType)] = [("blk.0.ffn_down.weight", .q6_K), ("blk.11.ffn_down.weight", .q4_K),
                                           ("blk.0.attn_q.weight", .q5_0), ("blk.0.ffn_gate.weight", .q5_0),
                                           ("blk.0.attn_v.weight", .q8_0)]
        for (name, type) in names {
            let info = try XCTUnwrap(gguf.tensorInfo(name), name)
            XCTAssertEqual(info.type, type, "\(name) is stored as \(type)")
            let (rows, cols) = (info.rows, info.cols)
            let raw = gguf.rawBytes(info)
            let m = try XCTUnwrap(QuantizedMatrix(type: info.type, bytes: raw, rows: rows, cols: cols), name)
            var w = [Float](repeating: 0, count: rows * cols)
            Dequantize.run(info.type, from: raw, into: &w, count: rows * cols)
            for t in [1, 10, 32] {
                let x = QuantizedLinearTests.randomFloats(t * cols, seed: UInt64(t) &* 31 &+ UInt64(cols))
                var blas = [Float](repeating: 0, count: t * rows), y = [Float](repeating: .nan, count: t * rows)
                BLAS.linear(x, w, &blas, rows: t, inDim: cols, outDim: rows)
                XCTAssertTrue(QuantizedLinear.run(x, m, &y, rows: t, threads: 2, isa: isa), "\(name): kernel ran")
                var worst = 0.0
                for r in 0..<t {
                    for o in 0..<rows {
                        var mag = 0.0
                        for i in 0..<cols { mag += abs(Double(x[r * cols + i]) * Double(w[o * cols + i])) }
                        worst = max(worst, Double(abs(y[r * rows + o] - blas[r * rows + o])) / max(mag, 1e-30))
                    }
                }
                if t == 10 { print("qwen \(name) (\(type), \(rows)×\(cols)) \(isa) T=\(t): max |y − sgemm| / Σ|x·w| = \(worst)") }
                XCTAssertLessThanOrEqual(worst, Self.tolerance, "\(name) T=\(t)")
            }
        }
    }

    /// The model's wiring: Qwen's Q5_0 matrices are read from their Q8_0 copies exactly where
    /// `QuantizedLinear.q5_0AsQ8_0` says (with the AVX2 kernels: the determinism pass of scripts/test.sh);
    /// other formats are never copied.
    func testQ5_0ViewsOfQwen() throws {
        guard QuantizedLinear.bestISA != nil else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        let m = try LlamaModel(path: Self.qwenPath)
        let gate = try XCTUnwrap(m.quantized.layers[0].gate), down = try XCTUnwrap(m.quantized.layers[0].down)
        XCTAssertEqual(gate.format, QuantizedLinear.q5_0AsQ8_0 ? .q8_0 : .q5_0)
        XCTAssertEqual(QuantizedLinear.q5_0AsQ8_0, QuantizedLinear.bestISA == .avx2)
        let downInfo = try XCTUnwrap(m.gguf.tensorInfo(GGUFNames.ffnDown(0)))
        XCTAssertEqual(down.format, .q6_K)
        XCTAssertEqual(down.bytes.baseAddress, m.gguf.rawBytes(downInfo).baseAddress, "Q6_K is read in place")
        XCTAssertEqual(KernelChoice.current.q5_0_products, QuantizedLinear.q5_0AsQ8_0 ? "q8_0 copy" : "stored")
        XCTAssertEqual(KernelChoice.current.line.contains("Q5_0 read from a Q8_0 copy"), QuantizedLinear.q5_0AsQ8_0)
    }
}
