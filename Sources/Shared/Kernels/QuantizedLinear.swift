// Small-batch linear layers read straight from GGML-quantized weights, float32 activations.
// Why: for a few tokens, dequantized float32 weights make y = x·Wᵀ memory-bound (4 bytes a weight,
// plus OpenBLAS packing W on every call); the formats read here (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS, IQ1_S … IQ3_S, Q1_0) hold 0.14 (Q1_0) to 1.06 (Q8_0) bytes a weight. The C kernels (Sources/CQuantKernels) dequantize
// each block in registers exactly as `Dequantize` does, so results match dequantize + sgemm up to
// summation order; activations are never quantized, except by `runInt8` (8-bit activations, as llama.cpp:
// `Activations.int8`, which a command asks for explicitly).
// Shapes: x[T × in], W[out × in] (GGUF layout), y[T × out], row-major.
import GGUF
import CBLAS
import CQuantKernels
import Foundation

/// A read-only view of a quantized weight matrix [rows (out) × cols (in)] in GGUF block layout.
/// The bytes must outlive the view (for a model: the memory-mapped `GGUFFile`).
public struct QuantizedMatrix: @unchecked Sendable {
    /// The GGML formats with a kernel (the GGUF types of the same names).
    public enum Format: Sendable, CaseIterable {
        case q4_1, q8_0, q5_0, q4_K, q6_K, q4_0, q5_1, iq4_nl, q5_K, iq4_xs, q3_K, q2_K, f16, bf16
        case iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m, q1_0

        /// Weights per block as the kernels walk them: the type's block, or 32 for the unquantized halves
        /// (F16, BF16), whose rows must then hold a multiple of 32 weights.
        public var kernelBlock: Int { self == .f16 || self == .bf16 ? 32 : type.blockSize }

        /// The GGUF type of the same layout.
        public var type: GGMLType {
            switch self {
            case .q4_1: .q4_1
            case .q8_0: .q8_0
            case .q5_0: .q5_0
            case .q4_K: .q4_K
            case .q6_K: .q6_K
            case .q4_0: .q4_0
            case .q5_1: .q5_1
            case .iq4_nl: .iq4_nl
            case .q5_K: .q5_K
            case .iq4_xs: .iq4_xs
            case .q3_K: .q3_K
            case .q2_K: .q2_K
            case .f16: .f16
            case .bf16: .bf16
            case .iq2_xxs: .iq2_xxs
            case .iq2_xs: .iq2_xs
            case .iq2_s: .iq2_s
            case .iq3_xxs: .iq3_xxs
            case .iq3_s: .iq3_s
            case .iq1_s: .iq1_s
            case .iq1_m: .iq1_m
            case .q1_0: .q1_0
            }
        }

        /// The format read from `type`, nil when no kernel reads it.
        public init?(_ type: GGMLType) {
            guard let f = Self.allCases.first(where: { $0.type == type }) else { return nil }
            self = f
        }

        /// The C kernels' name for it.
        var c: qk_format {
            switch self {
            case .q4_1: QK_Q4_1
            case .q8_0: QK_Q8_0
            case .q5_0: QK_Q5_0
            case .q4_K: QK_Q4_K
            case .q6_K: QK_Q6_K
            case .q4_0: QK_Q4_0
            case .q5_1: QK_Q5_1
            case .iq4_nl: QK_IQ4_NL
            case .q5_K: QK_Q5_K
            case .iq4_xs: QK_IQ4_XS
            case .q3_K: QK_Q3_K
            case .q2_K: QK_Q2_K
            case .f16: QK_F16
            case .bf16: QK_BF16
            case .iq2_xxs: QK_IQ2_XXS
            case .iq2_xs: QK_IQ2_XS
            case .iq2_s: QK_IQ2_S
            case .iq3_xxs: QK_IQ3_XXS
            case .iq3_s: QK_IQ3_S
            case .iq1_s: QK_IQ1_S
            case .iq1_m: QK_IQ1_M
            case .q1_0: QK_Q1_0
            }
        }
    }
    public let format: Format
    public let rows: Int
    public let cols: Int
    public let bytes: UnsafeRawBufferPointer
    /// A Q4_1 matrix whose scales are float32 (`withFloatScales`): the same weights in 24-byte blocks.
    public let floatScales: Bool
    /// Bytes of a block of such a copy (quant_kernels.h, QK_Q4_1F): float32 d and m, Q4_1's 16 bytes of nibbles.
    static let floatScalesBlockBytes = 24

