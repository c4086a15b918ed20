// The quantized small-batch linear kernels against dequantize + a float64 reference product, for
// every ISA this CPU runs, and the model's use of them: same logits as the float32 path, and an
// edited `ffn_down` never read from its stale quantized bytes. Also the vectorized SwiGLU.
import CQuantKernels
import Foundation
import Shared
import XCTest

final class QuantizedLinearTests: XCTestCase {
    /// Relative to Σ|x·w| of the output element; float32 sums of ≤ 1536 terms measure ≈ 6e-8.
    static let tolerance = 1e-6

    /// Seeded random blocks: every nibble / int8 value occurs; scales and minimums are finite f16.
    static func randomMatrix(_ type: GGMLType, rows: Int, cols: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        let blocks = rows * cols / 32
        var out = [UInt8](repeating: 0, count: blocks * type.blockBytes)
        func f16(_ v: Float, at o: Int) {
            let b = Float16(v).bitPattern
            out[o] = UInt8(b & 0xFF); out[o + 1] = UInt8(b >> 8)
        }
        for b in 0..<blocks {
            let o = b * type.blockBytes
            f16(rng.symmetric(0.02), at: o)
            if type == .q4_1 { f16(rng.symmetric(0.1), at: o + 2) }
            for j in (type == .q4_1 ? 4 : 2)..<type.blockBytes { out[o + j] = UInt8(truncatingIfNeeded: rng.next()) }
        }
        return out
    }

