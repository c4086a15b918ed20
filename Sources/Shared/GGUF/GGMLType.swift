// Tensor element types of GGML/GGUF and their block geometry.
// Raw values are the on-disk type ids of the GGUF spec (ggml.h `enum ggml_type`). Every id that
// gguf-py 0.19 knows is listed with its geometry, so a file holding a type we cannot dequantize still
// parses (and `inspect` lists it); loading such a tensor is an error that names the tensor and its type.
import Support

public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29
    case bf16 = 30
    case tq1_0 = 34, tq2_0 = 35, mxfp4 = 39, nvfp4 = 40, q1_0 = 41

    /// Elements per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .f64, .i8, .i16, .i32, .i64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl, .mxfp4: return 32
        case .nvfp4: return 64
        case .q1_0: return 128
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq2_xxs, .iq2_xs, .iq3_xxs, .iq1_s, .iq3_s, .iq2_s,
             .iq4_xs, .iq1_m, .tq1_0, .tq2_0: return 256
        }
    }

    /// Bytes per block (asserted against the block structs of ggml-common.h, through gguf-py's
    /// GGML_QUANT_SIZES, in the tests).
    public var blockBytes: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8: return 1
        case .f64, .i64: return 8
        case .q4_0: return 2 + 16          // d, 32 nibbles
        case .q4_1: return 2 + 2 + 16      // d, m, 32 nibbles
        case .q5_0: return 2 + 4 + 16      // d, qh, nibbles
        case .q5_1: return 2 + 2 + 4 + 16  // d, m, qh, nibbles
        case .q8_0: return 2 + 32          // d, 32 int8
        case .q8_1: return 2 + 2 + 32      // d, s, 32 int8
        case .q2_K: return 16 + 64 + 2 + 2  // scales, 2-bit q, d, dmin
        case .q3_K: return 32 + 64 + 12 + 2  // high bits, 2-bit q, 6-bit scales, d
        case .q4_K: return 2 + 2 + 12 + 128
        case .q5_K: return 2 + 2 + 12 + 32 + 128
        case .q6_K: return 128 + 64 + 16 + 2
        case .q8_K: return 4 + 256 + 32
        case .iq4_nl: return 2 + 16        // d, 32 nibbles indexing a 16-value table
        case .iq4_xs: return 2 + 2 + 4 + 128  // d, high scale bits, low scale bits, nibbles
        case .tq1_0: return 48 + 4 + 2     // 5 trits a byte, 4 trits a byte, d
        case .tq2_0: return 64 + 2         // 2-bit trits, d
        case .mxfp4: return 1 + 16         // E8M0 exponent, 32 E2M1 nibbles
        case .iq2_xxs: return 66
        case .iq2_xs: return 74
        case .iq3_xxs: return 98
        case .iq1_s: return 50
        case .iq3_s: return 110
        case .iq2_s: return 82
        case .iq1_m: return 56
        case .nvfp4: return 36
        case .q1_0: return 18
        }
    }

    /// Whether `dequantize` supports this type. Not: Q8_1 and Q8_K (activation formats, never in a
    /// model file) and the integer types. Q1_0 since 2026-12-07: llama.cpp's quantizer writes it, and
    /// ggml's own dequantizer checks ours (scripts/check-quant-files.py, scripts/ggml-dequantize.c).
    public var canDequantize: Bool {
        switch self {
        case .f32, .f16, .bf16, .f64, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K,
             .iq4_nl, .iq4_xs, .tq1_0, .tq2_0, .mxfp4, .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m,
             .nvfp4, .q1_0: return true
        default: return false
        }
    }

    /// Byte size of `count` elements; nil when `count` is not a whole number of blocks or overflows.
    public func byteCount(elements count: Int) -> Int? {
        guard count >= 0, count % blockSize == 0 else { return nil }
        let (r, o) = (count / blockSize).multipliedReportingOverflow(by: blockBytes)
        return o ? nil : r
    }

    /// The name ggml gives the type (gguf-py's GGMLQuantizationType names).
    public var description: String {
        switch self {
        case .f32: "F32"; case .f16: "F16"; case .bf16: "BF16"; case .f64: "F64"
        case .i8: "I8"; case .i16: "I16"; case .i32: "I32"; case .i64: "I64"
        case .q4_0: "Q4_0"; case .q4_1: "Q4_1"; case .q5_0: "Q5_0"; case .q5_1: "Q5_1"
        case .q8_0: "Q8_0"; case .q8_1: "Q8_1"; case .q2_K: "Q2_K"; case .q3_K: "Q3_K"
        case .q4_K: "Q4_K"; case .q5_K: "Q5_K"; case .q6_K: "Q6_K"; case .q8_K: "Q8_K"
        case .iq2_xxs: "IQ2_XXS"; case .iq2_xs: "IQ2_XS"; case .iq3_xxs: "IQ3_XXS"; case .iq1_s: "IQ1_S"
        case .iq4_nl: "IQ4_NL"; case .iq3_s: "IQ3_S"; case .iq2_s: "IQ2_S"; case .iq4_xs: "IQ4_XS"
        case .iq1_m: "IQ1_M"; case .tq1_0: "TQ1_0"; case .tq2_0: "TQ2_0"; case .mxfp4: "MXFP4"
        case .nvfp4: "NVFP4"; case .q1_0: "Q1_0"
        }
    }
}