    /// The layout the C kernels read `bytes` as.
    var kernelFormat: qk_format { floatScales ? QK_Q4_1F : format.c }

    /// nil when no kernel reads `type`, `cols` is not a whole number of blocks, or the bytes are short.
    public init?(type: GGMLType, bytes: UnsafeRawBufferPointer, rows: Int, cols: Int) {
        guard let f = Format(type) else { return nil }
        format = f
        guard rows > 0, cols > 0, cols % f.kernelBlock == 0, bytes.baseAddress != nil,
              let need = type.byteCount(elements: rows * cols), bytes.count >= need else { return nil }
        self.rows = rows; self.cols = cols; self.bytes = bytes; floatScales = false
    }

    private init(format: Format, rows: Int, cols: Int, bytes: UnsafeRawBufferPointer, floatScales: Bool) {
        self.format = format; self.rows = rows; self.cols = cols; self.bytes = bytes; self.floatScales = floatScales
    }

    /// A Q4_1 matrix rewritten with its scales d and m as float32 into memory of its own
    /// (`qk_repack_q4_1_float_scales`: 24 bytes a block instead of 20): the same weights, so the same
    /// products bit for bit, float32 and int8, read without converting two halves a block
    /// (`QuantizedLinear.q4_1FloatScales` says when and what it gains). nil for the other formats.
    /// The copy lives as long as `storage`.
    public func withFloatScales() -> (matrix: QuantizedMatrix, storage: OwnedBytes)? {
        guard format == .q4_1, !floatScales else { return nil }
        let blocks = rows * cols / GGMLType.q4_1.blockSize
        let storage = OwnedBytes(count: blocks * Self.floatScalesBlockBytes)
        qk_repack_q4_1_float_scales(bytes.baseAddress, storage.bytes.baseAddress, Int64(blocks))
        return (QuantizedMatrix(format: .q4_1, rows: rows, cols: cols, bytes: UnsafeRawBufferPointer(storage.bytes), floatScales: true), storage)
    }

    /// A Q1_0 matrix (`bytes`, rows × cols) rewritten as Q4_0 into memory of its own
    /// (`qk_repack_q1_0_as_q4_0`): the same weights ±d as d·(q − 8), read by the Q4_0 kernels at 4.5 bits a
    /// weight instead of Q1_0's 1.125 (`q1_0AsQ4_0`, to compare). nil when the shape does not fit the bytes.
    /// The copy lives as long as `storage`.
    public static func q4_0Copy(ofQ1_0 bytes: UnsafeRawBufferPointer, rows: Int, cols: Int) -> (matrix: QuantizedMatrix, storage: OwnedBytes)? {
        guard rows > 0, cols > 0, let need = GGMLType.q1_0.byteCount(elements: rows * cols), bytes.count >= need,
              let src = bytes.baseAddress else { return nil }
        let blocks = rows * cols / GGMLType.q1_0.blockSize
        let storage = OwnedBytes(count: 4 * blocks * GGMLType.q4_0.blockBytes)
        qk_repack_q1_0_as_q4_0(src, storage.bytes.baseAddress, Int64(blocks))
        guard let m = QuantizedMatrix(type: .q4_0, bytes: UnsafeRawBufferPointer(storage.bytes), rows: rows, cols: cols) else { return nil }
        return (m, storage)
    }

    /// A Q5_0 matrix rewritten as Q8_0 into memory of its own (`qk_repack_q5_0_as_q8_0`): the same
    /// weights, so the same products bit for bit, read with Q8_0's cheaper unpacking at 34 bytes a
    /// block instead of 22. nil for the other formats. The copy lives as long as `storage`.
    public func asQ8_0() -> (matrix: QuantizedMatrix, storage: OwnedBytes)? {
        guard format == .q5_0 else { return nil }
        let blocks = rows * cols / GGMLType.q5_0.blockSize
        let storage = OwnedBytes(count: blocks * GGMLType.q8_0.blockBytes)
        qk_repack_q5_0_as_q8_0(bytes.baseAddress, storage.bytes.baseAddress, Int64(blocks))
        guard let m = QuantizedMatrix(type: .q8_0, bytes: UnsafeRawBufferPointer(storage.bytes), rows: rows, cols: cols) else { return nil }
        return (m, storage)
    }
}

/// Bytes allocated here and freed with this object (64-byte aligned).
public final class OwnedBytes: @unchecked Sendable {
    public let bytes: UnsafeMutableRawBufferPointer
    public init(count: Int) { bytes = .allocate(byteCount: max(1, count), alignment: 64) }
    deinit { bytes.deallocate() }
}

