// The 8-bit-activation kernels (Sources/CQuantKernels/int8_kernels.c, `--activations int8`):
// the rounding of x (every value within half a step of x / d_x, |q| ≤ 127, the block sums), and every
// format's product against Dequantize.run + a float64 product with the rounded activations x̂ = d_x·q,
// over token counts, shapes, accumulate and thread counts; and against the float32 product within the
// bound that x's rounding allows, Σ|w|·d_x / 2.
import CQuantKernels
import Foundation
import Shared
import XCTest

final class Int8ActivationTests: XCTestCase {
    static let types: [GGMLType] = [.q4_1, .q8_0, .q5_0, .q4_K, .q6_K, .q4_0, .q5_1, .iq4_nl, .q5_K, .iq4_xs, .q3_K, .q2_K,
                                    .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m, .q1_0]

    var isas: [QuantizedLinear.ISA] {
        QuantizedLinear.ISA.allCases.filter { $0.rawValue <= (QuantizedLinear.bestISA?.rawValue ?? 0) }
    }

    /// x rounded as the kernels round it: per row, the int8 values and the scales of each block of 32.
    static func quantized(_ x: [Float], t: Int, cols: Int, isa: QuantizedLinear.ISA) throws -> (q: [Int8], d: [Float], s: [Float]) {
        let rowBytes = Int(qk_q8_row_bytes(Int64(cols)))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(64, t * rowBytes), alignment: 64)
        defer { buffer.deallocate() }
        XCTAssertEqual(qk_quantize_q8(qk_isa(rawValue: UInt32(isa.rawValue)), x, Int64(t), Int64(cols), Int64(cols), buffer.baseAddress), 0)
        var q: [Int8] = [], d: [Float] = [], s: [Float] = []
        for r in 0..<t {
            let row = UnsafeRawBufferPointer(rebasing: buffer[(r * rowBytes)..<((r + 1) * rowBytes)])
            q += (0..<cols).map { Int8(bitPattern: row[$0]) }
            let floats = (0..<(2 * cols / 32)).map { row.loadUnaligned(fromByteOffset: cols + 4 * $0, as: Float.self) }
            d += floats.prefix(cols / 32); s += floats.suffix(cols / 32)
        }
        return (q, d, s)
    }

    func testActivationsRoundToNearestWithinTheirBlockScale() throws {
        guard let isa = QuantizedLinear.bestISA else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        let cols = 256, t = 3
        var x = QuantizedLinearTests.randomFloats(t * cols, seed: 11)
        for i in 32..<64 { x[i] = 0 }          // an all-zero block: scale 0, values 0
        x[64] = -3.5; x[100] = 1e-30           // a block led by a negative value; a tiny one
        let (q, d, s) = try Self.quantized(x, t: t, cols: cols, isa: isa)
        XCTAssertEqual(d[1], 0); XCTAssertEqual(s[1], 0)
        XCTAssertTrue(q[32..<64].allSatisfy { $0 == 0 })
        XCTAssertEqual(q[64], -127, "the block's largest magnitude maps to ±127")
        for b in 0..<(t * cols / 32) {
            let amax = x[(32 * b)..<(32 * b + 32)].map { abs($0) }.max()!
            XCTAssertEqual(d[b], amax / 127, "block \(b): d = max|x| / 127")
            var sum = 0
            for i in (32 * b)..<(32 * b + 32) {
                XCTAssertLessThanOrEqual(abs(Int(q[i])), 127)
                if d[b] != 0 { XCTAssertLessThanOrEqual(abs(x[i] / d[b] - Float(q[i])), 0.5 + 1e-4, "x[\(i)] to nearest") }
                sum += Int(q[i])
            }
            XCTAssertEqual(s[b], d[b] * Float(sum), accuracy: abs(d[b] * Float(sum)) * 1e-6, "block \(b): s = d·Σq")
        }
    }

    func testEveryFormatMatchesDequantizedProductOnRoundedActivations() throws {
        guard !isas.isEmpty else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        // The tiles take blocks in pairs: 96 and 864 columns (3 and 27 blocks of 32) end on a block of its own.
        let shapes = [(rows: 1, cols: 256), (rows: 7, cols: 768), (rows: 33, cols: 512), (rows: 257, cols: 1024), (rows: 6, cols: 2560),
                      (rows: 9, cols: 96), (rows: 13, cols: 864)]
        let ts = [1, 2, 3, 4, 5, 10, 32], maxT = 32
        for type in Self.types {
            for (si, s) in shapes.enumerated() where s.cols % type.blockSize == 0 {
                let bytes = QuantizedKernelTypesTests.randomMatrix(type, rows: s.rows, cols: s.cols, seed: 500 * UInt64(type.rawValue) + UInt64(si))
                let w = QuantizedKernelTypesTests.dequantized(type, bytes, count: s.rows * s.cols)
                let x = QuantizedLinearTests.randomFloats(maxT * s.cols, seed: 31 + UInt64(si))
                let start = QuantizedLinearTests.randomFloats(maxT * s.rows, seed: 41 + UInt64(si))
                for isa in isas {
                    let (q, d, _) = try Self.quantized(x, t: maxT, cols: s.cols, isa: isa)
                    // Σ w·x̂ in float64 (x̂ = d·q), Σ|w·x̂| for the tolerance, and x's rounding bound Σ|w|·d/2.
                    var ref = [Double](repeating: 0, count: maxT * s.rows), mag = ref, bound = ref, exact = ref
                    for t in 0..<maxT {
                        for o in 0..<s.rows {
                            var acc = 0.0, a = 0.0, bd = 0.0, ex = 0.0
                            for i in 0..<s.cols {
                                let wi = Double(w[o * s.cols + i]), xi = Double(d[(t * s.cols + i) / 32]) * Double(q[t * s.cols + i])
                                acc += wi * xi; a += abs(wi * xi); ex += wi * Double(x[t * s.cols + i])
                                bd += abs(wi) * Double(d[(t * s.cols + i) / 32]) / 2
                            }
                            ref[t * s.rows + o] = acc; mag[t * s.rows + o] = a; bound[t * s.rows + o] = bd; exact[t * s.rows + o] = ex
                        }
                    }
                    var worst = 0.0, worstFloat = 0.0
                    for t in ts {
                        for accumulate in [false, true] {
                            for threads in [1, 2] {
                                var y = accumulate ? Array(start.prefix(t * s.rows)) : [Float](repeating: .nan, count: t * s.rows)
                                try bytes.withUnsafeBytes { raw in
                                    let m = try XCTUnwrap(QuantizedMatrix(type: type, bytes: raw, rows: s.rows, cols: s.cols))
                                    XCTAssertTrue(QuantizedLinear.runInt8(x, m, &y, rows: t, accumulate: accumulate, threads: threads, isa: isa))
                                }
                                for k in 0..<(t * s.rows) {
                                    let base = accumulate ? Double(start[k]) : 0
                                    worst = max(worst, abs(Double(y[k]) - base - ref[k]) / max(mag[k], 1e-30))
                                    // Against the float32 activations: within x's rounding (plus float32 sums).
                                    worstFloat = max(worstFloat, abs(Double(y[k]) - base - exact[k]) / max(bound[k] + 1e-5 * mag[k], 1e-30))
                                }
                            }
                        }
                    }
                    if s.rows == 257 { print("int8 kernel \(type) \(isa) \(s.rows)×\(s.cols): |y − ref| / Σ|w·x̂| = \(worst), |y − W·x| / (Σ|w|·d/2) = \(worstFloat)") }
                    XCTAssertLessThanOrEqual(worst, 1e-5, "\(type) \(isa) \(s.rows)×\(s.cols)")
                    XCTAssertLessThanOrEqual(worstFloat, 1, "\(type) \(isa) \(s.rows)×\(s.cols): within the rounding bound")
                }
            }
        }
    }

    func testFormatsWithoutAnInt8KernelAreRefused() throws {
        guard let isa = QuantizedLinear.bestISA else { throw XCTSkip("no AVX2/AVX-512 on this CPU") }
        for type in [GGMLType.f16, .bf16] {
            let bytes = QuantizedKernelTypesTests.randomMatrix(type, rows: 4, cols: 256, seed: 3)
            let format = try XCTUnwrap(QuantizedMatrix.Format(type))
            XCTAssertFalse(QuantizedLinear.int8Reads(format))
            var y = [Float](repeating: 7, count: 4)
            let x = [Float](repeating: 1, count: 256)
            try bytes.withUnsafeBytes { raw in
                let m = try XCTUnwrap(QuantizedMatrix(type: type, bytes: raw, rows: 4, cols: 256))
                XCTAssertFalse(QuantizedLinear.runInt8(x, m, &y, rows: 1, isa: isa), "\(type)")
            }
            XCTAssertEqual(y, [7, 7, 7, 7], "nothing written")
        }
        XCTAssertEqual(Set(Self.types.compactMap(QuantizedMatrix.Format.init).filter(QuantizedLinear.int8Reads).map(\.type)), Set(Self.types))
    }
}
