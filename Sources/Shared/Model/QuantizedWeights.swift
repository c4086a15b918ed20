// The model's matrices as stored in the GGUF (Q4_1, Q8_0, Q5_0, Q4_K, Q6_K views into the memory-mapped file;
// with AVX2, products read Q5_0 from a Q8_0 copy, `QuantizedLinear.q5_0AsQ8_0`, and Q4_1 from a copy with
// float32 scales, `QuantizedLinear.q4_1FloatScales`), used
// for forwards of a few tokens, where reading 0.6-1 byte a weight instead of 4 is what counts
// (see QuantizedLinear). The float32 copies in `LlamaWeights` stay the source of truth: large
// batches, backward passes and edits use them. An edited `ffn_down` no longer matches its stored
// bytes, so `markEdited(layer:)` retires that view for good.
import Support
import GGUF
import Tokenization
import Kernels
import Foundation

public final class QuantizedWeights: @unchecked Sendable {
    /// The matrices of one block as the kernels read them (the file's bytes, or a copy: Q5_0 as Q8_0,
    /// Q4_1 with float32 scales); nil where the stored type has no kernel (float32 is used then).
    public struct Layer: Sendable {
        public let wq, wk, wv, wo, gate, up, down: QuantizedMatrix?
    }

    public let layers: [Layer]
    /// The LM head [V × C] (`output.weight`, or the token embedding when tied).
    public let lmHead: QuantizedMatrix?
    /// Off: every product runs on the float32 weights (comparisons, debugging).
    public var enabled: Bool
    /// How few-token products treat their activations: float32 (the default: a generation step's logits
    /// are the full forward's bit for bit), or rounded to int8 as llama.cpp does (`Activations`).
    public var activations: Activations = .float32
    /// Views that are copies (Q5_0 rewritten as Q8_0, Q4_1 with float32 scales, Q1_0 as Q4_0), not the file's bytes.
    private let storage: [OwnedBytes]
    /// The stored formats whose products read such copies.
    public let copiedFormats: Set<QuantizedMatrix.Format>
    private var downEdited: [Bool]

    /// Views of the tensors `LlamaWeights` loaded (it has checked their presence and shapes already).
    /// The views point into `gguf`, which must outlive this object (`LlamaModel` holds both).
    /// `kernelCopies` false: no copies of Q5_0 as Q8_0 or of Q4_1 with float32 scales either (lean weights:
    /// memory before speed).
    public init(gguf: GGUFFile, config c: LlamaConfig, kernelCopies: Bool = true) {
        var copies: [OwnedBytes] = [], copied: Set<QuantizedMatrix.Format> = []
        /// Rows [first, first + rows) of the stored matrix `name` of `total` rows (all of them by default):
        /// a fused matrix's part is a contiguous run of its rows.
        func view(_ name: String, rows: Int, cols: Int, first: Int = 0, total: Int? = nil) -> QuantizedMatrix? {
            guard QuantizedLinear.bestISA != nil, let info = gguf.tensorInfo(name),
                  info.dims == [cols, total ?? rows], let rowBytes = info.type.byteCount(elements: cols) else { return nil }
            let all = gguf.rawBytes(info)
            let part = UnsafeRawBufferPointer(rebasing: all[(first * rowBytes)..<((first + rows) * rowBytes)])
            if info.type == .q1_0, QuantizedLinear.q1_0AsQ4_0 {  // its Q4_0 copy holds the same weights
                guard let c = QuantizedMatrix.q4_0Copy(ofQ1_0: part, rows: rows, cols: cols) else { return nil }
                copies.append(c.storage)
                copied.insert(.q1_0)
                return c.matrix
            }
            guard let m = QuantizedMatrix(type: info.type, bytes: part, rows: rows, cols: cols) else { return nil }
            guard kernelCopies else { return m }
            if QuantizedLinear.q4_1FloatScales, let f = m.withFloatScales() {
                copies.append(f.storage)
                copied.insert(.q4_1)
                return f.matrix
            }
            guard QuantizedLinear.q5_0AsQ8_0, let q8 = m.asQ8_0() else { return m }
            copies.append(q8.storage)
            copied.insert(.q5_0)
            return q8.matrix
        }
        let tr = c.traits, qkvRows = c.qDim + 2 * c.kvDim
        layers = (0..<c.layers).map { l in
            let qkv = GGUFNames.attnQKV(l)
            return Layer(wq: tr.fusedQKV ? view(qkv, rows: c.qDim, cols: c.hidden, total: qkvRows) : view(GGUFNames.attnQ(l), rows: c.qDim, cols: c.hidden),
                  wk: tr.fusedQKV ? view(qkv, rows: c.kvDim, cols: c.hidden, first: c.qDim, total: qkvRows)
                                  : view(GGUFNames.attnK(l), rows: c.kvDim, cols: c.hidden),
                  wv: tr.fusedQKV ? view(qkv, rows: c.kvDim, cols: c.hidden, first: c.qDim + c.kvDim, total: qkvRows)
                                  : view(GGUFNames.attnV(l), rows: c.kvDim, cols: c.hidden),
                  wo: view(GGUFNames.attnOutput(l), rows: c.hidden, cols: c.qDim),
                  gate: tr.fusedGateUp ? view(GGUFNames.ffnUp(l), rows: c.ffn, cols: c.hidden, total: 2 * c.ffn)
                                       : view(GGUFNames.ffnGate(l), rows: c.ffn, cols: c.hidden),
                  up: view(GGUFNames.ffnUp(l), rows: c.ffn, cols: c.hidden, first: tr.fusedGateUp ? c.ffn : 0,
                           total: tr.fusedGateUp ? 2 * c.ffn : nil),
                  down: view(GGUFNames.ffnDown(l), rows: c.hidden, cols: c.ffn))
        }
        lmHead = view(c.tiedEmbeddings ? GGUFNames.tokenEmbd : GGUFNames.output, rows: c.vocab, cols: c.hidden)
        storage = copies
        copiedFormats = copied
        enabled = true
        downEdited = Array(repeating: false, count: c.layers)
    }

