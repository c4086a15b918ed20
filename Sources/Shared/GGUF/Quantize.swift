// Encoding float32 tensors into the GGML types the writer produces. The quantizers reproduce
// ggml's reference quantizers (`quantize_row_q8_0_ref`, `quantize_row_q4_1_ref` in ggml-quants.c)
// bit for bit, so a tensor we re-encode is what llama.cpp's own tools would have written; the tests
// check this against the `gguf` Python package's port of them.
import Support

/// The element types `GGUFWriter` can encode from float32. Other types can only be copied as raw bytes.
public enum TensorEncoding: String, Sendable, CaseIterable, CustomStringConvertible {
    case f32, f16, bf16, q8_0, q4_1

    public var ggmlType: GGMLType {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .q8_0: .q8_0
        case .q4_1: .q4_1
        }
    }

    public var description: String { ggmlType.description }
}

public enum Quantize {
    /// Encodes `x` as `encoding`; nil when `x.count` is not a whole number of blocks.
    /// Never traps: non-finite inputs give finite quantized codes (their scale may be inf or NaN).
    public static func run(_ x: [Float], as encoding: TensorEncoding) -> [UInt8]? {
        let type = encoding.ggmlType
        guard let n = type.byteCount(elements: x.count) else { return nil }
        var out = [UInt8](repeating: 0, count: n)
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBytes { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                switch encoding {
                case .f32: d.copyMemory(from: s, byteCount: 4 * x.count)
                case .f16: for i in 0..<x.count { store16(Float16(s[i]).bitPattern, d, 2 * i) }
                case .bf16: for i in 0..<x.count { store16(bf16Bits(s[i]), d, 2 * i) }
                case .q8_0: for b in 0..<x.count / 32 { q8_0(s + 32 * b, d + 34 * b) }
                case .q4_1: for b in 0..<x.count / 32 { q4_1(s + 32 * b, d + 20 * b) }
                }
            }
        }
        return out
    }

    @inline(__always) static func store16(_ v: UInt16, _ p: UnsafeMutableRawPointer, _ o: Int) {
        p.storeBytes(of: v.littleEndian, toByteOffset: o, as: UInt16.self)
    }

    /// Round-to-nearest-even truncation of float32 to bfloat16, as ggml's `ggml_compute_fp32_to_bf16`
    /// (NaN is kept a quiet NaN rather than rounded into infinity).
    static func bf16Bits(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: (u >> 16) | 64) }
        return UInt16(truncatingIfNeeded: (u &+ (0x7FFF &+ ((u >> 16) & 1))) >> 16)
    }

    /// A quantized code from a float already scaled into the code range; NaN maps to `lo`.
    @inline(__always) static func code(_ v: Float, _ lo: Float, _ hi: Float) -> Float {
        v.isNaN ? lo : min(max(v, lo), hi)
    }

    /// Q8_0: d = amax/127 (stored as f16), q = round(x/d) with round-half-away-from-zero as C's roundf.
    /// As in ggml the codes use the float32 d, not the f16-rounded one.
    static func q8_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        store16(Float16(d).bitPattern, y, 0)
        for j in 0..<32 {
            let q = code((x[j] * id).rounded(.toNearestOrAwayFromZero), -127, 127)
            y.storeBytes(of: Int8(q), toByteOffset: 2 + j, as: Int8.self)
        }
    }

    /// Q4_1: d = (max − min)/15, m = min (both f16), q = min(15, trunc((x − min)/d + 0.5));
    /// element j goes to the low nibble of byte j, element j + 16 to its high nibble.
    static func q4_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for j in 0..<32 { lo = min(lo, x[j]); hi = max(hi, x[j]) }
        let d = (hi - lo) / 15
        let id: Float = d != 0 ? 1 / d : 0
        store16(Float16(d).bitPattern, y, 0)
        store16(Float16(lo).bitPattern, y, 2)
        for j in 0..<16 {
            let q0 = UInt8(code(((x[j] - lo) * id + 0.5).rounded(.towardZero), 0, 15))
            let q1 = UInt8(code(((x[j + 16] - lo) * id + 0.5).rounded(.towardZero), 0, 15))
            y.storeBytes(of: q0 | (q1 << 4), toByteOffset: 4 + j, as: UInt8.self)
        }
    }
}
