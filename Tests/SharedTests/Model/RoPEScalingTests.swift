// RoPE scaling as the GGUF states it, against llama.cpp on the same files. Tiny synthetic models written
// by our GGUF writer carry a linear `rope.scaling` (llama, qwen2, qwen3, gemma3's global layers), YaRN
// (qwen2 over an original context of 32, qwen3 over the file's), an attention factor, Llama 3's
// `rope_freqs.weight` divisors, a scaling type "none", and gemma3's `rope.freq_base_swa`; the fixture
// holds llama.cpp's logits on exactly those bytes (FNV-1a-64 checked), made by
// `scripts/llamacpp-fixtures.sh` (scripts/llamacpp-logits.c: float32 weights, float32 K/V cache).
// The qwen3 and phi3 architectures are checked here too, unscaled ("…-base") and scaled.
// Before, llama and qwen2 ignored every scaling key and llama ignored `rope_freqs.weight`: such files
// loaded and ran with the wrong rotation, silently. LongRoPE, and YaRN on gemma3, are refused by name.
import Foundation
import Shared
import XCTest

final class RoPEScalingTests: XCTestCase {
    /// The fixture's cases: name → synthetic config.
    static var cases: [(name: String, config: SyntheticConfig)] {
        var freqs = SyntheticConfig(layers: 2)
        freqs.ropeFreqs = [1, 2, 3, 4, 5, 6, 7, 8]
        var linear = SyntheticConfig(layers: 2)
        linear.ropeScalingType = "linear"; linear.ropeScalingFactor = 4
        var none = SyntheticConfig(layers: 2)
        none.ropeScalingType = "none"; none.ropeScalingFactor = 4
        var qwen = SyntheticConfig(layers: 2, architecture: "qwen2")
        qwen.ropeScalingFactor = 2  // no type: llama.cpp's default, linear
        var gemmaBase = SyntheticConfig(layers: 6, architecture: "gemma3", slidingWindow: 8)
        gemmaBase.ropeBaseSWA = 1_000
        var gemma = gemmaBase
        gemma.ropeScalingType = "linear"; gemma.ropeScalingFactor = 8
        // qwen3 (new here): its forward at all, with a head dim of its own (24, not C/H = 16), then scaled.
        let qwen3 = SyntheticConfig(layers: 2, architecture: "qwen3", headDim: 24)
        var qwen3Linear = qwen3
        qwen3Linear.ropeScalingType = "linear"; qwen3Linear.ropeScalingFactor = 4
        // YaRN: the ramp over an original context of 32 (qwen2) or the file's context (256, qwen3), and
        // the magnitude 1 + 0.1·ln(factor); an attention factor on a linear scaling (llama).
        var attn = SyntheticConfig(layers: 2)
        attn.ropeScalingType = "linear"; attn.ropeScalingFactor = 2; attn.ropeAttnFactor = 0.8
        var qwenYaRN = SyntheticConfig(layers: 2, architecture: "qwen2")
        qwenYaRN.ropeScalingType = "yarn"; qwenYaRN.ropeScalingFactor = 4; qwenYaRN.ropeOriginalContext = 32
        var qwen3YaRN = qwen3
        qwen3YaRN.ropeScalingType = "yarn"; qwen3YaRN.ropeScalingFactor = 8
        // phi3 (new here): fused Q/K/V and gate/up, split at load; unscaled and with YaRN.
        let phi3 = SyntheticConfig(layers: 2, architecture: "phi3")
        var phi3YaRN = phi3
        phi3YaRN.ropeScalingType = "yarn"; phi3YaRN.ropeScalingFactor = 4; phi3YaRN.ropeOriginalContext = 64
        return [("phi3-base", phi3), ("phi3-yarn-4", phi3YaRN), ("llama-rope-freqs", freqs), ("llama-linear-4", linear), ("llama-none-4", none),
                ("qwen2-linear-2", qwen), ("gemma3-base-swa", gemmaBase), ("gemma3-linear-8", gemma),
                ("qwen3-base", qwen3), ("qwen3-linear-4", qwen3Linear),
                ("llama-linear-2-attn-0.8", attn), ("qwen2-yarn-4-ctx-32", qwenYaRN), ("qwen3-yarn-8", qwen3YaRN)]
    }

    static let tokens: [Int32] = (0..<32).map { Int32(($0 * 37 + 5) % 300) }
    static let rows = [0, 7, 15, 23, 31]

