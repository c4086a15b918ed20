// The model's matrices as stored in the GGUF (Q4_1, Q8_0, Q5_0, Q4_K, Q6_K views into the memory-mapped file), used
// for forwards of a few tokens, where reading 0.6-1 byte a weight instead of 4 is what counts
// (see QuantizedLinear). Q5_0 matrices are read from Q8_0 copies of the same weights instead (`init`). The float32 copies in `LlamaWeights` stay the source of truth: large
// batches, backward passes and edits use them. An edited `ffn_down` no longer matches its stored
// bytes, so `markEdited(layer:)` retires that view for good.
import Support
import GGUF
import Tokenization
import Kernels

public final class QuantizedWeights: @unchecked Sendable {
    /// Views of one block's matrices; nil where the stored type has no kernel (float32 is used then).
    public struct Layer: Sendable {
        public let wq, wk, wv, wo, gate, up, down: QuantizedMatrix?
    }

    public let layers: [Layer]
    /// The LM head [V × C] (`output.weight`, or the token embedding when tied).
    public let lmHead: QuantizedMatrix?
    /// Off: every product runs on the float32 weights (comparisons, debugging).
    public var enabled: Bool
    private var downEdited: [Bool]
    /// The Q8_0 copies of the Q5_0 matrices (`init`), owned here.
    private let repacked: [UnsafeMutableRawBufferPointer]

    /// Views of the tensors `LlamaWeights` loaded (it has checked their presence and shapes already).
    /// The views point into `gguf`, which must outlive this object (`LlamaModel` holds both).
    ///
    /// Q5_0 matrices (Gemma 3's q, k, gate, up; Qwen2.5's q, k, o, gate, up) are read from Q8_0 copies
    /// of the same weights made here (`QuantizedMatrix.repackedAsQ8_0`: the same bits from every
    /// kernel), 0.375 more bytes a weight (Gemma + 23 MB, Qwen + 94 MB). Decoding Q8_0 is cheaper than
    /// gathering Q5_0's fifth bits, and the kernels wait on decoding rather than memory. Measured
    /// 2026-12-04, one core, in one process, weights read from memory (GFLOP/s, Q5_0 → Q8_0, AVX2 /
    /// AVX-512), T = 10: 2,048 × 640 74 → 83 / 74 → 83; 4,864 × 896 66 → 75 (x chunked, quant_kernels.c)
    /// / 74 → 70; 2,048 × 1,024 53 → 54 / 66 → 61; 640 × 2,048 57 → 57 / 59 → 63. T = 1: 151,936 × 896
    /// 20.5 → 23.0 / 18.6 → 34.6, 262,144 × 640 20.5 → 30.4 / 18.6 → 28.2. AVX-512 loses up to 8 % at
    /// T = 10 from 896 inputs on and gains 86 % at T = 1 (every generation step): copies everywhere.
    public init(gguf: GGUFFile, config c: LlamaConfig) {
        var owned: [UnsafeMutableRawBufferPointer] = []
        func view(_ name: String, rows: Int, cols: Int) -> QuantizedMatrix? {
            guard QuantizedLinear.bestISA != nil, let info = gguf.tensorInfo(name),
                  info.dims == [cols, rows],
                  let m = QuantizedMatrix(type: info.type, bytes: gguf.rawBytes(info), rows: rows, cols: cols) else { return nil }
            guard m.format == .q5_0 else { return m }
            let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: m.q8_0ByteCount, alignment: 64)
            guard let q8 = m.repackedAsQ8_0(into: storage) else { storage.deallocate(); return m }
            owned.append(storage)
            return q8
        }
        layers = (0..<c.layers).map { l in
            Layer(wq: view(GGUFNames.attnQ(l), rows: c.qDim, cols: c.hidden),
                  wk: view(GGUFNames.attnK(l), rows: c.kvDim, cols: c.hidden),
                  wv: view(GGUFNames.attnV(l), rows: c.kvDim, cols: c.hidden),
                  wo: view(GGUFNames.attnOutput(l), rows: c.hidden, cols: c.qDim),
                  gate: view(GGUFNames.ffnGate(l), rows: c.ffn, cols: c.hidden),
                  up: view(GGUFNames.ffnUp(l), rows: c.ffn, cols: c.hidden),
                  down: view(GGUFNames.ffnDown(l), rows: c.hidden, cols: c.ffn))
        }
        lmHead = view(c.tiedEmbeddings ? GGUFNames.tokenEmbd : GGUFNames.output, rows: c.vocab, cols: c.hidden)
        enabled = true
        downEdited = Array(repeating: false, count: c.layers)
        repacked = owned
    }

    deinit { repacked.forEach { $0.deallocate() } }

    /// Call after changing `LlamaWeights.layers[layer].down` in place: that layer's products then
    /// always use the float32 matrix. Not undone by restoring the weights (float32 stays correct).
    /// Like the edit itself, not concurrently with a forward of this model.
    public func markEdited(layer: Int) throws {
        guard downEdited.indices.contains(layer) else { throw ModelError.layerOutOfRange(layer, layers: downEdited.count) }
        downEdited[layer] = true
    }

    public func isEdited(layer: Int) -> Bool { downEdited.indices.contains(layer) && downEdited[layer] }

    /// The view to use for a product of `rows` tokens, or nil for float32 BLAS.
    @inline(__always) func use(_ m: QuantizedMatrix?, rows t: Int) -> QuantizedMatrix? {
        enabled && t <= QuantizedLinear.maxRows ? m : nil
    }

    /// `ffn_down` of `layer` for `rows` tokens, or nil once the layer is edited.
    @inline(__always) func down(_ layer: Int, rows t: Int) -> QuantizedMatrix? {
        downEdited[layer] ? nil : use(layers[layer].down, rows: t)
    }
}

extension LlamaModel {
    /// y[T × out] (+)= x[T × in] · Wᵀ: the quantized kernel when a view `q` is given, else float32 BLAS.
    @inline(__always)
    func linear(_ x: UnsafePointer<Float>, _ w: FloatBuffer, _ q: QuantizedMatrix?, _ y: UnsafeMutablePointer<Float>,
                rows t: Int, inDim: Int, outDim: Int, accumulate: Bool = false) {
        if let q, q.rows == outDim, q.cols == inDim, QuantizedLinear.run(x, q, y, rows: t, accumulate: accumulate) { return }
        BLAS.linear(x, w.ptr, y, rows: t, inDim: inDim, outDim: outDim, accumulate: accumulate)
    }

    /// See `QuantizedWeights.markEdited(layer:)`: call after editing `weights.layers[layer].down`.
    public func markEdited(layer: Int) throws { try quantized.markEdited(layer: layer) }
}
