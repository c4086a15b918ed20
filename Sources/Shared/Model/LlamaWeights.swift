// Weights of a decoder model: with `WeightResidency.float32` every tensor dequantized to float32 at load;
// with `.lean` only the vectors (norms, biases), the matrices read from the mapped file as needed
// (`stored`, StoredMatrix). Loading is strict: a missing,
// unexpected or mis-shaped tensor is an error naming it. Which tensors beyond llama's nine per block a
// model must have follows from its architecture's traits (Architecture.swift).
import Support
import GGUF
import Tokenization
import Kernels
import Foundation

public final class LlamaLayerWeights: @unchecked Sendable {
    public let attnNorm: FloatBuffer   // [C]
    public let wq: FloatBuffer         // [H·D × C]
    public let wk: FloatBuffer         // [KV·D × C]
    public let wv: FloatBuffer         // [KV·D × C]
    public let wo: FloatBuffer         // [C × H·D]
    public let ffnNorm: FloatBuffer    // [C]
    public let gate: FloatBuffer       // [F × C]
    public let up: FloatBuffer         // [F × C]
    /// `ffn_down`, the matrix AlphaEdit edits: [C × F]. Mutable in place (edits are applied here).
    /// After an edit call `LlamaModel.markEdited(layer:)`: few-token forwards otherwise read the
    /// unedited quantized bytes from the GGUF (QuantizedWeights) and would miss the edit. With lean
    /// weights empty until `LlamaModel.editableDown(_:)` makes it resident.
    public internal(set) var down: FloatBuffer
    /// With `attentionBias`: [H·D], [KV·D], [KV·D].
    public let qBias, kBias, vBias: FloatBuffer?
    /// With `qkNorm`: [D] each.
    public let qNorm, kNorm: FloatBuffer?
    /// With `sandwichNorms`: [C] each.
    public let postAttnNorm, postFFNNorm: FloatBuffer?
    /// With lean weights, the matrices as stored (their float32 buffers above are then empty).
    public let stored: StoredLayer?

    init(attnNorm: FloatBuffer, wq: FloatBuffer, wk: FloatBuffer, wv: FloatBuffer, wo: FloatBuffer,
         ffnNorm: FloatBuffer, gate: FloatBuffer, up: FloatBuffer, down: FloatBuffer,
         qBias: FloatBuffer? = nil, kBias: FloatBuffer? = nil, vBias: FloatBuffer? = nil,
         qNorm: FloatBuffer? = nil, kNorm: FloatBuffer? = nil,
         postAttnNorm: FloatBuffer? = nil, postFFNNorm: FloatBuffer? = nil, stored: StoredLayer? = nil) {
        self.attnNorm = attnNorm; self.wq = wq; self.wk = wk; self.wv = wv; self.wo = wo
        self.ffnNorm = ffnNorm; self.gate = gate; self.up = up; self.down = down
        self.qBias = qBias; self.kBias = kBias; self.vBias = vBias; self.qNorm = qNorm; self.kNorm = kNorm
        self.postAttnNorm = postAttnNorm; self.postFFNNorm = postFFNNorm; self.stored = stored
    }
}

/// One block's matrices as the file stores them (lean weights).
public struct StoredLayer: Sendable {
    public let wq, wk, wv, wo, gate, up, down: StoredMatrix
}

public final class LlamaWeights: @unchecked Sendable {
    public let config: LlamaConfig
    public let tokenEmbd: FloatBuffer   // [V × C]
    public let outputNorm: FloatBuffer  // [C]
    /// LM head [V × C]: `output.weight`, or the token embedding when tied.
    public let lmHead: FloatBuffer
    public let layers: [LlamaLayerWeights]
    /// `rope_freqs.weight` where the architecture reads it and the file has it: θ of rotated pair i is
    /// divided by ropeFactors[i] (Llama 3.1/3.2's frequency scaling, as llama.cpp's `freq_factors`).
    public let ropeFactors: [Float]?
    public let residency: WeightResidency
    /// Bytes the float32 copies of every tensor take (what `.float32` holds; `.lean` holds the vectors only).
    public let float32Bytes: Int
    /// With lean weights: the token embedding and the LM head as stored (the same matrix when tied).
    public let storedEmbd, storedHead: StoredMatrix?

