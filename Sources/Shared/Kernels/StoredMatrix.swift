// A weight matrix as the GGUF stores it, multiplied by dequantizing it a panel at a time: what a model
// loaded with lean weights (`WeightResidency.lean`, LlamaWeights) keeps instead of a float32 copy. A
// product of many token rows dequantizes a panel of the matrix into scratch memory and hands it to
// sgemm, so memory holds the file (mapped) and one panel per product in flight, not 4 bytes a weight.
// The forward splits the matrix by output rows and the backward by input columns, so every output
// element is still one sgemm's sum over the whole inner dimension.
import GGUF
import CQuantKernels
import Foundation

public struct StoredMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    /// The matrix's bytes: `rows` rows of `rowBytes`, e.g. a view into the memory-mapped file.
    public let bytes: UnsafeRawBufferPointer
    public let rowBytes: Int

    /// nil when Dequantize cannot read `type`, `cols` is not a whole number of blocks or the bytes are short.
    public init?(type: GGMLType, bytes: UnsafeRawBufferPointer, rows: Int, cols: Int) {
        guard type.canDequantize, rows > 0, cols > 0, bytes.baseAddress != nil,
              let rb = type.byteCount(elements: cols), rows.multipliedReportingOverflow(by: rb).overflow == false,
              bytes.count >= rows * rb else { return nil }
        self.type = type; self.rows = rows; self.cols = cols; self.bytes = bytes; rowBytes = rb
    }

    /// Rows `r` of this matrix (a fused matrix's part).
    public func rows(_ r: Range<Int>) -> StoredMatrix {
        precondition(r.lowerBound >= 0 && r.upperBound <= rows && !r.isEmpty, "StoredMatrix.rows: \(r) of \(rows)")
        return StoredMatrix(type: type, bytes: UnsafeRawBufferPointer(rebasing: bytes[(r.lowerBound * rowBytes)..<(r.upperBound * rowBytes)]),
                            rows: r.count, cols: cols)!
    }

    /// Floats a panel holds at most (16 MB): small enough that products in flight on every thread
    /// stay far below a float32 copy of the model, large enough that sgemm sees wide panels.
    public static let panelFloats = 1 << 22

    /// Columns a backward panel holds at least, past `panelFloats` where the matrix is tall (an LM head:
    /// Qwen's 151,936 rows make a 78 MB panel): each panel's sgemm packs all of dy again. Measured on
    /// Qwen's 151,936 × 896 embedding, T = 40, the panels' memory reused (2 threads, ms; sgemm on the
    /// float32 copy 92–106): 32 columns 270, 64 213, 128 149, 256 152. A K-quant's block is 256 columns,
    /// so a tall K-quant matrix's panel is larger still (a Llama 3 Q6_K head, 128,256 rows: 131 MB).
    public static let minBackwardColumns = 128

    /// Rows `r`, columns `c` (whole blocks; all by default) into y, row i at y + i·ldy: the values
    /// `Dequantize.run` gives, with the C dequantizers where they read the type (the same bits).
    public func dequantize(rows r: Range<Int>, cols c: Range<Int>? = nil, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        let c = c ?? 0..<cols, bs = type.blockSize
        precondition(r.lowerBound >= 0 && r.upperBound <= rows && c.lowerBound >= 0 && c.upperBound <= cols
                     && c.lowerBound % bs == 0 && c.count % bs == 0, "StoredMatrix.dequantize: rows \(r), cols \(c) of \(rows) × \(cols)")
        let offset = c.lowerBound / bs * type.blockBytes, runBytes = c.count / bs * type.blockBytes
        // The C dequantizers walk blocks of `kernelBlock` weights (32 for F16 / BF16, whose type block is 1).
        let fast = QuantizedMatrix.Format(type).flatMap { f -> (qk_format, qk_isa, Int)? in
            guard let isa = QuantizedLinear.bestISA, c.lowerBound % f.kernelBlock == 0, c.count % f.kernelBlock == 0 else { return nil }
            return (f.c, qk_isa(rawValue: UInt32(isa.rawValue)), c.count / f.kernelBlock)
        }
        /// Rows [a, b): one C call over them all (a column panel's rows hold a block or two each), else row by row.
        func run(_ a: Int, _ b: Int) {
            let src = bytes.baseAddress! + offset
            if let (f, isa, blocks) = fast, qk_dequantize_rows(f, isa, src + a * rowBytes, Int64(rowBytes), Int64(b - a), Int64(blocks),
                                                               y + (a - r.lowerBound) * ldy, Int64(ldy)) == 0 { return }
            for i in a..<b {
                Dequantize.run(type, from: UnsafeRawBufferPointer(start: src + i * rowBytes, count: runBytes),
                               into: y + (i - r.lowerBound) * ldy, count: c.count)
            }
        }
        let threads = min(BLAS.configuredThreads, max(1, r.count * c.count / (1 << 16)))
        guard threads > 1 else { run(r.lowerBound, r.upperBound); return }
        DispatchQueue.concurrentPerform(iterations: threads) { k in
            run(r.lowerBound + r.count * k / threads, r.lowerBound + r.count * (k + 1) / threads)
        }
    }

    /// y[T × rows] (+)= x[T × cols] · Wᵀ: panels of output rows, each dequantized and multiplied.
    public func linear(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, tokens t: Int, accumulate: Bool = false) {
        guard t > 0 else { return }
        let step = max(1, min(rows, Self.panelFloats / cols))
        let panel = Self.takePanel(step * cols)
        defer { Self.givePanel(panel) }
        for r0 in stride(from: 0, to: rows, by: step) {
            let n = min(step, rows - r0)
            dequantize(rows: r0..<(r0 + n), into: panel.ptr, ldy: cols)
            BLAS.sgemm(transB: true, m: t, n: n, k: cols, a: x, lda: cols, b: panel.ptr, ldb: cols,
                       beta: accumulate ? 1 : 0, c: y + r0, ldc: rows)
        }
    }

    /// dx[T × cols] (+)= dy[T × rows] · W: panels of input columns (whole blocks), each dequantized over
    /// every row and multiplied.
    public func linearBackward(_ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, tokens t: Int,
                               accumulate: Bool = false) {
        guard t > 0 else { return }
        let bs = QuantizedMatrix.Format(type)?.kernelBlock ?? type.blockSize  // panels of whole kernel blocks
        let step = min(cols, max(Self.minBackwardColumns / bs * bs, bs, Self.panelFloats / rows / bs * bs))
        let panel = Self.takePanel(step * rows)  // more than panelFloats where one block's column is (an LM head's)
        defer { Self.givePanel(panel) }
        for c0 in stride(from: 0, to: cols, by: step) {
            let n = min(step, cols - c0)
            dequantize(rows: 0..<rows, cols: c0..<(c0 + n), into: panel.ptr, ldy: n)
            BLAS.sgemm(m: t, n: n, k: rows, a: dy, lda: rows, b: panel.ptr, ldb: n,
                       beta: accumulate ? 1 : 0, c: dx + c0, ldc: cols)
        }
    }

    // Panels are reused: a fresh 16 MB buffer per product cost page faults and the kernel's zeroing
    // of each page, every product. One panel per product in flight, kept for the process's life.
    private static let panelLock = NSLock()
    nonisolated(unsafe) private static var panels: [FloatBuffer] = []
    private static func takePanel(_ count: Int) -> FloatBuffer {
        let b = panelLock.withLock { panels.firstIndex { $0.count >= count }.map { panels.remove(at: $0) } }
        return b ?? FloatBuffer(count: max(count, panelFloats), zeroed: false)
    }
    private static func givePanel(_ b: FloatBuffer) { panelLock.withLock { panels.append(b) } }

    /// The whole matrix as float32 (a resident copy, e.g. of a matrix about to be edited).
    public func floats() -> FloatBuffer {
        let b = FloatBuffer(count: rows * cols, zeroed: false)
        dequantize(rows: 0..<rows, into: b.ptr, ldy: cols)
        return b
    }
}
