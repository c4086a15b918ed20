// Dequantization of the grid-coded i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) and
// of NVFP4 (layouts of ggml-common.h). Each groups 8 or 4 weights into one index into a fixed table of
// lattice points (Sources/CQuantKernels/iq_grids.c), with separate sign bits (IQ2, IQ3) or a shift (IQ1). The float
// arithmetic is ggml's `dequantize_row_*`, in its order, so the values are gguf-py's bit for bit
// (GGUFReferenceTests).
import CQuantKernels

/// A table of lattice points as float32, point i's values at [width·i, width·(i + 1)): the kernels' own
/// tables (Sources/CQuantKernels/iq_grids.c, generated from gguf-py), built once.
struct IQuantGrid: @unchecked Sendable {
    let width: Int
    let table: UnsafePointer<Float>

    private init(_ grid: qk_grid, width: Int) {
        self.width = width
        guard let t = qk_iq_grid(grid) else { fatalError("qk_iq_grid has no table \(grid)") }  // every qk_grid has one
        table = t
    }

    static let iq2xxs = IQuantGrid(QK_GRID_IQ2XXS, width: 8)
    static let iq2xs = IQuantGrid(QK_GRID_IQ2XS, width: 8)
    static let iq2s = IQuantGrid(QK_GRID_IQ2S, width: 8)
    static let iq3xxs = IQuantGrid(QK_GRID_IQ3XXS, width: 4)
    static let iq3s = IQuantGrid(QK_GRID_IQ3S, width: 4)
    static let iq1s = IQuantGrid(QK_GRID_IQ1S, width: 8)
}

extension Dequantize {
    /// Sign bits of 8 weights from 7 stored bits: the eighth makes the count of minus signs even
    /// (ggml's `ksigns_iq2xs`).
    @inline(__always) static func evenSigns(_ s: UInt32) -> UInt32 {
        let low = s & 0x7F
        return low | UInt32(low.nonzeroBitCount & 1) << 7
    }

    /// `n` values of grid point `index` times `scale`, negated where bit j of `signs` is set.
    @inline(__always) static func signedPoint(_ grid: IQuantGrid, _ index: Int, _ scale: Float, _ signs: UInt32,
                                              _ y: UnsafeMutablePointer<Float>) {
        let t = grid.table + grid.width * index
        for j in 0..<grid.width { y[j] = scale * t[j] * (signs >> UInt32(j) & 1 == 0 ? 1 : -1) }
    }

