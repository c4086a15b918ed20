// Dequantization of GGML blocks to float32, one function per type (layouts of ggml-common.h).
// `src` must hold the bytes of `count` elements (GGUFFile checks this; a short source gives NaNs).
import Support

@inline(__always) func f16(_ p: UnsafeRawPointer, _ o: Int) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
}

public enum Dequantize {
    public static func run(_ type: GGMLType, from src: UnsafeRawBufferPointer, into y: UnsafeMutablePointer<Float>, count n: Int) {
        guard n > 0 else { return }
        // A short or partial-block source is a caller bug; NaNs make it visible instead of reading past the end.
        guard let p = src.baseAddress, let need = type.byteCount(elements: n), src.count >= need else {
            y.update(repeating: .nan, count: n)
            return
        }
        let blocks = n / type.blockSize
        switch type {
        // Raw copy: with `general.alignment` 1 or 2 the source need not be 4-byte aligned.
        case .f32: UnsafeMutableRawPointer(y).copyMemory(from: p, byteCount: 4 * n)
        case .f16: for i in 0..<n { y[i] = f16(p, 2 * i) }
        case .bf16:
            for i in 0..<n { y[i] = Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
        case .q8_0: for b in 0..<blocks { q8_0(p + 34 * b, y + 32 * b) }
        case .q4_0: for b in 0..<blocks { q4_0(p + 18 * b, y + 32 * b) }
        case .q4_1: for b in 0..<blocks { q4_1(p + 20 * b, y + 32 * b) }
        case .q5_0: for b in 0..<blocks { q5_0(p + 22 * b, y + 32 * b) }
        case .q5_1: for b in 0..<blocks { q5_1(p + 24 * b, y + 32 * b) }
        case .q4_K: for b in 0..<blocks { q4_K(p + 144 * b, y + 256 * b) }
        case .q5_K: for b in 0..<blocks { q5_K(p + 176 * b, y + 256 * b) }
        case .q6_K: for b in 0..<blocks { q6_K(p + 210 * b, y + 256 * b) }
        case .q2_K: for b in 0..<blocks { q2_K(p + 84 * b, y + 256 * b) }
        case .q3_K: for b in 0..<blocks { q3_K(p + 110 * b, y + 256 * b) }
        case .iq4_nl: for b in 0..<blocks { iq4_nl(p + 18 * b, y + 32 * b) }
        case .iq4_xs: for b in 0..<blocks { iq4_xs(p + 136 * b, y + 256 * b) }
        case .tq1_0: for b in 0..<blocks { tq1_0(p + 54 * b, y + 256 * b) }
        case .tq2_0: for b in 0..<blocks { tq2_0(p + 66 * b, y + 256 * b) }
        case .mxfp4: for b in 0..<blocks { mxfp4(p + 17 * b, y + 32 * b) }
        case .iq2_xxs: for b in 0..<blocks { iq2_xxs(p + 66 * b, y + 256 * b) }
        case .iq2_xs: for b in 0..<blocks { iq2_xs(p + 74 * b, y + 256 * b) }
        case .iq2_s: for b in 0..<blocks { iq2_s(p + 82 * b, y + 256 * b) }
        case .iq3_xxs: for b in 0..<blocks { iq3_xxs(p + 98 * b, y + 256 * b) }
        case .iq3_s: for b in 0..<blocks { iq3_s(p + 110 * b, y + 256 * b) }
        case .iq1_s: for b in 0..<blocks { iq1_s(p + 50 * b, y + 256 * b) }
        case .iq1_m: for b in 0..<blocks { iq1_m(p + 56 * b, y + 256 * b) }
        case .nvfp4: for b in 0..<blocks { nvfp4(p + 36 * b, y + 64 * b) }
        case .q1_0: for b in 0..<blocks { q1_0(p + 18 * b, y + 128 * b) }
        case .f64: for i in 0..<n { y[i] = Float(p.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        default: y.update(repeating: .nan, count: n)  // rejected by canDequantize
        }
    }

    /// Q8_0: f16 d, int8 q[32]; x = d·q.
    static func q8_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        let q = (b + 2).assumingMemoryBound(to: Int8.self)
        for j in 0..<32 { y[j] = d * Float(q[j]) }
    }

    /// Q4_0: f16 d, 16 bytes of nibbles (low = elements 0–15, high = 16–31); x = d·(q − 8).
    static func q4_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        let q = (b + 2).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            y[j] = d * Float(Int(q[j] & 0xF) - 8)
            y[j + 16] = d * Float(Int(q[j] >> 4) - 8)
        }
    }