    /// `residency` nil: as `ALPHAEDIT_WEIGHTS` says (WeightResidency.chosen).
    public init(gguf: GGUFFile, config: LlamaConfig, residency: WeightResidency? = nil) throws {
        self.config = config
        let c = config
        let infos = try LlamaWeights.tensorInfos(gguf, config: c)
        ropeFactors = try LlamaWeights.ropeFactors(gguf, config: c)
        float32Bytes = infos.reduce(0) { $0 + $1.elementCount } * MemoryLayout<Float>.stride
        let residency = try residency ?? WeightResidency.chosen(float32Bytes: float32Bytes)
        if residency == .lean, WeightResidency.isAuto() { WeightResidency.announceAutoLean(float32Bytes: float32Bytes) }
        self.residency = residency
        let lean = residency == .lean
        // Dequantize in parallel, largest first (lean: the vectors only).
        let resident = infos.map { !lean || $0.dims.count < 2 }
        let buffers = infos.indices.map { FloatBuffer(count: resident[$0] ? infos[$0].elementCount : 0, zeroed: false) }
        let order = infos.indices.filter { resident[$0] }.sorted { infos[$0].elementCount > infos[$1].elementCount }
        DispatchQueue.concurrentPerform(iterations: order.count) { j in
            let i = order[j]
            Dequantize.run(infos[i].type, from: gguf.rawBytes(infos[i]), into: buffers[i].ptr, count: infos[i].elementCount)
        }
        var byName: [String: FloatBuffer] = [:], storedByName: [String: StoredMatrix] = [:]
        for (i, info) in infos.enumerated() {
            byName[info.name] = buffers[i]
            if !resident[i] {
                guard let m = StoredMatrix(type: info.type, bytes: gguf.rawBytes(info), rows: info.dims[1], cols: info.dims[0]) else {
                    throw GGUFError.unsupportedTensorType(tensor: info.name, type: info.type)
                }
                storedByName[info.name] = m
            }
        }
        func t(_ n: String) -> FloatBuffer { byName[n] ?? FloatBuffer(count: 0) }  // all present: checked above
        func o(_ n: String, _ wanted: Bool) -> FloatBuffer? { wanted ? t(n) : nil }
        func s(_ n: String) -> StoredMatrix? { storedByName[n] }
        let tr = c.traits
        tokenEmbd = t(GGUFNames.tokenEmbd)
        outputNorm = t(GGUFNames.outputNorm)
        lmHead = c.tiedEmbeddings ? tokenEmbd : t(GGUFNames.output)
        storedEmbd = s(GGUFNames.tokenEmbd)
        storedHead = c.tiedEmbeddings ? storedEmbd : s(GGUFNames.output)
        /// `count` rows of `cols` floats of a fused matrix, from row `start` (empty stays empty: lean).
        func rows(_ b: FloatBuffer, _ start: Int, _ count: Int, _ cols: Int) -> FloatBuffer {
            guard b.count > 0 else { return FloatBuffer(count: 0) }
            let r = FloatBuffer(count: count * cols, zeroed: false)
            r.ptr.update(from: b.ptr + start * cols, count: count * cols)
            return r
        }
        layers = (0..<c.layers).map { l in
            let qkv = tr.fusedQKV ? t(GGUFNames.attnQKV(l)) : nil
            let fused = tr.fusedGateUp ? t(GGUFNames.ffnUp(l)) : nil
            var stored: StoredLayer?
            if lean {
                let sqkv = tr.fusedQKV ? s(GGUFNames.attnQKV(l)) : nil, sfused = tr.fusedGateUp ? s(GGUFNames.ffnUp(l)) : nil
                stored = StoredLayer(wq: sqkv?.rows(0..<c.qDim) ?? s(GGUFNames.attnQ(l))!,
                                     wk: sqkv?.rows(c.qDim..<(c.qDim + c.kvDim)) ?? s(GGUFNames.attnK(l))!,
                                     wv: sqkv?.rows((c.qDim + c.kvDim)..<(c.qDim + 2 * c.kvDim)) ?? s(GGUFNames.attnV(l))!,
                                     wo: s(GGUFNames.attnOutput(l))!,
                                     gate: sfused?.rows(0..<c.ffn) ?? s(GGUFNames.ffnGate(l))!,
                                     up: sfused?.rows(c.ffn..<(2 * c.ffn)) ?? s(GGUFNames.ffnUp(l))!,
                                     down: s(GGUFNames.ffnDown(l))!)
            }
            return LlamaLayerWeights(attnNorm: t(GGUFNames.attnNorm(l)),
                              wq: qkv.map { rows($0, 0, c.qDim, c.hidden) } ?? t(GGUFNames.attnQ(l)),
                              wk: qkv.map { rows($0, c.qDim, c.kvDim, c.hidden) } ?? t(GGUFNames.attnK(l)),
                              wv: qkv.map { rows($0, c.qDim + c.kvDim, c.kvDim, c.hidden) } ?? t(GGUFNames.attnV(l)),
                              wo: t(GGUFNames.attnOutput(l)), ffnNorm: t(GGUFNames.ffnNorm(l)),
                              gate: fused.map { rows($0, 0, c.ffn, c.hidden) } ?? t(GGUFNames.ffnGate(l)),
                              up: fused.map { rows($0, c.ffn, c.ffn, c.hidden) } ?? t(GGUFNames.ffnUp(l)),
                              down: t(GGUFNames.ffnDown(l)),
                              qBias: o(GGUFNames.attnQBias(l), tr.attentionBias), kBias: o(GGUFNames.attnKBias(l), tr.attentionBias),
                              vBias: o(GGUFNames.attnVBias(l), tr.attentionBias),
                              qNorm: o(GGUFNames.attnQNorm(l), tr.qkNorm), kNorm: o(GGUFNames.attnKNorm(l), tr.qkNorm),
                              postAttnNorm: o(GGUFNames.postAttentionNorm(l), tr.sandwichNorms),
                              postFFNNorm: o(GGUFNames.postFFNNorm(l), tr.sandwichNorms), stored: stored)
        }
    }