    static func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in rng.symmetric(1) }
    }

    /// Runs the kernel for T rows of x on `bytes` (kept alive by the caller) and returns y[T × rows].
    static func kernel(_ type: GGMLType, _ bytes: [UInt8], rows: Int, cols: Int, x: [Float], t: Int,
                       isa: QuantizedLinear.ISA, threads: Int = 1, start: [Float]? = nil) throws -> [Float] {
        var y = start ?? [Float](repeating: .nan, count: t * rows)
        try bytes.withUnsafeBytes { raw in
            let m = try XCTUnwrap(QuantizedMatrix(type: type, bytes: raw, rows: rows, cols: cols))
            let ok = x.withUnsafeBufferPointer { xb in
                y.withUnsafeMutableBufferPointer { yb in
                    QuantizedLinear.run(xb.baseAddress!, m, yb.baseAddress!, rows: t, accumulate: start != nil,
                                        threads: threads, isa: isa)
                }
            }
            XCTAssertTrue(ok, "kernel ran")
        }
        return y
    }

    var isas: [QuantizedLinear.ISA] {
        QuantizedLinear.ISA.allCases.filter { $0.rawValue <= (QuantizedLinear.bestISA?.rawValue ?? 0) }
    }

    func testKernelsMatchDequantizedFloat64Product() throws {
        guard !isas.isEmpty else { throw XCTSkip("no AVX2/AVX-512 on this CPU: the model uses BLAS only") }
        // T = 32 (four tiles) on the small shapes only, to keep the float64 reference quick in debug builds.
        let shapes = [(rows: 1536, cols: 576, maxT: 16), (rows: 576, cols: 1536, maxT: 16),
                      (rows: 13, cols: 96, maxT: 32), (rows: 7, cols: 32, maxT: 32)]
        let allTs = [1, 2, 3, 5, 8, 10, 16, 32]
        for type in [GGMLType.q4_1, .q8_0] {
            for (si, s) in shapes.enumerated() {
                let bytes = Self.randomMatrix(type, rows: s.rows, cols: s.cols, seed: 100 + UInt64(si))
                let x = Self.randomFloats(s.maxT * s.cols, seed: 200 + UInt64(si))
                let n = s.rows * s.cols
                var w = [Float](repeating: 0, count: n)
                bytes.withUnsafeBytes { Dequantize.run(type, from: $0, into: &w, count: n) }
                // Reference rows of all tokens: Σ x·w in float64, and Σ|x·w| for the tolerance.
                var ref = [Double](repeating: 0, count: s.maxT * s.rows), mag = ref
                for t in 0..<s.maxT {
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
                    for t in allTs where t <= s.maxT {
                        let y = try Self.kernel(type, bytes, rows: s.rows, cols: s.cols, x: x, t: t, isa: isa, threads: 2)
                        for k in 0..<(t * s.rows) { worst = max(worst, abs(Double(y[k]) - ref[k]) / max(mag[k], 1e-30)) }
                    }
                    print("quantized linear \(type) \(isa) \(s.rows)×\(s.cols): max |y − ref| / Σ|x·w| = \(worst)")
                    XCTAssertLessThanOrEqual(worst, Self.tolerance, "\(type) \(isa) \(s.rows)×\(s.cols)")
                }
            }
        }
    }

    func testMatchesBLASOnDequantizedWeightsAndAccumulates() throws {
        guard let isa = QuantizedLinear.bestISA else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        let (rows, cols, t) = (1536, 576, 10)
        let bytes = Self.randomMatrix(.q4_1, rows: rows, cols: cols, seed: 7)
        let x = Self.randomFloats(t * cols, seed: 8), start = Self.randomFloats(t * rows, seed: 9)
        var w = [Float](repeating: 0, count: rows * cols)
        bytes.withUnsafeBytes { Dequantize.run(.q4_1, from: $0, into: &w, count: rows * cols) }
        var blas = start
        BLAS.linear(x, w, &blas, rows: t, inDim: cols, outDim: rows, accumulate: true)
        let y = try Self.kernel(.q4_1, bytes, rows: rows, cols: cols, x: x, t: t, isa: isa, start: start)
        let diff = zip(y, blas).map { abs($0 - $1) }.max() ?? .nan
        print("quantized linear vs BLAS (accumulate, T=10): max |diff| = \(diff)")
        XCTAssertLessThanOrEqual(diff, 1e-4)
    }

    /// Each output element is computed by the same operations whatever the thread split and T (the
    /// AVX2 tiles take 8, 4 or 2 output rows at T = 1, 2, 3…5 and one at T = 16), for every format.
    func testResultsIndependentOfThreadsAndBatch() throws {
        guard !isas.isEmpty else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        let (rows, cols) = (577, 256)
        for isa in isas {
            for type in [GGMLType.q4_1, .q8_0, .q5_0, .q4_K, .q6_K] {
                let bytes = QuantizedKernelTypesTests.randomMatrix(type, rows: rows, cols: cols, seed: 11)
                let x = Self.randomFloats(16 * cols, seed: 12)
                let one = try Self.kernel(type, bytes, rows: rows, cols: cols, x: x, t: 16, isa: isa, threads: 1)
                for threads in [2, 3, 4] {
                    XCTAssertEqual(try Self.kernel(type, bytes, rows: rows, cols: cols, x: x, t: 16, isa: isa, threads: threads), one,
                                   "\(type) \(isa) \(threads) threads")
                }
                for t in [1, 2, 3, 5] {
                    let first = try Self.kernel(type, bytes, rows: rows, cols: cols, x: x, t: t, isa: isa, threads: 2)
                    XCTAssertEqual(first, Array(one.prefix(t * rows)), "\(type) \(isa) T=\(t)")
                }
            }
        }
    }

    /// Inputs of 1,024 or 2,048 floats put x's rows 4 or 8 KB apart, in one L1 set: `qk_linear_parallel`
    /// then reads a copy at `qk_x_stride` (4 cache lines more), and with ≥ 4 token rows the AVX2 kernel
    /// walks such an input in chunks, as it does 768 inputs at T = 10 (x past 28 KB); at T = 16 and 32
    /// (tiles of 8 token rows) it walks 768 and 512 inputs tile by tile. None of these changes an
    /// operation: the results equal the direct call on the contiguous rows and the token-by-token
    /// products, bit for bit, every format.
    func testPaddedInputStrideKeepsTheBits() throws {
        guard !isas.isEmpty else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        XCTAssertEqual(qk_x_stride(1024), 1024 + Int64(QK_ALIAS_PAD))
        XCTAssertEqual(qk_x_stride(2048), 2048 + Int64(QK_ALIAS_PAD))
        XCTAssertEqual(qk_x_stride(640), 640)
        XCTAssertEqual(qk_x_stride(1536), 1536)
        for isa in isas {
            for (type, format) in [(GGMLType.q4_1, QK_Q4_1), (.q8_0, QK_Q8_0), (.q5_0, QK_Q5_0), (.q4_K, QK_Q4_K), (.q6_K, QK_Q6_K)] {
                for (rows, cols, ts) in [(70, 1024, [1, 2, 5, 10, 12]), (33, 2048, [1, 2, 4, 5, 10, 12]), (40, 768, [10, 16, 32]), (24, 512, [16, 32])] {
                    let bytes = QuantizedKernelTypesTests.randomMatrix(type, rows: rows, cols: cols, seed: 17)
                    let x = Self.randomFloats(ts.max()! * cols, seed: 18)
                    for t in ts {
                        let padded = try Self.kernel(type, bytes, rows: rows, cols: cols, x: x, t: t, isa: isa, threads: 2)
                        var direct = [Float](repeating: .nan, count: t * rows)
                        let rc = bytes.withUnsafeBytes { raw in
                            qk_linear(format, qk_isa(rawValue: UInt32(isa.rawValue)), x, Int64(t), Int64(cols),
                                      raw.baseAddress, &direct, Int64(rows), 0, Int64(rows), 0)
                        }
                        XCTAssertEqual(rc, 0)
                        XCTAssertEqual(padded, direct, "\(type) \(isa) \(rows)×\(cols) T=\(t)")
                        // T ≥ 4 on AVX2 walks these inputs in chunks (x past 28 KB); token by token it
                        // does not (T = 1): the same bits.
                        var single: [Float] = []
                        for r in 0..<t {
                            single += try Self.kernel(type, bytes, rows: rows, cols: cols, x: Array(x[(r * cols)..<((r + 1) * cols)]),
                                                      t: 1, isa: isa, threads: 1)
                        }
                        XCTAssertEqual(padded, single, "\(type) \(isa) \(rows)×\(cols) T=\(t) against token by token")
                    }
                }
            }
        }
    }

    /// An x that does not start on a cache line (malloc's 16 bytes, a Swift array's storage) is read
    /// from an aligned copy (`QK_X_ALIGN`): the bits of the same x read in place where it is aligned,
    /// every format, ISA and tile height, with and without the padded stride.
    func testMisalignedInputKeepsTheBits() throws {
        guard !isas.isEmpty else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        for isa in isas {
            for (type, format) in [(GGMLType.q4_1, QK_Q4_1), (.q8_0, QK_Q8_0), (.q5_0, QK_Q5_0), (.q4_K, QK_Q4_K), (.q6_K, QK_Q6_K)] {
                for (rows, cols) in [(70, 512), (33, 1024)] {
                    let bytes = QuantizedKernelTypesTests.randomMatrix(type, rows: rows, cols: cols, seed: 21)
                    let values = Self.randomFloats(12 * cols, seed: 22)
                    let raw = UnsafeMutableRawPointer.allocate(byteCount: (12 * cols + 16) * 4, alignment: 64)
                    defer { raw.deallocate() }
                    for t in [1, 2, 10, 12] {
                        var results: [[Float]] = []
                        for offset in [0, 4, 8, 12] {  // floats past the line: 0, 16, 32 and 48 bytes
                            let x = raw.assumingMemoryBound(to: Float.self) + offset
                            for i in 0..<(t * cols) { x[i] = values[i] }
                            var y = [Float](repeating: .nan, count: t * rows)
                            let rc = bytes.withUnsafeBytes { w in
                                qk_linear_parallel(format, qk_isa(rawValue: UInt32(isa.rawValue)), x, Int64(t), Int64(cols),
                                                   w.baseAddress, &y, Int64(rows), 0, 2)
                            }
                            XCTAssertEqual(rc, 0)
                            results.append(y)
                        }
                        for (i, y) in results.enumerated().dropFirst() {
                            XCTAssertEqual(y, results[0], "\(type) \(isa) \(rows)×\(cols) T=\(t), x \(16 * i) bytes past a line")
                        }
                    }
                }
            }
        }
    }

    /// Products started from several threads at once share the worker pool (one at a time; the
    /// others run on their callers) and still give the single-thread results.
    func testConcurrentCallersGetTheirOwnResults() throws {
        guard let isa = QuantizedLinear.bestISA else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        let (rows, cols, t) = (384, 256, 3)
        let bytes = Self.randomMatrix(.q4_1, rows: rows, cols: cols, seed: 21)
        let xs = (0..<8).map { Self.randomFloats(t * cols, seed: 30 + UInt64($0)) }
        let expected = try xs.map { try Self.kernel(.q4_1, bytes, rows: rows, cols: cols, x: $0, t: t, isa: isa, threads: 1) }
        let results = UnsafeMutableBufferPointer<[Float]>.allocate(capacity: xs.count)
        results.initialize(repeating: [])
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: xs.count) { i in
            var y = [Float](repeating: .nan, count: t * rows)
            for _ in 0..<50 {
                bytes.withUnsafeBytes { raw in
                    guard let m = QuantizedMatrix(type: .q4_1, bytes: raw, rows: rows, cols: cols) else { return }
                    QuantizedLinear.run(xs[i], m, &y, rows: t, threads: 2, isa: isa)
                }
            }
            results[i] = y
        }
        for i in 0..<xs.count { XCTAssertEqual(results[i], expected[i], "caller \(i)") }
    }

    /// ALPHAEDIT_ISA with a value the kernels do not know is refused by both executables before any
    /// work, with a line naming it (the kernels would take the CPU's best and a benchmark meant for
    /// AVX2 would measure AVX-512); the known values pass.
    func testUnknownISACapIsRefused() throws {
        XCTAssertNil(BLASRuntime.isaCapProblem(nil))
        XCTAssertNil(BLASRuntime.isaCapProblem(""), "empty: as unset, as the kernels read it")
        for ok in ["avx2", "avx512", "none"] { XCTAssertNil(BLASRuntime.isaCapProblem(ok), ok) }
        XCTAssertNotNil(BLASRuntime.isaCapProblem("AVX2"), "case matters, as in quant_kernels.c")
        for name in ["alphaedit", "alphaedit-worker"] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try ClusterTestSupport.executable(name))
            p.arguments = ["--help"]
            p.environment = ProcessInfo.processInfo.environment.merging(["ALPHAEDIT_ISA": "avx-2"]) { $1 }
            let pipe = Pipe()
            p.standardError = pipe
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 2, "\(name): \(text)")
            XCTAssertTrue(text.contains("ALPHAEDIT_ISA=avx-2 is not one of avx2, avx512, none"), "\(name): \(text)")
        }
    }

    /// Which OpenBLAS kernels an executable re-executes itself with: generic ones are replaced by the
    /// CPU's best; any other choice is kept (AVX2 kernels on an AVX-512 CPU too: older OpenBLAS builds
    /// fail on some processors with the AVX-512 ones); ALPHAEDIT_ISA=avx2 asks for Haswell whatever
    /// OpenBLAS took.
    func testOpenBLASCoreChoice() {
        XCTAssertEqual(BLASRuntime.upgrade(from: "Prescott", best: "HASWELL", capped: false), "HASWELL")
        XCTAssertEqual(BLASRuntime.upgrade(from: "Core2", best: "SKYLAKEX", capped: false), "SKYLAKEX")
        XCTAssertNil(BLASRuntime.upgrade(from: "Haswell", best: "SKYLAKEX", capped: false), "kept")
        XCTAssertNil(BLASRuntime.upgrade(from: "Zen", best: "SKYLAKEX", capped: false), "kept")
        XCTAssertNil(BLASRuntime.upgrade(from: "Haswell", best: "HASWELL", capped: false))
        for right in ["SkylakeX", "Cooperlake", "SapphireRapids"] {
            XCTAssertNil(BLASRuntime.upgrade(from: right, best: "SKYLAKEX", capped: false), right)
        }
        XCTAssertEqual(BLASRuntime.upgrade(from: "SkylakeX", best: "HASWELL", capped: true), "HASWELL")
        XCTAssertNil(BLASRuntime.upgrade(from: "Haswell", best: "HASWELL", capped: true))
    }

    func testViewsRejectWhatNoKernelReads() {
        let bytes = [UInt8](repeating: 0, count: 20 * 4)
        bytes.withUnsafeBytes { raw in
            XCTAssertNotNil(QuantizedMatrix(type: .q4_1, bytes: raw, rows: 2, cols: 64))
            XCTAssertNil(QuantizedMatrix(type: .f32, bytes: raw, rows: 2, cols: 10), "no float kernel")
            XCTAssertNil(QuantizedMatrix(type: .q4_1, bytes: raw, rows: 3, cols: 64), "bytes too short")
            XCTAssertNil(QuantizedMatrix(type: .q4_1, bytes: raw, rows: 2, cols: 48), "partial block")
            guard let m = QuantizedMatrix(type: .q4_1, bytes: raw, rows: 2, cols: 64) else { return }
            var y: [Float] = [1, 2]
            let x = [Float](repeating: 1, count: 64)
            XCTAssertFalse(QuantizedLinear.run(x, m, &y, rows: 1, isa: nil), "no ISA: nothing runs")
            XCTAssertEqual(y, [1, 2])
        }
    }

    // MARK: - SwiGLU

    /// The vectorized SwiGLU of every ISA against the scalar formula with Foundation.exp, over
    /// gates from −100 to 100 (both clamps of its exp) and a length with a partial last vector.
    func testSwiGLUMatchesScalarFormula() throws {
        let n = 20_003
        var rng = SplitMix64(seed: 5)
        let g = (0..<n).map { i in i < 200 ? Float(i - 100) : rng.symmetric(12) }, u = Self.randomFloats(n, seed: 6)
        let ref = (0..<n).map { g[$0] / (1 + Foundation.exp(-g[$0])) * u[$0] }
        for isa in [QuantizedLinear.ISA?.none] + isas.map(Optional.some) {
            var k = [Float](repeating: .nan, count: n)
            let rc = qk_swiglu(qk_isa(rawValue: UInt32(isa?.rawValue ?? 0)), g, u, &k, Int64(n))
            XCTAssertEqual(rc, 0)
            var worst: Float = 0
            for i in 0..<n where abs(g[i]) <= 87 { worst = max(worst, abs(k[i] - ref[i]) / max(abs(ref[i]), 1e-30)) }
            print("swiglu \(isa.map { "\($0)" } ?? "scalar"): max relative diff to the scalar formula \(worst)")
            XCTAssertLessThanOrEqual(worst, 1e-6)
            for i in 0..<n where abs(g[i]) > 87 { XCTAssertEqual(k[i], ref[i], accuracy: 1e-30 + 1e-6 * abs(ref[i]), "g = \(g[i])") }
        }
    }

    /// GELU-tanh (Gemma), forward and backward, every ISA and the scalar loop, against the tanh formula
    /// in Double: the kernels compute x·σ(2z) instead of ½x(1 + tanh z), the same function.
    func testGeGLUMatchesTanhFormula() throws {
        let n = 20_003
        var rng = SplitMix64(seed: 7)
        let g = (0..<n).map { i in i < 200 ? Float(i - 100) : rng.symmetric(8) }, u = Self.randomFloats(n, seed: 8)
        let dk = Self.randomFloats(n, seed: 9)
        for isa in [QuantizedLinear.ISA?.none] + isas.map(Optional.some) {
            let q = qk_isa(rawValue: UInt32(isa?.rawValue ?? 0))
            var k = [Float](repeating: .nan, count: n), dg = k, du = k
            XCTAssertEqual(qk_geglu(q, g, u, &k, Int64(n)), 0)
            XCTAssertEqual(qk_geglu_backward(q, dk, g, u, &dg, &du, Int64(n)), 0)
            var worst = (k: 0.0, du: 0.0, dg: 0.0)
            for i in 0..<n {
                let gelu = GeGLU.scalarGELU(g[i]), slope = GeGLU.scalarGELUDerivative(g[i])
                let refK = gelu * Double(u[i]), refDu = Double(dk[i]) * gelu, refDg = Double(dk[i]) * Double(u[i]) * slope
                // relative to the magnitude the inputs give the result (a gelu near 0 is compared in absolute terms)
                worst.k = max(worst.k, abs(Double(k[i]) - refK) / max(abs(refK), 1e-6 * abs(Double(u[i]))))
                worst.du = max(worst.du, abs(Double(du[i]) - refDu) / max(abs(refDu), 1e-6 * abs(Double(dk[i]))))
                // gelu' = s + slope crosses 0 near x = −0.75, where its two O(1) terms cancel: scale 1e-2
                worst.dg = max(worst.dg, abs(Double(dg[i]) - refDg) / max(abs(refDg), 1e-2 * abs(Double(dk[i] * u[i]))))
            }
            print("geglu \(isa.map { "\($0)" } ?? "scalar"): max relative diff to the tanh formula k \(worst.k), du \(worst.du), dg \(worst.dg)")
            XCTAssertLessThanOrEqual(worst.k, 2e-6)
            XCTAssertLessThanOrEqual(worst.du, 2e-6)
            XCTAssertLessThanOrEqual(worst.dg, 2e-5)
        }
    }

    /// SwiGLU backward, every ISA and the scalar loop, against the formula in Double.
    func testSwiGLUBackwardMatchesFormula() throws {
        let n = 20_003
        var rng = SplitMix64(seed: 15)
        let g = (0..<n).map { i in i < 200 ? Float(i - 100) : rng.symmetric(12) }, u = Self.randomFloats(n, seed: 16)
        let dk = Self.randomFloats(n, seed: 17)
        for isa in [QuantizedLinear.ISA?.none] + isas.map(Optional.some) {
            var dg = [Float](repeating: .nan, count: n), du = dg
            XCTAssertEqual(qk_swiglu_backward(qk_isa(rawValue: UInt32(isa?.rawValue ?? 0)), dk, g, u, &dg, &du, Int64(n)), 0)
            var worst = (du: 0.0, dg: 0.0)
            for i in 0..<n where abs(g[i]) <= 87 {
                let x = Double(g[i]), s = 1 / (1 + Foundation.exp(-x))
                let refDu = Double(dk[i]) * x * s, refDg = Double(dk[i]) * Double(u[i]) * s * (1 + x * (1 - s))
                worst.du = max(worst.du, abs(Double(du[i]) - refDu) / max(abs(refDu), 1e-6 * abs(Double(dk[i]))))
                // silu' = s(1 + x(1 − s)) crosses 0 near x = −1.28, where its terms cancel: scale 1e-2
                worst.dg = max(worst.dg, abs(Double(dg[i]) - refDg) / max(abs(refDg), 1e-2 * abs(Double(dk[i] * u[i]))))
            }
            print("swiglu backward \(isa.map { "\($0)" } ?? "scalar"): max relative diff du \(worst.du), dg \(worst.dg)")
            XCTAssertLessThanOrEqual(worst.du, 2e-6)
            XCTAssertLessThanOrEqual(worst.dg, 2e-5)
        }
    }

    /// The vocabulary softmax (softmax.c): log Σ e^x and e^(x − s)·w against Double, on rows of lengths
    /// around the vector widths and a Gemma-sized one; AVX2 and AVX-512 give the same bits.
    func testSoftmaxKernelsMatchDoubleAndAgreeAcrossISAs() throws {
        var rng = SplitMix64(seed: 21)
        for n in [1, 7, 8, 15, 16, 17, 33, 1_000, 262_144] {
            let x = (0..<n).map { _ in rng.symmetric(30) }
            let mx = Double(x.max()!), refSum = x.reduce(0.0) { $0 + Foundation.exp(Double($1) - mx) }
            var results: [(max: Float, sum: Double, y: [Float])] = []
            for isa in [QuantizedLinear.ISA?.none] + isas.map(Optional.some) {
                let q = qk_isa(rawValue: UInt32(isa?.rawValue ?? 0))
                var m: Float = .nan, sum = Double.nan
                XCTAssertEqual(qk_sum_exp(q, x, Int64(n), &m, &sum), 0)
                XCTAssertEqual(Double(m), mx)
                XCTAssertEqual(sum, refSum, accuracy: 1e-6 * refSum, "n \(n), \(isa.map { "\($0)" } ?? "scalar")")
                let lse = Float(mx + Foundation.log(sum)), w: Float = 0.125
                var y = [Float](repeating: .nan, count: n)
                XCTAssertEqual(qk_exp_scaled(q, x, &y, Int64(n), lse, w), 0)
                for i in 0..<n {
                    let ref = Foundation.exp(Double(x[i] - lse)) * Double(w)
                    XCTAssertEqual(Double(y[i]), ref, accuracy: 1e-30 + 2e-6 * ref, "n \(n), i \(i)")
                }
                if isa != nil { results.append((m, sum, y)) }
            }
            for r in results.dropFirst() {
                XCTAssertEqual(r.sum.bitPattern, results[0].sum.bitPattern, "n \(n): AVX2 and AVX-512 sums differ")
                XCTAssertEqual(r.y, results[0].y, "n \(n): AVX2 and AVX-512 exponentials differ")
            }
        }
        var m: Float = 0, sum = 0.0
        XCTAssertEqual(qk_sum_exp(QK_ISA_NONE, [Float](), 0, &m, &sum), -1, "an empty row is refused")
        XCTAssertEqual(Softmax.logSumExp([Float(0), 0][...]), Foundation.log(2), accuracy: 1e-12)
    }

    // MARK: - in the model

    static func syntheticModel() throws -> LlamaModel {
        let c = SyntheticConfig(layers: 2, hidden: 64, ffn: 128, heads: 4, kvHeads: 2, matrixType: .q4_1)
        return try LlamaModel(gguf: GGUFFile(bytes: SyntheticModel.writer(c).bytes()))
    }

    func logits(_ m: LlamaModel, _ ids: [Int32], quantized: Bool) throws -> [Float] {
        m.quantized.enabled = quantized
        defer { m.quantized.enabled = true }
        return try m.forward(TokenBatch([ids]), logitRows: [ids.count - 1]).logits
    }

    func testModelLogitsMatchFloat32Path() throws {
        guard QuantizedLinear.bestISA != nil else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        let m = try Self.syntheticModel()
        XCTAssertNotNil(m.quantized.lmHead)
        let ids: [Int32] = [5, 17, 42, 99, 3, 250, 7, 64, 128, 11]
        let q = try logits(m, ids, quantized: true), f = try logits(m, ids, quantized: false)
        let diff = zip(q, f).map { abs($0 - $1) }.max() ?? .nan
        print("synthetic model, 10 tokens: max |logit diff| quantized vs float32 = \(diff)")
        XCTAssertLessThanOrEqual(diff, 1e-4)
    }

    /// `LlamaModel.profile` (`bench forward --breakdown`) sees every product of a forward once, under
    /// its role, the kernel that ran it and its row count, and the outputs do not change while it is
    /// installed. An edited `ffn_down` shows as float32; the last block's MLP runs at the logit rows only.
    func testProductProfileSeesEveryProduct() throws {
        let m = try Self.syntheticModel()
        let ids: [Int32] = [5, 17, 42, 99, 3, 250, 7]
        let plain = try m.forward(TokenBatch([ids]), logitRows: [ids.count - 1]).logits
        let profile = ProductProfile()
        m.profile = profile
        let profiled = try m.forward(TokenBatch([ids]), logitRows: [ids.count - 1]).logits
        m.profile = nil
        XCTAssertEqual(profiled, plain)
        let quantized = QuantizedLinear.bestISA != nil
        let kernel = quantized ? "Q4_1" : "F32"
        var calls: [String: Int] = [:]
        for (key, totals) in profile.entries {
            XCTAssertEqual(key.kernel.description, kernel, "\(key)")
            XCTAssertGreaterThan(totals.seconds, 0)
            calls["\(key.role.rawValue) \(key.outDim)×\(key.inDim) T=\(key.tokens)"] = totals.calls
        }
        XCTAssertEqual(calls, [
            "q 64×64 T=7": 2, "k 32×64 T=7": 2, "v 32×64 T=7": 2,
            "o 64×64 T=7": 1, "gate 128×64 T=7": 1, "up 128×64 T=7": 1, "down 64×128 T=7": 1,
            "o 64×64 T=1": 1, "gate 128×64 T=1": 1, "up 128×64 T=1": 1, "down 64×128 T=1": 1,
            "head \(m.config.vocab)×64 T=1": 1,
        ])
        // Edited: layer 0's ffn_down now runs on its float32 copy.
        try m.markEdited(layer: 0)
        profile.reset()
        m.profile = profile
        _ = try m.forward(TokenBatch([ids]), logitRows: [ids.count - 1])
        m.profile = nil
        let down = profile.entries.filter { $0.key.role == .down }.map { "\($0.key.kernel.description) T=\($0.key.tokens)" }
        XCTAssertEqual(Set(down), quantized ? ["F32 T=7", "Q4_1 T=1"] : ["F32 T=7", "F32 T=1"])
    }

    func testEditedDownIsReadFromFloat32Weights() throws {
        guard QuantizedLinear.bestISA != nil else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        let m = try Self.syntheticModel()
        let ids: [Int32] = [5, 17, 42, 99, 3]
        let before = try logits(m, ids, quantized: true)
        // An edit of layer 1's ffn_down, in place, as the edit engine applies it.
        let down = m.weights.layers[1].down
        for i in 0..<down.count { down[i] += 0.05 * Float(i % 7 - 3) }
        let stale = try logits(m, ids, quantized: true)
        XCTAssertEqual(stale, before, "unmarked, the few-token path still reads the stored bytes")
        XCTAssertFalse(m.quantized.isEdited(layer: 1))
        try m.markEdited(layer: 1)
        XCTAssertTrue(m.quantized.isEdited(layer: 1))
        let edited = try logits(m, ids, quantized: true), float32 = try logits(m, ids, quantized: false)
        let change = zip(edited, before).map { abs($0 - $1) }.max() ?? 0
        let diff = zip(edited, float32).map { abs($0 - $1) }.max() ?? .nan
        print("edited layer: logits moved by up to \(change); max |diff| to the float32 path \(diff)")
        XCTAssertGreaterThan(change, 1e-3, "the edit shows in the output")
        XCTAssertLessThanOrEqual(diff, 1e-4)
        XCTAssertThrowsError(try m.markEdited(layer: 2)) { XCTAssertEqual($0 as? ModelError, .layerOutOfRange(2, layers: 2)) }
    }
}