    /// Q4_1: f16 d, f16 m, 16 bytes of nibbles; x = d·q + m.
    static func q4_1(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0), m = f16(b, 2)
        let q = (b + 4).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            y[j] = d * Float(q[j] & 0xF) + m
            y[j + 16] = d * Float(q[j] >> 4) + m
        }
    }

    /// Q5_0: f16 d, u32 high bits, 16 bytes of nibbles; x = d·(q − 16).
    static func q5_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        let qh = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        let q = (b + 6).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            let h0 = Int((qh >> UInt32(j)) << 4) & 0x10
            let h1 = Int(qh >> UInt32(j + 12)) & 0x10
            y[j] = d * Float((Int(q[j] & 0xF) | h0) - 16)
            y[j + 16] = d * Float((Int(q[j] >> 4) | h1) - 16)
        }
    }

    /// Q5_1: f16 d, f16 m, u32 high bits, 16 bytes of nibbles; x = d·q + m.
    static func q5_1(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0), m = f16(b, 2)
        let qh = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let q = (b + 8).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            let h0 = Int((qh >> UInt32(j)) << 4) & 0x10
            let h1 = Int(qh >> UInt32(j + 12)) & 0x10
            y[j] = d * Float(Int(q[j] & 0xF) | h0) + m
            y[j + 16] = d * Float(Int(q[j] >> 4) | h1) + m
        }
    }

    /// 6-bit scale and min of sub-block `j` packed in the 12 scale bytes of Q4_K / Q5_K.
    @inline(__always) static func scaleMin(_ j: Int, _ s: UnsafePointer<UInt8>) -> (Float, Float) {
        if j < 4 { return (Float(s[j] & 63), Float(s[j + 4] & 63)) }
        return (Float((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4)), Float((s[j + 4] >> 4) | ((s[j] >> 6) << 4)))
    }

    /// Q4_K: f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles; 8 sub-blocks of 32.
    static func q4_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0), dmin = f16(b, 2)
        let sc = (b + 4).assumingMemoryBound(to: UInt8.self)
        let q = (b + 16).assumingMemoryBound(to: UInt8.self)
        for g in 0..<4 {
            let (s1, m1) = scaleMin(2 * g, sc), (s2, m2) = scaleMin(2 * g + 1, sc)
            let d1 = d * s1, n1 = dmin * m1, d2 = d * s2, n2 = dmin * m2
            let qq = q + 32 * g, yy = y + 64 * g
            for l in 0..<32 {
                yy[l] = d1 * Float(qq[l] & 0xF) - n1
                yy[l + 32] = d2 * Float(qq[l] >> 4) - n2
            }
        }
    }

    /// Q5_K: f16 d, f16 dmin, 12 scale bytes, 32 bytes of high bits, 128 bytes of nibbles.
    static func q5_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0), dmin = f16(b, 2)
        let sc = (b + 4).assumingMemoryBound(to: UInt8.self)
        let qh = (b + 16).assumingMemoryBound(to: UInt8.self)
        let ql = (b + 48).assumingMemoryBound(to: UInt8.self)
        for g in 0..<4 {
            let (s1, m1) = scaleMin(2 * g, sc), (s2, m2) = scaleMin(2 * g + 1, sc)
            let d1 = d * s1, n1 = dmin * m1, d2 = d * s2, n2 = dmin * m2
            let u1 = UInt8(1) << UInt8(2 * g), u2 = UInt8(2) << UInt8(2 * g)
            let qq = ql + 32 * g, yy = y + 64 * g
            for l in 0..<32 {
                yy[l] = d1 * Float(Int(qq[l] & 0xF) + (qh[l] & u1 != 0 ? 16 : 0)) - n1
                yy[l + 32] = d2 * Float(Int(qq[l] >> 4) + (qh[l] & u2 != 0 ? 16 : 0)) - n2
            }
        }
    }

    /// Q6_K: 128 bytes low nibbles, 64 bytes high 2-bit pairs, 16 int8 scales, f16 d; x = d·sc·(q − 32).
    static func q6_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 208)
        for half in 0..<2 {
            let ql = (b + 64 * half).assumingMemoryBound(to: UInt8.self)
            let qh = (b + 128 + 32 * half).assumingMemoryBound(to: UInt8.self)
            let sc = (b + 192 + 8 * half).assumingMemoryBound(to: Int8.self)
            let yy = y + 128 * half
            for l in 0..<32 {
                let s = l / 16
                let q1 = Int((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32
                let q2 = Int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32
                let q3 = Int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32
                let q4 = Int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32
                yy[l] = d * Float(sc[s]) * Float(q1)
                yy[l + 32] = d * Float(sc[s + 2]) * Float(q2)
                yy[l + 64] = d * Float(sc[s + 4]) * Float(q3)
                yy[l + 96] = d * Float(sc[s + 6]) * Float(q4)
            }
        }
    }

    // ---- the lower-bit K-quants and the table formats. Each computes what gguf-py's numpy
    // dequantizer computes, in the same order (its products and differences, no fused multiply-add),
    // so the results agree bit for bit (GGUFReferenceTests).

    /// Q2_K: 16 scale bytes (low nibble scale, high nibble min of each 16 weights), 64 bytes of 2-bit q,
    /// f16 d, f16 dmin; weight e (e = 128·j + 32·s + m) is bits 2s… of byte 32·j + m; x = d·sc·q − dmin·mn.
    static func q2_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 80), dmin = f16(b, 82)
        let sc = b.assumingMemoryBound(to: UInt8.self)
        let q = (b + 16).assumingMemoryBound(to: UInt8.self)
        for i in 0..<16 {  // the 16 weights of scale i: e = 16·i + l
            let dl = d * Float(sc[i] & 0xF), ml = dmin * Float(sc[i] >> 4)
            let bytes = q + 32 * (i / 8) + 16 * (i % 2), shift = UInt8(2 * ((i / 2) % 4))
            for l in 0..<16 { y[16 * i + l] = dl * Float((bytes[l] >> shift) & 3) - ml }
        }
    }

    /// Q3_K: 32 bytes of high bits (weight e = 32·i + m: bit i of byte m), 64 bytes of 2-bit low parts
    /// (as Q2_K's), 12 bytes of sixteen 6-bit scales (biased by 32), f16 d; q = low − 4 where the high
    /// bit is clear; x = d·(sc − 32)·q.
    static func q3_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 108)
        let hm = b.assumingMemoryBound(to: UInt8.self)
        let q = (b + 32).assumingMemoryBound(to: UInt8.self)
        let sc = (b + 96).assumingMemoryBound(to: UInt8.self)
        for i in 0..<16 {  // the 16 weights of scale i: e = 16·i + l
            let low = (sc[i % 8] >> UInt8(4 * (i / 8))) & 0xF
            let high = (sc[8 + i % 4] >> UInt8(2 * (i / 4))) & 3
            let dl = d * Float(Int(low | (high << 4)) - 32)
            let bytes = q + 32 * (i / 8) + 16 * (i % 2), shift = UInt8(2 * ((i / 2) % 4))
            let m0 = 16 * (i % 2), bit = UInt8(i / 2)
            for l in 0..<16 {
                let lowBits = Int((bytes[l] >> shift) & 3), highBit = Int((hm[m0 + l] >> bit) & 1)
                y[16 * i + l] = dl * Float(lowBits - 4 * (1 - highBit))
            }
        }
    }

    /// The 16 values of IQ4_NL's and IQ4_XS's 4-bit codes (ggml's `kvalues_iq4nl`).
    static let iq4Values: [Float] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

    /// IQ4_NL: f16 d, 16 bytes of codes (low nibbles weights 0–15, high 16–31); x = d·table[code].
    static func iq4_nl(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        let q = (b + 2).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            y[j] = d * iq4Values[Int(q[j] & 0xF)]
            y[j + 16] = d * iq4Values[Int(q[j] >> 4)]
        }
    }

    /// IQ4_XS: f16 d, u16 of the scales' high 2 bits, 4 bytes of their low nibbles, 8 blocks of 32 coded
    /// as IQ4_NL's; x = (d·(sc − 32))·table[code].
    static func iq4_xs(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        let high = UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        let low = (b + 4).assumingMemoryBound(to: UInt8.self)
        let q = (b + 8).assumingMemoryBound(to: UInt8.self)
        for ib in 0..<8 {
            let s = (low[ib / 2] >> UInt8(4 * (ib % 2))) & 0xF | UInt8((high >> UInt16(2 * ib)) & 3) << 4
            let dl = d * Float(Int(s) - 32)
            for m in 0..<16 {
                y[32 * ib + m] = dl * iq4Values[Int(q[16 * ib + m] & 0xF)]
                y[32 * ib + m + 16] = dl * iq4Values[Int(q[16 * ib + m] >> 4)]
            }
        }
    }

    /// A trit packed base 3 in a byte scaled by 256/243: trit k of byte v is ((v·3^k mod 256)·3) >> 8.
    @inline(__always) static func trit(_ v: UInt8, _ pow3: UInt8) -> Float {
        Float(Int((UInt16(v &* pow3) * 3) >> 8) - 1)
    }

    /// TQ1_0 (ternary): 48 bytes of 5 trits (weights 0–159 from bytes 0–31, 160–239 from 32–47, trit k
    /// of a byte at k·32 resp. k·16), 4 bytes of 4 trits (weights 240–255), f16 d; x = d·(trit − 1).
    static func tq1_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 52)
        let q = b.assumingMemoryBound(to: UInt8.self)
        var pow3: UInt8 = 1
        for k in 0..<5 {
            defer { pow3 &*= 3 }
            for m in 0..<32 { y[32 * k + m] = d * trit(q[m], pow3) }
            for m in 0..<16 { y[160 + 16 * k + m] = d * trit(q[32 + m], pow3) }
            if k < 4 { for m in 0..<4 { y[240 + 4 * k + m] = d * trit(q[48 + m], pow3) } }
        }
    }

    /// TQ2_0 (ternary): 64 bytes of 2-bit codes (weight 128·j + 32·s + m: bits 2s… of byte 32·j + m), f16 d;
    /// x = d·(code − 1).
    static func tq2_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 64)
        let q = b.assumingMemoryBound(to: UInt8.self)
        for e in 0..<256 {
            let code = (q[32 * (e / 128) + e % 32] >> UInt8(2 * ((e / 32) % 4))) & 3
            y[e] = d * Float(Int(code) - 1)
        }
    }

    /// Q1_0 (1 bit a weight): f16 d, 16 bytes of signs (weight j: bit j % 8 of byte j / 8); x = d where
    /// the bit is set, −d where it is clear (ggml's `dequantize_row_q1_0`).
    static func q1_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(b, 0)
        let q = (b + 2).assumingMemoryBound(to: UInt8.self)
        for j in 0..<128 { y[j] = (q[j >> 3] >> UInt8(j & 7)) & 1 != 0 ? d : -d }
    }

    /// E2M1 values doubled (ggml's `kvalues_mxfp4`), halved back by the scale below.
    static let mxfp4Values: [Float] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12]

    /// MXFP4: an E8M0 exponent e, 16 bytes of E2M1 codes (low nibbles weights 0–15, high 16–31);
    /// x = 2^(e − 128)·table[code] (ggml's `ggml_e8m0_to_fp32_half`; e < 2 gives a subnormal scale).
    static func mxfp4(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let e = b.load(as: UInt8.self)
        let d = Float(bitPattern: e < 2 ? UInt32(0x0020_0000) << UInt32(e) : UInt32(e - 1) << 23)
        let q = (b + 1).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            y[j] = d * mxfp4Values[Int(q[j] & 0xF)]
            y[j + 16] = d * mxfp4Values[Int(q[j] >> 4)]
        }
    }
}