public enum QuantizedLinear {
    /// Instruction sets the kernels are built for.
    public enum ISA: Int, Sendable, CaseIterable { case avx2 = 1, avx512 = 2 }

    /// The best ISA of this CPU, or nil where no kernel runs (callers then use `BLAS.linear`).
    public static let bestISA: ISA? = ISA(rawValue: Int(qk_best_isa().rawValue))

    /// Token rows up to which the model uses the kernel rather than float32 sgemm. Measured on a whole
    /// SmolLM2 forward, one thread (kernel vs sgemm): T = 10 43 vs 114 ms, 16: 76 vs 136, 32: 123 vs
    /// 167, 48: 175 vs 205, 64: 235 vs 249, 128: 390 vs 352. The two meet near T = 64, where sgemm
    /// stops waiting on its 424 MB of float32 weights; 32 keeps a clear margin.
    public static let maxRows = 32

    /// Q1_0 matrices read from a Q4_0 copy (`QuantizedMatrix.q4_0Copy`, 4.5 bits a weight) instead of
    /// their own 1.125 bits: `ALPHAEDIT_Q1_0=q4` (to compare), else never.
    public static let q1_0AsQ4_0 = ProcessInfo.processInfo.environment["ALPHAEDIT_Q1_0"] == "q4"

    /// With the AVX2 kernels, the model's few-token products read Q5_0 matrices as Q8_0 (a copy,
    /// `QuantizedMatrix.asQ8_0`: the same weights, so the same bits): Q5_0's unpacking, not memory, is
    /// what they wait on. One row first (2026-12-05, Zen 4, 2 threads, AVX2, 3 pairs of invocations):
    /// Qwen's generation step 29.3 / 30.0 / 28.8 → 26.8 / 27.1 / 26.0 ms, Gemma's 12.7 / 12.7 / 12.8 →
    /// 11.8 / 12.2 / 12.8; memory +255 MB on Qwen. Several rows lost then (Qwen's 10-token forward 68.4 /
    /// 66.4 / 73.5 → 72.3 / 77.5 / 75.2), while a tile's x of Qwen's 896 inputs overflowed L1; since that
    /// x is read in chunks (quant_kernels.c, 2026-12-06) the copy wins at every token count (4,864 × 896
    /// from memory, 2 threads, GF/s Q5_0 → copy: T = 2 59 → 94, 4 98 → 125, 10 144 → 153, 16 143 → 161,
    /// 32 145 → 163; Qwen's profiled 10-token forward, gate and up 15.3 → 13.5 ms each). Not with AVX-512
    /// (its own Q5_0 unpacking; generation within noise, the memory for nothing).
    /// ALPHAEDIT_Q5_0=native turns it off (to compare); =q8 turns it on with either ISA.
    public static let q5_0AsQ8_0: Bool = {
        switch ProcessInfo.processInfo.environment["ALPHAEDIT_Q5_0"] {
        case "native": false
        case "q8": true
        default: bestISA == .avx2
        }
    }()

    /// The model's few-token products read Q4_1 matrices from a copy with float32 scales
    /// (`QuantizedMatrix.withFloatScales`: the same weights, so the same bits), where the stored f16 scales
    /// (a conversion and, with AVX-512, two shuffles a block) are what a one-token product waits on; +20 %
    /// of the Q4_1 bytes in memory (SmolLM2: 80 MB). Measured 2026-12-07 on the Intel Xeon (family 6,
    /// model 207), C harness, SmolLM2's gate and down shapes of 30 layers, weights in L3, 2 threads, best of
    /// 9, GFLOP/s stored → copy: AVX-512 T = 1 50.7 → 64.9, T = 10 198 → 207; AVX2 T = 1 33.7 → 39.3, T = 10
    /// 108 → 114. ALPHAEDIT_Q4_1=stored turns it off (to compare).
    public static let q4_1FloatScales = ProcessInfo.processInfo.environment["ALPHAEDIT_Q4_1"] != "stored"

