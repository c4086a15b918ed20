// Lean weights (WeightResidency.lean): the matrices stay in the mapped file and products of many rows
// dequantize panels (StoredMatrix). Checked against the float32 copies of the same file: the values
// dequantized, the products forward and backward, a whole model's forward, backward and an edit.
import Foundation
import Shared
import XCTest

final class LeanWeightsTests: XCTestCase {
    var rng = SplitMix64(seed: 7)
    func randoms(_ n: Int, _ s: Float = 1) -> [Float] { (0..<n).map { _ in rng.symmetric(s) } }

    /// Largest |a − b| / max(|b|, floor) over the arrays.
    func relDiff(_ a: [Float], _ b: [Float], floor: Float = 1e-3) -> Float {
        XCTAssertEqual(a.count, b.count)
        let scale = max(b.map(abs).max() ?? 0, floor)
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) } / scale
    }

    func testChoiceFromEnvironment() throws {
        let gb = 1 << 30
        XCTAssertEqual(try WeightResidency.chosen(float32Bytes: 3 * gb, environment: [:], physicalMemory: UInt64(24 * gb)), .float32)
        XCTAssertEqual(try WeightResidency.chosen(float32Bytes: 7 * gb, environment: [:], physicalMemory: UInt64(24 * gb)), .lean)
        XCTAssertEqual(try WeightResidency.chosen(float32Bytes: 7 * gb, environment: ["ALPHAEDIT_WEIGHTS": "float32"],
                                                  physicalMemory: UInt64(24 * gb)), .float32)
        XCTAssertEqual(try WeightResidency.chosen(float32Bytes: 1, environment: ["ALPHAEDIT_WEIGHTS": "lean"],
                                                  physicalMemory: UInt64(24 * gb)), .lean)
        XCTAssertThrowsError(try WeightResidency.chosen(float32Bytes: 1, environment: ["ALPHAEDIT_WEIGHTS": "half"], physicalMemory: 1)) {
            XCTAssertEqual("\($0)", "ALPHAEDIT_WEIGHTS: \"half\" is none of float32, lean, auto")
        }
    }

    /// Every stored type of the two K-quant files, dequantized by StoredMatrix (the C dequantizers where
    /// they read the type) equals Dequantize.swift bit for bit, whole rows and column ranges.
    func testStoredMatrixDequantizesAsTheReader() throws {
        for name in ["qwen2.5-0.5b", "gemma3-270m", "smollm2"] {
            let gguf = try GGUFFile(path: RepoPaths.requireModel(named: name))
            var seen = Set<GGMLType>()
            for info in gguf.tensors where info.dims.count == 2 && !seen.contains(info.type) {
                seen.insert(info.type)
                let m = try XCTUnwrap(StoredMatrix(type: info.type, bytes: gguf.rawBytes(info), rows: info.dims[1], cols: info.dims[0]))
                let rows = min(m.rows, 64), all = try gguf.floats(info.name)
                var got = [Float](repeating: .nan, count: rows * m.cols)
                got.withUnsafeMutableBufferPointer { m.dequantize(rows: 0..<rows, into: $0.baseAddress!, ldy: m.cols) }
                XCTAssertEqual(got, Array(all[0..<(rows * m.cols)]), "\(name) \(info.name) (\(info.type)): rows 0..<\(rows)")
                let bs = info.type.blockSize, c0 = bs, c1 = min(m.cols, 3 * bs)
                var part = [Float](repeating: .nan, count: 3 * (c1 - c0))
                part.withUnsafeMutableBufferPointer { m.dequantize(rows: 5..<8, cols: c0..<c1, into: $0.baseAddress!, ldy: c1 - c0) }
                let want = (5..<8).flatMap { r in all[(r * m.cols + c0)..<(r * m.cols + c1)] }
                XCTAssertEqual(part, want, "\(name) \(info.name): rows 5..<8, cols \(c0)..<\(c1)")
            }
            print("lean: \(name) stored types \(seen.map { "\($0)" }.sorted())")
        }
    }

    /// Products over several panels (Qwen's token embedding: 33 row panels, 7 column panels; `ffn_gate`
    /// backward: 2 column panels) against sgemm on the whole dequantized matrix: equal with OpenBLAS's
    /// AVX-512 kernels, within 4.9e-7 with its Haswell kernels (AVX2), which round by the call's shape.
    func testPanelProductsMatchWholeMatrix() throws {
        let gguf = try GGUFFile(path: RepoPaths.requireModel(named: "qwen2.5-0.5b"))
        for (tensor, t) in [("token_embd.weight", 40), ("blk.3.ffn_gate.weight", 48), ("blk.3.ffn_down.weight", 33)] {
            let info = try XCTUnwrap(gguf.tensorInfo(tensor))
            let m = try XCTUnwrap(StoredMatrix(type: info.type, bytes: gguf.rawBytes(info), rows: info.dims[1], cols: info.dims[0]))
            let w = try gguf.floats(tensor)
            let x = randoms(t * m.cols), dy = randoms(t * m.rows)
            var yLean = [Float](repeating: 0, count: t * m.rows), yFull = yLean
            m.linear(x, &yLean, tokens: t)
            BLAS.linear(x, w, &yFull, rows: t, inDim: m.cols, outDim: m.rows)
            let fwd = relDiff(yLean, yFull)
            var dxLean = [Float](repeating: 0, count: t * m.cols), dxFull = dxLean
            m.linearBackward(dy, &dxLean, tokens: t)
            let t0 = ProcessStats.now()
            m.linearBackward(dy, &dxLean, tokens: t)  // again: the panels' memory is reused, as in v*'s steps
            let t1 = ProcessStats.now()
            BLAS.linearBackward(dy, w, &dxFull, rows: t, inDim: m.cols, outDim: m.rows)
            print(String(format: "lean: \(tensor) backward %.1f ms, float32 %.1f ms", (t1 - t0) * 1000, (ProcessStats.now() - t1) * 1000))
            BLAS.linearBackward(dy, w, &dxFull, rows: t, inDim: m.cols, outDim: m.rows)
            let bwd = relDiff(dxLean, dxFull)
            print("lean: \(tensor) \(info.type) \(m.rows) × \(m.cols), T = \(t): forward max rel diff \(fwd), backward \(bwd)")
            XCTAssertLessThanOrEqual(fwd, 1e-6, tensor)
            XCTAssertLessThanOrEqual(bwd, 1e-6, tensor)
        }
    }

    /// One model, float32 and lean, on the same bytes: logits of a batch of 45 rows (sgemm paths) and of 5
    /// (the kernels), the backward from logits to block 1's input, and after the same edit of layer 1
    /// (lean: `ffn_down` made resident) the logits again. Every architecture, matrices in every encoding
    /// our writer has (Q8_0, Q4_1, F16, BF16, F32).
    func testLeanModelMatchesFloat32() throws {
        for arch in SyntheticModel.architectures {
            for type in [TensorEncoding.q8_0, .q4_1, .f16, .bf16, .f32] {
                var cfg = SyntheticConfig(layers: 3, architecture: arch)
                cfg.matrixType = type
                let bytes = try SyntheticModel.writer(cfg).bytes()
                let full = try LlamaModel(gguf: GGUFFile(bytes: bytes), residency: .float32)
                let lean = try LlamaModel(gguf: GGUFFile(bytes: bytes), residency: .lean)
                XCTAssertEqual(lean.weights.residency, .lean)
                XCTAssertEqual(lean.weights.layers[1].down.count, 0, "\(arch): lean holds no float32 ffn_down")
                XCTAssertEqual(lean.weights.lmHead.count, 0)
                let c = full.config, what = "\(arch) \(type)"
                let long = TokenBatch([(0..<20).map { Int32(($0 * 37 + 5) % c.vocab) }, (0..<25).map { Int32(($0 * 11 + 3) % c.vocab) }])
                let short = TokenBatch([[5, 80, 120, 33, 7]])
                for batch in [long, short] {
                    let rows = Array(0..<batch.count)
                    let a = try full.forward(batch, logitRows: rows).logits, b = try lean.forward(batch, logitRows: rows).logits
                    XCTAssertLessThanOrEqual(relDiff(b, a), 1e-6, "\(what): logits of \(batch.count) rows")
                }
                // Backward from the logits of 4 rows to block 1's input.
                let lossRows = [3, 10, 30, 44]
                func gradient(_ m: LlamaModel) -> [Float] {
                    let h = m.embed(long)
                    _ = m.runBlocks(0...0, hidden: h, batch: long)
                    let acts = m.runBlocks(1...(c.layers - 1), hidden: h, batch: long, keep: Set(1..<c.layers))
                    let dLogits = (0..<(lossRows.count * c.vocab)).map { Float(($0 * 7919) % 101) / 101 - 0.5 }
                    let top = m.logitsBackward(hidden: h.ptr, rows: lossRows, dLogits: dLogits, totalRows: long.count)
                    return m.backwardBlocks(1...(c.layers - 1), acts: acts, batch: long, dOutput: top).array
                }
                XCTAssertLessThanOrEqual(relDiff(gradient(lean), gradient(full)), 1e-6, "\(what): backward")
                let delta = randoms(c.hidden * c.ffn, 0.05)
                try full.applyDelta(layer: 1, delta: delta)
                try lean.applyDelta(layer: 1, delta: delta)
                XCTAssertEqual(lean.weights.layers[1].down.count, c.hidden * c.ffn, "\(what): edited ffn_down is resident")
                XCTAssertEqual(lean.weights.layers[2].down.count, 0)
                for batch in [long, short] {
                    let rows = Array(0..<batch.count)
                    let a = try full.forward(batch, logitRows: rows).logits, b = try lean.forward(batch, logitRows: rows).logits
                    XCTAssertLessThanOrEqual(relDiff(b, a), 1e-6, "\(what): edited logits of \(batch.count) rows")
                }
            }
        }
    }

    /// Qwen2.5-0.5B lean: float32 held for the vectors only, and a 64-row batch's logits as with float32.
    func testLeanQwenMatchesFloat32() throws {
        let path = try RepoPaths.requireModel(named: "qwen2.5-0.5b")
        let lean = try LlamaModel(path: path, residency: .lean)
        let resident = lean.weights.layers.reduce(0) { $0 + $1.wq.count + $1.wk.count + $1.wv.count + $1.wo.count + $1.gate.count + $1.up.count + $1.down.count }
            + lean.weights.tokenEmbd.count + lean.weights.lmHead.count
        XCTAssertEqual(resident, 0)
        print(String(format: "lean: Qwen float32 copies %.2f GB, held %d floats of matrices", Double(lean.weights.float32Bytes) / 1e9, resident))
        let batch = TokenBatch([(0..<32).map { Int32(($0 * 977 + 13) % 150_000) }, (0..<32).map { Int32(($0 * 331 + 7) % 150_000) }])
        let rows = [0, 31, 32, 63]
        let b = try lean.forward(batch, logitRows: rows).logits
        let full = try LlamaModel(path: path, residency: .float32)
        let a = try full.forward(batch, logitRows: rows).logits
        // Nor Q8_0 copies of its Q5_0 matrices (made with AVX2 for the few-token products, where float32 is kept).
        XCTAssertEqual(lean.quantized.copiedBytes, 0)
        XCTAssertEqual(full.quantized.copiedBytes > 0, QuantizedLinear.q5_0AsQ8_0)
        let d = relDiff(b, a)
        print("lean: Qwen 64-row logits, max rel diff to float32 \(d)")
        // 0 with OpenBLAS's AVX-512 kernels; its Haswell kernels round a product differently with its
        // column count (1.0e-6 measured).
        XCTAssertLessThanOrEqual(d, 1e-5)
    }

    /// Two MEMIT batches (NAS targets, PRUNE filter: both read and swap `ffn_down`) on the synthetic
    /// model with float32 and with lean weights, K₀ statistics built by each: the same deltas, bit for
    /// bit; lean holds float32 only for the edited layers.
    func testLeanEditsAsFloat32() throws {
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 60)
        var hp = EditHyperparameters()
        hp.layers = [0, 1]; hp.vSteps = 6; hp.stages = EditStages(targets: .nas, filter: .prune)
        let words = ["France", "Paris", "river", "tower"]
        let reqs = (0..<4).map { EditRequest(prompt: "The capital of {} is", subject: "the \(words[$0]) city", targetNew: words[($0 + 1) % 4]) }
        func run(_ r: WeightResidency) throws -> (LlamaModel, [[Int: [Float]]]) {
            let m = try LlamaModel(path: path, residency: r)
            let tok = try BPETokenizer(gguf: m.gguf)
            let stats = try CovarianceBuilder(model: m, tokenizer: tok, layers: hp.layers).build(corpus: corpus, range: 0..<60)
            let editor = try Editor(model: m, tokenizer: tok, hp: hp, method: .memit, templates: ContextTemplates(groups: [["{}"]]),
                                    projectors: nil, statistics: stats)
            return (m, [try editor.apply(Array(reqs[0..<2])).deltas, try editor.apply(Array(reqs[2..<4])).deltas])
        }
        let (full, a) = try run(.float32), (lean, b) = try run(.lean)
        XCTAssertEqual(a.count, 2)
        for (i, (x, y)) in zip(a, b).enumerated() {
            XCTAssertEqual(Set(x.keys), Set(hp.layers))
            for l in hp.layers { XCTAssertEqual(x[l], y[l], "batch \(i), layer \(l): ΔW") }
        }
        for l in hp.layers { XCTAssertEqual(lean.weights.layers[l].down.array, full.weights.layers[l].down.array) }
        for l in (hp.layers.max()! + 1)..<lean.config.layers { XCTAssertEqual(lean.weights.layers[l].down.count, 0, "layer \(l) not edited: not resident") }
    }

    /// SmolLM2 with its matrices rewritten as F16 and as BF16 (a file as `convert_hf_to_gguf` makes):
    /// few-token products on the F16 / BF16 kernels agree with sgemm on the float32 copies, lean agrees
    /// with float32; the generation step's time on each path is printed.
    func testHalfPrecisionFilesOnKernelsAndLean() throws {
        let src = try GGUFFile(path: RepoPaths.requireModel(named: "smollm2"))
        for enc in [TensorEncoding.f16, .bf16] {
            var w = GGUFWriter()
            for key in src.metadataKeys { if let v = src.metadata[key] { try w.set(key, v) } }
            for info in src.tensors {
                if info.dims.count == 2 { try w.add(tensor: info.name, dims: info.dims, floats: try src.floats(info.name), as: enc) }
                else { try w.add(tensor: info, from: src) }
            }
            let path = TestPaths.temporaryFile("smollm2-\(enc).gguf")
            defer { try? FileManager.default.removeItem(atPath: path) }
            try w.write(to: path)
            let full = try LlamaModel(path: path, residency: .float32), lean = try LlamaModel(path: path, residency: .lean)
            XCTAssertNotNil(full.quantized.layers[0].gate, "\(enc): a kernel reads the stored matrix")
            let prompt: [Int32] = [504, 3575, 282, 4649, 314, 253, 3108, 338, 800, 915]
            let short = TokenBatch([prompt]), long = TokenBatch([prompt + prompt + prompt + prompt])
            for batch in [short, long] {
                let rows = [batch.count - 1]
                let kernels = try full.forward(batch, logitRows: rows).logits
                full.quantized.enabled = false
                let sgemm = try full.forward(batch, logitRows: rows).logits
                full.quantized.enabled = true
                let leanLogits = try lean.forward(batch, logitRows: rows).logits
                print("lean: SmolLM2 \(enc), \(batch.count) rows: kernels vs sgemm \(relDiff(kernels, sgemm)), lean vs float32 \(relDiff(leanLogits, kernels))")
                XCTAssertLessThanOrEqual(relDiff(kernels, sgemm), 1e-4, "\(enc), \(batch.count) rows: kernels")
                XCTAssertLessThanOrEqual(relDiff(leanLogits, kernels), 1e-5, "\(enc), \(batch.count) rows: lean")
            }
            func step(_ m: LlamaModel) throws -> Double {
                ProcessStats.median(try ForwardBenchmark.decodeSteps(model: m, prompt: prompt, steps: 16, rounds: 3).seconds) * 1000
            }
            let onKernel = try step(full)
            full.quantized.enabled = false
            let onSgemm = try step(full)
            full.quantized.enabled = true
            print(String(format: "lean: SmolLM2 \(enc) generation step: float32 copies and sgemm %.2f ms, the \(enc) kernel %.2f ms, lean %.2f ms",
                         onSgemm, onKernel, try step(lean)))
        }
    }
}