    /// The weights a model of `config` must hold, in a fixed order, checked against the file's tensor
    /// table without reading any data: a missing, extra or mis-shaped tensor, or one of a type that
    /// cannot be dequantized, is an error naming it (`rope_freqs.weight` is allowed where the
    /// architecture reads it).
    public static func tensorInfos(_ gguf: GGUFFile, config c: LlamaConfig) throws -> [GGUFTensorInfo] {
        // Expected tensors in GGML order [in, out].
        var expected: [(String, [Int])] = [
            (GGUFNames.tokenEmbd, [c.hidden, c.vocab]), (GGUFNames.outputNorm, [c.hidden]),
        ]
        if !c.tiedEmbeddings { expected.append((GGUFNames.output, [c.hidden, c.vocab])) }
        for l in 0..<c.layers {
            expected.append((GGUFNames.attnNorm(l), [c.hidden]))
            if c.traits.fusedQKV {
                expected.append((GGUFNames.attnQKV(l), [c.hidden, c.qDim + 2 * c.kvDim]))
            } else {
                expected += [(GGUFNames.attnQ(l), [c.hidden, c.qDim]), (GGUFNames.attnK(l), [c.hidden, c.kvDim]),
                             (GGUFNames.attnV(l), [c.hidden, c.kvDim])]
            }
            expected += [(GGUFNames.attnOutput(l), [c.qDim, c.hidden]), (GGUFNames.ffnNorm(l), [c.hidden])]
            if c.traits.fusedGateUp {
                expected.append((GGUFNames.ffnUp(l), [c.hidden, 2 * c.ffn]))
            } else {
                expected += [(GGUFNames.ffnGate(l), [c.hidden, c.ffn]), (GGUFNames.ffnUp(l), [c.hidden, c.ffn])]
            }
            expected.append((GGUFNames.ffnDown(l), [c.ffn, c.hidden]))
            if c.traits.attentionBias {
                expected += [(GGUFNames.attnQBias(l), [c.qDim]), (GGUFNames.attnKBias(l), [c.kvDim]), (GGUFNames.attnVBias(l), [c.kvDim])]
            }
            if c.traits.qkNorm { expected += [(GGUFNames.attnQNorm(l), [c.headDim]), (GGUFNames.attnKNorm(l), [c.headDim])] }
            if c.traits.sandwichNorms { expected += [(GGUFNames.postAttentionNorm(l), [c.hidden]), (GGUFNames.postFFNNorm(l), [c.hidden])] }
        }
        let known = Set(expected.map(\.0))
        // RoPE frequency divisors are no weight: read apart, and only where the architecture has them.
        for t in gguf.tensors where !known.contains(t.name) && !(t.name == GGUFNames.ropeFreqs && c.traits.ropeFactorsTensor) {
            throw ModelError.unexpectedTensor(t.name)
        }
        var infos: [GGUFTensorInfo] = []
        for (name, shape) in expected {
            guard let info = gguf.tensorInfo(name) else { throw ModelError.missingTensor(name) }
            guard info.dims == shape else { throw ModelError.badTensorShape(name: name, expected: shape, found: info.dims) }
            guard info.type.canDequantize else { throw GGUFError.unsupportedTensorType(tensor: name, type: info.type) }
            infos.append(info)
        }
        return infos
    }

    /// `rope_freqs.weight` as floats: [ropeDims / 2] finite positive divisors, or nil where absent.
    static func ropeFactors(_ gguf: GGUFFile, config c: LlamaConfig) throws -> [Float]? {
        let name = GGUFNames.ropeFreqs
        guard c.traits.ropeFactorsTensor, let info = gguf.tensorInfo(name) else { return nil }
        guard info.dims == [c.ropeDims / 2] else { throw ModelError.badTensorShape(name: name, expected: [c.ropeDims / 2], found: info.dims) }
        guard info.type.canDequantize else { throw GGUFError.unsupportedTensorType(tensor: name, type: info.type) }
        var f = [Float](repeating: 0, count: info.elementCount)
        f.withUnsafeMutableBufferPointer { Dequantize.run(info.type, from: gguf.rawBytes(info), into: $0.baseAddress!, count: info.elementCount) }
        if let i = f.firstIndex(where: { !($0.isFinite && $0 > 0) }) {
            throw ModelError.badConfig(key: name, detail: "divisor \(i) is \(f[i]); each must be a finite number > 0")
        }
        return f
    }
}