    /// IQ2_XXS: f16 d, then per 32 weights two u32: four grid indices (a byte each; 8 weights each), and
    /// four 7-bit sign groups with a 4-bit scale s on top; x = d·(½ + s)·¼ · grid · sign.
    static func iq2_xxs(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        for ib in 0..<8 {
            let o = 2 + 8 * ib
            let idx = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self))
            let aux = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o + 4, as: UInt32.self))
            let db = d * (0.5 + Float(aux >> 28)) * 0.25
            for l in 0..<4 {
                signedPoint(IQuantGrid.iq2xxs, Int((idx >> UInt32(8 * l)) & 0xFF), db, evenSigns(aux >> UInt32(7 * l)),
                            y + 32 * ib + 8 * l)
            }
        }
    }

    /// IQ2_XS: f16 d, 32 u16 (9-bit grid index, 7 sign bits; 8 weights each), 8 bytes of two 4-bit
    /// scales (one per 16 weights); x = d·(½ + s)·¼ · grid · sign.
    static func iq2_xs(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        let scales = (b + 66).assumingMemoryBound(to: UInt8.self)
        for ib in 0..<8 {
            let db0 = d * (0.5 + Float(scales[ib] & 0xF)) * 0.25, db1 = d * (0.5 + Float(scales[ib] >> 4)) * 0.25
            for l in 0..<4 {
                let q = UInt32(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 + 2 * (4 * ib + l), as: UInt16.self)))
                signedPoint(IQuantGrid.iq2xs, Int(q & 511), l < 2 ? db0 : db1, evenSigns(q >> 9), y + 32 * ib + 8 * l)
            }
        }
    }

    /// IQ2_S: f16 d, 32 low bytes of 10-bit grid indices, 32 sign bytes (8 weights each), 8 bytes of the
    /// indices' high 2-bit pairs, 8 bytes of two 4-bit scales; x = d·(½ + s)·¼ · grid · sign.
    static func iq2_s(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        let q = b.assumingMemoryBound(to: UInt8.self)
        for ib in 0..<8 {
            let sc = q[74 + ib]
            let db0 = d * (0.5 + Float(sc & 0xF)) * 0.25, db1 = d * (0.5 + Float(sc >> 4)) * 0.25
            for l in 0..<4 {
                let p = 4 * ib + l
                let index = Int(q[2 + p]) | Int((q[66 + ib] >> UInt8(2 * l)) & 3) << 8
                signedPoint(IQuantGrid.iq2s, index, l < 2 ? db0 : db1, UInt32(q[34 + p]), y + 32 * ib + 8 * l)
            }
        }
    }

    /// IQ3_XXS: f16 d, 64 grid indices (a byte each; 4 weights each), then per 32 weights a u32 of four
    /// 7-bit sign groups (8 weights each) and a 4-bit scale on top; x = d·(½ + s)·½ · grid · sign.
    static func iq3_xxs(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        let q = b.assumingMemoryBound(to: UInt8.self)
        for ib in 0..<8 {
            let aux = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 66 + 4 * ib, as: UInt32.self))
            let db = d * (0.5 + Float(aux >> 28)) * 0.5
            for l in 0..<4 {
                let signs = evenSigns(aux >> UInt32(7 * l))
                let out = y + 32 * ib + 8 * l
                signedPoint(IQuantGrid.iq3xxs, Int(q[2 + 8 * ib + 2 * l]), db, signs, out)
                signedPoint(IQuantGrid.iq3xxs, Int(q[2 + 8 * ib + 2 * l + 1]), db, signs >> 4, out + 4)
            }
        }
    }

    /// IQ3_S: f16 d, 64 low bytes of 9-bit grid indices (4 weights each), 8 bytes of their high bits,
    /// 32 sign bytes (8 weights each), 4 bytes of two 4-bit scales (one per 32 weights);
    /// x = d·(1 + 2s) · grid · sign.
    static func iq3_s(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        let q = b.assumingMemoryBound(to: UInt8.self)
        for ib in 0..<8 {
            let db = d * Float(1 + 2 * Int((q[106 + ib / 2] >> UInt8(4 * (ib % 2))) & 0xF))
            let qh = Int(q[66 + ib])
            for l in 0..<4 {
                let signs = UInt32(q[74 + 4 * ib + l])
                let out = y + 32 * ib + 8 * l
                for h in 0..<2 {
                    let k = 2 * l + h
                    let index = Int(q[2 + 8 * ib + k]) | ((qh >> k) & 1) << 8
                    signedPoint(IQuantGrid.iq3s, index, db, signs >> UInt32(4 * h), out + 4 * h)
                }
            }
        }
    }

    /// IQ1_S and IQ1_M: 8 weights of grid point `index`, x = dl·(grid + delta).
    @inline(__always) static func shiftedPoint(_ index: Int, _ dl: Float, _ delta: Float, _ y: UnsafeMutablePointer<Float>) {
        let t = IQuantGrid.iq1s.table + 8 * index
        for j in 0..<8 { y[j] = dl * (t[j] + delta) }
    }

    static let iq1Delta: Float = 0.125

    /// IQ1_S: f16 d, 32 low bytes of 11-bit grid indices (8 weights each), then per 32 weights a u16:
    /// the four indices' high 3 bits, a 3-bit scale s and the sign of delta; x = d·(2s + 1)·(grid ± ⅛).
    static func iq1_s(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        let q = b.assumingMemoryBound(to: UInt8.self)
        for ib in 0..<8 {
            let qh = Int(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 34 + 2 * ib, as: UInt16.self)))
            let dl = d * Float(2 * ((qh >> 12) & 7) + 1)
            let delta = qh & 0x8000 != 0 ? -iq1Delta : iq1Delta
            for l in 0..<4 {
                shiftedPoint(Int(q[2 + 4 * ib + l]) | ((qh >> (3 * l)) & 7) << 8, dl, delta, y + 32 * ib + 8 * l)
            }
        }
    }

    /// IQ1_M: 32 low bytes of 11-bit grid indices (8 weights each), 16 bytes of two nibbles (an index's
    /// high 3 bits and its delta's sign), 4 u16 of four 3-bit scales (one per 16 weights) whose top
    /// nibbles together are the f16 d; x = d·(2s + 1)·(grid ± ⅛).
    static func iq1_m(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let q = b.assumingMemoryBound(to: UInt8.self)
        func word(_ k: Int) -> Int { Int(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 48 + 2 * k, as: UInt16.self))) }
        let sc = (word(0), word(1), word(2), word(3))
        let dBits = sc.0 >> 12 | (sc.1 >> 8) & 0xF0 | (sc.2 >> 4) & 0xF00 | sc.3 & 0xF000
        let d = Float(Float16(bitPattern: UInt16(dBits)))
        for ib in 0..<8 {
            let w = word(ib / 2)
            for l in 0..<4 {
                let s = (w >> (6 * (ib % 2) + 3 * (l / 2))) & 7
                let nibble = Int(q[32 + 2 * ib + l / 2] >> UInt8(4 * (l % 2))) & 0xF
                shiftedPoint(Int(q[4 * ib + l]) | (nibble & 7) << 8, d * Float(2 * s + 1),
                             nibble & 8 != 0 ? -iq1Delta : iq1Delta, y + 32 * ib + 8 * l)
            }
        }
    }

    /// NVFP4: four unsigned E4M3 scales (one per 16 weights), then per 16 weights 8 bytes of E2M1 codes
    /// (low nibbles the first 8, high the next 8); x = ue4m3(s)·½·table[code], with `mxfp4Values`' doubled
    /// table (gguf-py's `NVFP4`; codes 0 and 0x7F of a scale read as 0).
    static func nvfp4(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let q = b.assumingMemoryBound(to: UInt8.self)
        for s in 0..<4 {
            let d = ue4m3(q[s])
            for j in 0..<8 {
                let c = q[4 + 8 * s + j]
                y[16 * s + j] = d * mxfp4Values[Int(c & 0xF)]
                y[16 * s + j + 8] = d * mxfp4Values[Int(c >> 4)]
            }
        }
    }

    /// An unsigned E4M3 byte (bias 7; bit 7 unused) halved, as NVFP4's scale: every step is exact.
    @inline(__always) static func ue4m3(_ x: UInt8) -> Float {
        if x == 0 || x == 0x7F { return 0 }
        let e = Int((x >> 3) & 0xF), m = Float(x & 7)
        let v = e == 0 ? m * 0x1p-9 : (1 + m / 8) * Float(sign: .plus, exponent: e - 7, significand: 1)
        return v * 0.5
    }
}