    /// Call after changing `LlamaWeights.layers[layer].down` in place: that layer's products then
    /// always use the float32 matrix. Not undone by restoring the weights (float32 stays correct).
    /// Like the edit itself, not concurrently with a forward of this model.
    public func markEdited(layer: Int) throws {
        guard downEdited.indices.contains(layer) else { throw ModelError.layerOutOfRange(layer, layers: downEdited.count) }
        downEdited[layer] = true
    }

    /// Bytes of the copies (with `kernelCopies`: Q8_0 of Q5_0, Q4_1 with float32 scales; Q4_0 of Q1_0); 0 where none were made.
    public var copiedBytes: Int { storage.reduce(0) { $0 + $1.bytes.count } }

    public func isEdited(layer: Int) -> Bool { downEdited.indices.contains(layer) && downEdited[layer] }

    /// The matrix to use for a product of `rows` tokens, or nil for float32 BLAS.
    @inline(__always) func use(_ m: QuantizedMatrix?, rows t: Int) -> QuantizedMatrix? {
        guard let m, enabled, t <= QuantizedLinear.maxRows else { return nil }
        return m
    }

    /// `ffn_down` of `layer` for `rows` tokens, or nil once the layer is edited.
    @inline(__always) func down(_ layer: Int, rows t: Int) -> QuantizedMatrix? {
        downEdited[layer] ? nil : use(layers[layer].down, rows: t)
    }
}

/// What few-token products (≤ `QuantizedLinear.maxRows` token rows, on the stored weights) do with their
/// activations. `float32`: the kernels multiply float32 activations with weights dequantized in
/// registers, the same bits as dequantize + sgemm up to summation order. `int8`: each token row is
/// rounded to int8 in blocks of 32 (scale max|x| / 127) and multiplied with the weights as bytes
/// (`QuantizedLinear.runInt8`), as llama.cpp computes; faster where converting weights to float32 is
/// what a one-token product waits on. Only products of up to `QuantizedLinear.int8MaxRows` token rows
/// (each generation step; not a prompt's prefill, where the float32 kernels are faster); those of
/// formats without an int8 kernel, of edited matrices and of more rows stay float32. Chosen per command
/// (`generate --activations`, `bench forward --activations`); edits, keys and evaluation always run float32.
public enum Activations: String, Sendable, CaseIterable {
    case float32, int8
}

