// Small-batch linear layers read straight from GGML-quantized weights, float32 activations.
// Why: for a few tokens, dequantized float32 weights make y = x·Wᵀ memory-bound (4 bytes a weight,
// plus OpenBLAS packing W on every call); Q4_1 holds 0.625 bytes a weight and Q8_0 1.06. The C
// kernels (Sources/CQuantKernels) dequantize each block in registers exactly as `Dequantize` does,
// so results match dequantize + sgemm up to summation order; activations are never quantized.
// Shapes: x[T × in], W[out × in] (GGUF layout), y[T × out], row-major.
import CBLAS
import CQuantKernels
import Dispatch

/// A read-only view of a quantized weight matrix [rows (out) × cols (in)] in GGUF block layout.
/// The bytes must outlive the view (for a model: the memory-mapped `GGUFFile`).
public struct QuantizedMatrix: @unchecked Sendable {
    public enum Format: Sendable { case q4_1, q8_0 }
    public let format: Format
    public let rows: Int
    public let cols: Int
    public let bytes: UnsafeRawBufferPointer

    /// nil when no kernel reads `type`, `cols` is not a whole number of blocks, or the bytes are short.
    public init?(type: GGMLType, bytes: UnsafeRawBufferPointer, rows: Int, cols: Int) {
        switch type {
        case .q4_1: format = .q4_1
        case .q8_0: format = .q8_0
        default: return nil
        }
        guard rows > 0, cols > 0, cols % type.blockSize == 0, bytes.baseAddress != nil,
              let need = type.byteCount(elements: rows * cols), bytes.count >= need else { return nil }
        self.rows = rows; self.cols = cols; self.bytes = bytes
    }
}

public enum QuantizedLinear {
    /// Instruction sets the kernels are built for.
    public enum ISA: Int, Sendable, CaseIterable { case avx2 = 1, avx512 = 2 }

    /// The best ISA of this CPU, or nil where no kernel runs (callers then use `BLAS.linear`).
    public static let bestISA: ISA? = ISA(rawValue: Int(qk_best_isa().rawValue))

    /// Token rows up to which the kernel beats float32 sgemm. Measured per T on the model's shapes
    /// (576→1536, 1536→576, 576→192, Q4_1; 576→49152, Q8_0), one thread: at T = 16 the kernel is
    /// still 1.3-2× faster; the two meet near T = 24-32.
    public static let maxRows = 16

    /// Multiply-adds (T·out·in) per thread below which splitting costs more than it saves.
    static let minParallelWork = 1 << 18

    /// y[T × out] (+)= x[T × in] · Wᵀ, split over up to `threads` threads by output rows (default:
    /// the thread count OpenBLAS was given, so one setting governs the process). Returns false and
    /// writes nothing when `isa` is nil or not supported by this CPU.
    @discardableResult
    public static func run(_ x: UnsafePointer<Float>, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>,
                           rows t: Int, accumulate: Bool = false, threads: Int? = nil, isa: ISA? = bestISA) -> Bool {
        guard let isa, isa.rawValue <= (bestISA?.rawValue ?? 0) else { return false }
        // An empty row range checks the arguments, so the threads below cannot fail half-way.
        guard t > 0, range(x, w, y, t, 0, 0, accumulate, isa) else { return t == 0 }
        let n = min(max(1, threads ?? Int(openblas_get_num_threads())),
                    max(1, t * w.rows * w.cols / minParallelWork), max(1, w.rows / 2))
        if n == 1 { return range(x, w, y, t, 0, w.rows, accumulate, isa) }
        let chunk = ((w.rows + n - 1) / n + 1) & ~1  // even: the kernel pairs output rows
        DispatchQueue.concurrentPerform(iterations: n) { i in
            _ = range(x, w, y, t, min(w.rows, i * chunk), min(w.rows, (i + 1) * chunk), accumulate, isa)
        }
        return true
    }

    /// Output rows [o0, o1) on the calling thread.
    private static func range(_ x: UnsafePointer<Float>, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>,
                              _ t: Int, _ o0: Int, _ o1: Int, _ accumulate: Bool, _ isa: ISA) -> Bool {
        let kernel = w.format == .q4_1 ? qk_linear_q4_1 : qk_linear_q8_0
        return kernel(qk_isa(rawValue: UInt32(isa.rawValue)), x, Int64(t), Int64(w.cols), w.bytes.baseAddress,
                      y, Int64(w.rows), Int64(o0), Int64(o1), accumulate ? 1 : 0) == 0
    }
}
