// GGUF files: the header, metadata and tensor table, then everything a model load reads from them
// (config, weight shapes and types, the tokenizer's vocabulary and merges), then one tokenization.
import GGUF
import Tokenization
import Model

public enum GGUFFuzz: FuzzTarget {
    public static func seeds() throws -> [(String, [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        // Small shapes keep each run fast (an input is a whole model); quantized rows need 32 columns.
        let shapes: [(TensorEncoding, hidden: Int, ffn: Int)] = [(.f32, 8, 16), (.q8_0, 32, 32), (.q4_1, 32, 32)]
        for (i, (type, hidden, ffn)) in shapes.enumerated() {
            let c = SyntheticConfig(layers: 1, hidden: hidden, ffn: ffn, heads: 2, kvHeads: 1, contextLength: 16,
                                    matrixType: type, seed: UInt64(i + 1))
            seeds.append(("synthetic-\(i)", try SyntheticModel.writer(c).bytes()))
        }
        // One block of each format with its own dequantizer beyond the synthetic models' (the first 24
        // tensors are dequantized below), bytes of a fixed pattern.
        var w = GGUFWriter()
        for type: GGMLType in [.q2_K, .q3_K, .iq4_nl, .iq4_xs, .tq1_0, .tq2_0, .mxfp4, .f64, .iq2_xxs, .iq2_xs, .iq2_s,
                                .iq3_xxs, .iq3_s, .iq1_s, .iq1_m, .nvfp4, .q1_0] {
            let raw = (0..<type.blockBytes * (type.blockSize == 1 ? 8 : 1)).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ 7 * Int(type.rawValue)) }
            try w.add(tensor: "t.\(type)", dims: [type.blockSize == 1 ? 8 : type.blockSize], type: type, raw: raw)
        }
        seeds.append(("formats", w.bytes()))
        return seeds
    }

    public static func test(_ input: [UInt8]) {
        guard let file = try? GGUFFile(bytes: input) else { return }
        for info in file.tensors.prefix(24) { _ = try? file.floats(info) }
        _ = try? LlamaModel(gguf: file)
        if let tokenizer = try? BPETokenizer(gguf: file) {
            let ids = tokenizer.encode("The Eiffel Tower is in Paris 1999 ünïcode")
            _ = tokenizer.decode(ids)
        }
    }
}
