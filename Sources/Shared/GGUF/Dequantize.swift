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
        case .q8_1, .q2_K, .q3_K, .q8_K: y.update(repeating: .nan, count: n)  // rejected by canDequantize
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
}