    struct Fixture: Decodable {
        struct Case: Decodable { let name: String; let checksum: String; let logits: [[Float]] }
        let producer: String
        let tokens: [Int32]
        let rows: [Int]
        let cases: [Case]
    }

    func bytes(_ c: SyntheticConfig) throws -> [UInt8] { try SyntheticModel.writer(c).bytes() }
    func checksum(_ b: [UInt8]) -> String { String(format: "%016llx", b.withUnsafeBytes { FNV1a64.hash($0) }) }

    /// Our logits at `rows` of the token sequence.
    func logits(_ b: [UInt8]) throws -> [[Float]] {
        let m = try LlamaModel(gguf: GGUFFile(bytes: b))
        let r = try m.forward(TokenBatch([Self.tokens]), logitRows: Self.rows)
        return Self.rows.indices.map { Array(r.logits(at: $0)) }
    }

    func maxDiff(_ a: [[Float]], _ b: [[Float]]) -> Float {
        zip(a, b).flatMap { zip($0, $1).map { abs($0 - $1) } }.max() ?? .infinity
    }

    /// With ALPHAEDIT_ROPE_CASES=DIR, writes each case's file there for the fixture script.
    func testWriteCasesForTheFixtureScript() throws {
        guard let dir = ProcessInfo.processInfo.environment["ALPHAEDIT_ROPE_CASES"] else {
            throw XCTSkip("ALPHAEDIT_ROPE_CASES not set (used by scripts/llamacpp-fixtures.sh)")
        }
        for (name, c) in Self.cases { try SyntheticModel.write(to: dir + "/\(name).gguf", config: c) }
        try (Self.tokens.map(String.init).joined(separator: " ") + "\n").write(toFile: dir + "/tokens.txt", atomically: true, encoding: .utf8)
        try (Self.rows.map(String.init).joined(separator: " ") + "\n").write(toFile: dir + "/rows.txt", atomically: true, encoding: .utf8)
    }

    /// Every case matches llama.cpp, and differs from the same model without its scaling by far more
    /// than that (so the comparison can tell scaled from unscaled), except "none" and gemma3's unscaled
    /// baseline, which must equal it. gemma3 is held to 2e-3: llama.cpp computes GELU from a float16
    /// table (GGML_GELU_FP16 in ggml-cpu's vec.h), and the unscaled baseline shows the same difference.
    func testLogitsMatchLlamaCpp() throws {
        let url = TestPaths.fixtures.appendingPathComponent("rope_scaling_llamacpp.json")
        let f = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        XCTAssertEqual(f.tokens, Self.tokens); XCTAssertEqual(f.rows, Self.rows)
        XCTAssertEqual(f.cases.map(\.name), Self.cases.map(\.name))
        for ((name, c), ref) in zip(Self.cases, f.cases) {
            let b = try bytes(c)
            XCTAssertEqual(checksum(b), ref.checksum, "\(name): the fixture was made from other bytes")
            var plain = c
            plain.ropeFreqs = nil; plain.ropeScalingType = nil; plain.ropeScalingFactor = nil
            plain.ropeOriginalContext = nil; plain.ropeAttnFactor = nil
            let ours = try logits(b), unscaled = try logits(bytes(plain))
            let d = maxDiff(ours, ref.logits), scaleEffect = maxDiff(unscaled, ref.logits)
            let magnitude = ref.logits.flatMap { $0 }.map(abs).max() ?? 0
            print(String(format: "%@: max |ours − llama.cpp| %.2e, unscaled − llama.cpp %.2e, max |logit| %.2f",
                         name, d, scaleEffect, magnitude))
            XCTAssertLessThan(d, (c.architecture == "gemma3" ? 2e-3 : 1e-4) * max(1, magnitude), name)
            if name.contains("none") || name.contains("base") {
                XCTAssertEqual(ours, unscaled, "scaling type none never scales")
            } else {
                XCTAssertGreaterThan(scaleEffect, 100 * d, "\(name): the scaling changes the logits measurably")
            }
        }
    }