    /// Token rows up to which `Activations.int8` products use the int8 kernels (more rows: float32 kernels).
    /// Measured 2026-12-06 on Zen 4 with the AVX2 kernels, one core, ms float32 → int8: Q5_0 4864 × 896
    /// T = 1 0.43 → 0.25, T = 2 0.77 → 0.63, T = 3 0.79 → 0.87, T = 4 0.67 → 0.66, T = 6 0.77 → 1.00,
    /// T = 10 1.25 → 1.70; Q4_K 896 × 4864 T = 1 0.35 → 0.18, T = 4 0.75 → 0.56, T = 10 1.16 → 1.43; Q6_K
    /// T = 1 0.40 → 0.30, T = 4 0.69 → 0.63, T = 10 1.26 → 1.62. Each token row of an int8 tile costs
    /// about 6 vector operations a block of 32 against the float32 tile's 4 FMAs once the block is
    /// dequantized, so the float32 kernels win once several rows share each dequantization.
    public static let int8MaxRows = 4
    // Products read Q5_0 from its Q8_0 copy where one exists (`q5_0AsQ8_0`: AVX2-only machines) under
    // int8 too: the copy's bytes need no unpacking. The same weights, 116,736 × 896 from
    // memory, one core of Zen 4 with the AVX2 kernels, int8: Q8_0 copy 4.96 / 5.10 ms, Q5_0 6.26 / 6.33;
    // two cores, where memory binds: 3.68 / 3.52 against 3.08 / 3.25 (float32 on the copy: 4.27 / 3.74).

    /// The int8 kernels `runInt8` uses by default, for `bench forward`: "avx512 + vnni", "avx512" or "avx2".
    public static var int8Kernels: String {
        guard let isa = bestISA else { return "none" }
        return isa == .avx2 ? "avx2" : qk_q8_uses_vnni(qk_isa(rawValue: UInt32(isa.rawValue))) != 0 ? "avx512 + vnni" : "avx512"
    }

    /// Whether an int8-activation kernel reads `format` (`runInt8`): every quantized one, not F16 or BF16.
    public static func int8Reads(_ format: QuantizedMatrix.Format) -> Bool { qk_q8_supports(format.c) != 0 }

    /// `run` on 8-bit activations (`Activations.int8`): each token row of x rounded to int8 in blocks
    /// of 32 (scale max|x| / 127), the weights multiplied as bytes, as llama.cpp does. Not the float32
    /// kernels' bits: x's rounding changes each product by up to ½ of its block's scale per activation.
    /// Returns false and writes nothing where no int8 kernel reads the format or the ISA is unsupported.
    @discardableResult
    public static func runInt8(_ x: UnsafePointer<Float>, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>,
                               rows t: Int, accumulate: Bool = false, threads: Int? = nil, isa: ISA? = bestISA) -> Bool {
        guard let isa, isa.rawValue <= (bestISA?.rawValue ?? 0), int8Reads(w.format) else { return false }
        let n = min(max(1, threads ?? defaultThreads), max(1, t * w.rows * w.cols / minParallelWork))
        return qk_linear_q8_parallel(w.kernelFormat, qk_isa(rawValue: UInt32(isa.rawValue)), x, Int64(t),
                                     Int64(w.cols), w.bytes.baseAddress, y, Int64(w.rows), accumulate ? 1 : 0, Int32(n)) == 0
    }

    /// Multiply-adds (T·out·in) per thread below which splitting costs more than it saves.
    static let minParallelWork = 1 << 16

    /// Threads a product uses by default: the process's BLAS setting (`BLAS.setThreads`), so one
    /// setting governs the process. A `BLAS.singleThreaded` section does not narrow it: these kernels
    /// split by output rows, so a row's result never depends on their thread count.
    public static var defaultThreads: Int { BLAS.configuredThreads }

    /// y[T × out] (+)= x[T × in] · Wᵀ, split by output rows over up to `threads` threads (default
    /// `defaultThreads`): the caller and persistent workers of the C kernels' pool (thread_pool.c
    /// says why not Dispatch). Returns false and writes nothing when `isa` is nil or unsupported here.
    @discardableResult
    public static func run(_ x: UnsafePointer<Float>, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>,
                           rows t: Int, accumulate: Bool = false, threads: Int? = nil, isa: ISA? = bestISA) -> Bool {
        guard let isa, isa.rawValue <= (bestISA?.rawValue ?? 0) else { return false }
        let n = min(max(1, threads ?? defaultThreads), max(1, t * w.rows * w.cols / minParallelWork))
        return qk_linear_parallel(w.kernelFormat, qk_isa(rawValue: UInt32(isa.rawValue)), x, Int64(t),
                                  Int64(w.cols), w.bytes.baseAddress, y, Int64(w.rows), accumulate ? 1 : 0, Int32(n)) == 0
    }
}