extension LlamaModel {
    /// y[T × out] (+)= x[T × in] · Wᵀ: the quantized kernel when a view `q` is given, else float32 BLAS
    /// on `w`, or where `w` is empty (lean weights) on panels of `stored`; one call per range of `groups`
    /// when given (`TokenBatch.productGroups`). `role` names the matrix for `profile` (`bench forward --breakdown`).
    @inline(__always)
    func linear(_ x: UnsafePointer<Float>, _ w: FloatBuffer, _ q: QuantizedMatrix?, _ y: UnsafeMutablePointer<Float>,
                rows t: Int, inDim: Int, outDim: Int, accumulate: Bool = false, groups: [Range<Int>]? = nil,
                role: ProductProfile.Role, stored: StoredMatrix? = nil) {
        guard let profile else {
            product(x, w, q, y, rows: t, inDim: inDim, outDim: outDim, accumulate: accumulate, groups: groups, stored: stored)
            return
        }
        let t0 = ProcessStats.now()
        let quantized = product(x, w, q, y, rows: t, inDim: inDim, outDim: outDim, accumulate: accumulate, groups: groups, stored: stored)
        let key = ProductProfile.Key(role: role, kernel: quantized?.format.type ?? .f32, outDim: outDim, inDim: inDim, tokens: t)
        profile.record(key, seconds: ProcessStats.now() - t0)
    }

    /// `linear`'s product; returns the quantized matrix when its kernel ran, nil for float32 BLAS.
    @inline(__always) @discardableResult
    private func product(_ x: UnsafePointer<Float>, _ w: FloatBuffer, _ q: QuantizedMatrix?, _ y: UnsafeMutablePointer<Float>,
                         rows t: Int, inDim: Int, outDim: Int, accumulate: Bool, groups: [Range<Int>]?,
                         stored: StoredMatrix?) -> QuantizedMatrix? {
        if let q, q.rows == outDim, q.cols == inDim {
            if quantized.activations == .int8, t <= QuantizedLinear.int8MaxRows,
               QuantizedLinear.runInt8(x, q, y, rows: t, accumulate: accumulate) { return q }
            if QuantizedLinear.run(x, q, y, rows: t, accumulate: accumulate) { return q }
        }
        for g in groups ?? [0..<t] where !g.isEmpty {
            if w.count == 0, let s = stored {
                precondition(s.rows == outDim && s.cols == inDim, "stored matrix \(s.rows) × \(s.cols), product \(outDim) × \(inDim)")
                s.linear(x + g.lowerBound * inDim, y + g.lowerBound * outDim, tokens: g.count, accumulate: accumulate)
            } else {
                BLAS.linear(x + g.lowerBound * inDim, w.ptr, y + g.lowerBound * outDim, rows: g.count,
                            inDim: inDim, outDim: outDim, accumulate: accumulate)
            }
        }
        return nil
    }

    /// dx[T × in] (+)= dy[T × out] · W: float32 BLAS on `w`, or on panels of `stored` where `w` is empty.
    @inline(__always)
    func linearBackward(_ dy: UnsafePointer<Float>, _ w: FloatBuffer, _ dx: UnsafeMutablePointer<Float>, rows t: Int,
                        inDim: Int, outDim: Int, accumulate: Bool = false, stored: StoredMatrix?) {
        if w.count == 0, let s = stored {
            precondition(s.rows == outDim && s.cols == inDim, "stored matrix \(s.rows) × \(s.cols), product \(outDim) × \(inDim)")
            s.linearBackward(dy, dx, tokens: t, accumulate: accumulate)
        } else {
            BLAS.linearBackward(dy, w.ptr, dx, rows: t, inDim: inDim, outDim: outDim, accumulate: accumulate)
        }
    }

    /// Layer l's `ffn_down` as float32, to edit in place: with lean weights dequantized from the file
    /// the first time (and kept), so that from then on the layer's products use it. Like an edit, not
    /// concurrently with a forward of this model.
    public func editableDown(_ l: Int) throws -> FloatBuffer {
        guard l >= 0, l < config.layers else { throw ModelError.layerOutOfRange(l, layers: config.layers) }
        let w = weights.layers[l]
        if w.down.count == 0, let s = w.stored?.down { w.down = s.floats() }
        return w.down
    }

    /// See `QuantizedWeights.markEdited(layer:)`: call after editing `weights.layers[layer].down`.
    public func markEdited(layer: Int) throws { try quantized.markEdited(layer: layer) }
}
