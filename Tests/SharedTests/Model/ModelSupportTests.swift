// `ModelSupport` (what `alphaedit inspect` says of a file): from metadata and the tensor table alone,
// whether a load would succeed, and if not, every cause it can name.
import Foundation
import Shared
import XCTest

final class ModelSupportTests: XCTestCase {
    func support(_ c: SyntheticConfig, _ edit: (inout GGUFWriter) throws -> Void = { _ in }) throws -> ModelSupport {
        var w = try SyntheticModel.writer(c)
        try edit(&w)
        return ModelSupport(gguf: try GGUFFile(bytes: w.bytes()))
    }

    func testASupportedFileSaysWhatItIs() throws {
        var c = SyntheticConfig(layers: 2, architecture: "qwen3", headDim: 24)
        c.ropeScalingFactor = 4
        let s = try support(c)
        XCTAssertTrue(s.supported, "\(s.problems)")
        XCTAssertEqual(s.facts[0], "qwen3: 2 blocks, C 64, F 128, H 4 (KV 2), D 24, vocabulary 300, tied head")
        XCTAssertEqual(s.facts[1], "RoPE: base 10000.0 over 24 dims, θ × 0.25 (linear scaling)")
        // Every tensor once as float32: what a load allocates; lean: the vectors only.
        let floats = SyntheticModel.expectedShapes(c).reduce(0) { $0 + $1.dims.reduce(1, *) }
        let vectors = SyntheticModel.expectedShapes(c).filter { $0.dims.count == 1 }.reduce(0) { $0 + $1.dims[0] }
        XCTAssertTrue(s.facts[2].hasPrefix(String(format: "memory: %.2f GB of float32 weights once loaded, beside the mapped file; "
                                                  + "lean (ALPHAEDIT_WEIGHTS=lean) %.1f MB", Double(floats) * 4 / 1e9, Double(vectors) * 4 / 1e6)), s.facts[2])
        XCTAssertTrue(s.facts[2].contains("ALPHAEDIT_WEIGHTS=auto picks float32 here"), s.facts[2])
        let infos = try LlamaWeights.tensorInfos(GGUFFile(bytes: SyntheticModel.writer(c).bytes()), config: LlamaConfig(gguf: GGUFFile(bytes: SyntheticModel.writer(c).bytes())))
        XCTAssertTrue(ModelSupport.memory(infos, physicalMemory: UInt64(floats * 4 * 3)).contains("auto picks lean here"))
        XCTAssertTrue(s.facts[3].hasPrefix("K0 statistics: 0 MB an edited layer (F × F float64)"), s.facts[3])  // 128² × 8 bytes
        XCTAssertTrue(ModelSupport.statistics(ffn: 4864).hasPrefix("K0 statistics: 189 MB an edited layer"), "Qwen2.5-0.5B")
        XCTAssertTrue(ModelSupport.statistics(ffn: 14336).hasPrefix("K0 statistics: 1.64 GB an edited layer"), "an 8B model")
        XCTAssertTrue(ModelSupport.statistics(ffn: 4864).contains("holds Cp, 95 MB an edited layer (its upper triangle)"), ModelSupport.statistics(ffn: 4864))
        XCTAssertEqual(s.facts[4], "tokenizer: gpt2, pre-tokenizer smollm, 300 tokens")
        // And a load agrees.
        XCTAssertNoThrow(try LlamaModel(gguf: GGUFFile(bytes: SyntheticModel.writer(c).bytes())))
    }

    func testEveryCauseIsNamed() throws {
        var longrope = SyntheticConfig(layers: 1)
        longrope.ropeScalingType = "longrope"
        let s = try support(longrope) { try $0.set(GGUFNames.tokenizerPre, .string("gpt-4o")) }
        XCTAssertFalse(s.supported)
        XCTAssertEqual(s.problems.count, 2)
        XCTAssertTrue(s.problems[0].contains("RoPE scaling \"longrope\" is not supported"), s.problems[0])
        XCTAssertTrue(s.problems[1].contains("pre-tokenizer \"gpt-4o\" is not supported"), s.problems[1])
        // A tensor the architecture does not have: named, and the shape read so far still said.
        let extra = try support(SyntheticConfig(layers: 1)) { try $0.add(tensor: GGUFNames.attnQBias(0), dims: [64], floats: [Float](repeating: 0, count: 64)) }
        XCTAssertEqual(extra.problems, ["model tensor blk.0.attn_q.bias is not part of this model's architecture"])
        XCTAssertTrue(extra.facts[0].hasPrefix("llama: 1 blocks"), extra.facts[0])
        let arch = try support(SyntheticConfig(layers: 1)) { try $0.set(GGUFNames.architecture, .string("mamba")) }
        XCTAssertEqual(arch.problems.first, "unsupported model architecture \"mamba\" (supported: llama, qwen2, qwen3, gemma3, phi3)")
    }

    /// The three packaged files are supported, and say so with their shapes and tokenizers.
    func testThePackagedModels() throws {
        let expected = [
            "smollm2": ["llama: 30 blocks, C 576, F 1536, H 9 (KV 3), D 64, vocabulary 49152, tied head",
                        "tokenizer: gpt2, pre-tokenizer smollm, 49152 tokens"],
            "qwen2.5-0.5b": ["qwen2: 24 blocks, C 896, F 4864, H 14 (KV 2), D 64, vocabulary 151936, untied head",
                             "tokenizer: gpt2, pre-tokenizer qwen2, 151936 tokens"],
            "gemma3-270m": ["gemma3: 18 blocks, C 640, F 2048, H 4 (KV 1), D 256, vocabulary 262144, tied head, sliding window 512",
                            "tokenizer: llama, pre-tokenizer default, 262144 tokens, BOS added"],
        ]
        for (name, lines) in expected.sorted(by: { $0.key < $1.key }) {
            let s = ModelSupport(gguf: try GGUFFile(path: try RepoPaths.requireModel(named: name)))
            XCTAssertTrue(s.supported, "\(name): \(s.problems)")
            XCTAssertEqual(s.facts.first, lines[0], name)
            XCTAssertEqual(s.facts.last, lines[1], name)
            print("\(name): " + s.facts.joined(separator: "; "))
        }
    }
}