    func testTraitsAndTables() throws {
        let (_, gemma) = Self.cases.first { $0.name == "gemma3-linear-8" }!
        let g = try LlamaModel(gguf: GGUFFile(bytes: bytes(gemma)))
        XCTAssertEqual(g.config.traits.ropeScaling.freqScale, 1.0 / 8)
        XCTAssertEqual(g.config.traits.ropeBaseLocal, 1_000)
        let (_, freqs) = Self.cases.first { $0.name == "llama-rope-freqs" }!
        let l = try LlamaModel(gguf: GGUFFile(bytes: bytes(freqs)))
        XCTAssertEqual(l.weights.ropeFactors, [1, 2, 3, 4, 5, 6, 7, 8])
        // θ of pair i at position p: p · base^(−2i/R) / factor_i (the table stores cos and sin).
        var half = RoPEScaling()
        half.freqScale = 0.5
        let t = RoPETable(dims: 16, base: 10_000, scaling: half, factors: [1, 2, 3, 4, 5, 6, 7, 8])
        t.ensure(40)
        var v = [Float](repeating: 0, count: 16)
        v[2] = 1  // pair 1 on interleaved pairs: (2, 3)
        var pos: [Int32] = [37]
        v.withUnsafeMutableBufferPointer { x in pos.withUnsafeMutableBufferPointer { t.apply(x.baseAddress!, pos: $0.baseAddress!, rows: 1, heads: 1, headDim: 16) } }
        let theta = 0.5 * 37 * pow(10_000.0, -2.0 / 16) / 2
        XCTAssertEqual(Double(v[2]), cos(theta), accuracy: 1e-6)
        XCTAssertEqual(Double(v[3]), sin(theta), accuracy: 1e-6)
    }

    func testUnsupportedScalingIsRefusedByName() throws {
        func refusal(_ c: SyntheticConfig, _ edit: (inout GGUFWriter) throws -> Void = { _ in }) throws -> String {
            var w = try SyntheticModel.writer(c)
            try edit(&w)
            do { _ = try LlamaModel(gguf: GGUFFile(bytes: w.bytes())); return "loaded" } catch { return "\(error)" }
        }
        for arch in ["llama", "qwen2", "qwen3"] {
            var c = SyntheticConfig(layers: 1, architecture: arch)
            c.ropeScalingType = "longrope"; c.ropeScalingFactor = 4
            XCTAssertEqual(try refusal(c), "model metadata \(arch).rope.scaling.type: RoPE scaling \"longrope\" is not supported (supported: none, linear, yarn)")
        }
        // gemma3: YaRN and an attention factor are refused (llama.cpp's local layers would see them apart).
        var gemmaYaRN = SyntheticConfig(layers: 6, architecture: "gemma3")
        gemmaYaRN.ropeScalingType = "yarn"; gemmaYaRN.ropeScalingFactor = 4
        XCTAssertEqual(try refusal(gemmaYaRN), "model metadata gemma3.rope.scaling.type: RoPE scaling \"yarn\" is not supported (supported: none, linear)")
        var gemmaAttn = SyntheticConfig(layers: 6, architecture: "gemma3")
        gemmaAttn.ropeAttnFactor = 0.5
        XCTAssertEqual(try refusal(gemmaAttn), "model metadata gemma3.rope.scaling.attn_factor: a RoPE attention factor other than 1 is not supported here (found 0.5)")
        XCTAssertEqual(try refusal(SyntheticConfig(layers: 6, architecture: "gemma3")) { try $0.set("gemma3.final_logit_softcapping", .float32(30)) },
                       "model metadata gemma3.final_logit_softcapping: a final logit soft-cap (30.0) is not supported")
        var badContext = SyntheticConfig(layers: 1)
        badContext.ropeScalingType = "yarn"; badContext.ropeScalingFactor = 4
        XCTAssertEqual(try refusal(badContext) { try $0.set("llama.rope.scaling.original_context_length", .int32(-3)) },
                       "model metadata llama.rope.scaling.original_context_length: not a positive integer: -3")
        var negative = SyntheticConfig(layers: 1)
        negative.ropeScalingFactor = -2
        XCTAssertEqual(try refusal(negative), "model metadata llama.rope.scaling.factor: not a factor ≥ 0: -2.0")
        // rope_freqs: only llama reads it; its shape and values are checked.
        var onQwen = SyntheticConfig(layers: 1, architecture: "qwen2")
        onQwen.ropeFreqs = [Float](repeating: 1, count: 8)
        XCTAssertEqual(try refusal(onQwen), "model tensor rope_freqs.weight is not part of this model's architecture")
        var short = SyntheticConfig(layers: 1)
        short.ropeFreqs = [1, 2, 3]
        XCTAssertEqual(try refusal(short), "model tensor rope_freqs.weight has shape [3], expected [8] (GGML order)")
        var zero = SyntheticConfig(layers: 1)
        zero.ropeFreqs = [1, 2, 3, 0, 5, 6, 7, 8]
        XCTAssertEqual(try refusal(zero), "model metadata rope_freqs.weight: divisor 3 is 0.0; each must be a finite number > 0")
    }
}
