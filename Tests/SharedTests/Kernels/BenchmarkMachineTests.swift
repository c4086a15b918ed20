// What `bench forward` reports about the machine beside its figures: the CPU's name, family and model
// (VMs of one name run on different hosts) and this machine's sgemm rate, from which the forward's
// FLOP target is computed in the same run.
import Foundation
import Shared
import XCTest

final class BenchmarkMachineTests: XCTestCase {
    func testCPUModelNamesFamilyAndModel() throws {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8), info.contains("model name") else {
            throw XCTSkip("no /proc/cpuinfo model name here")
        }
        let cpu = try XCTUnwrap(KernelChoice.current.cpu_model)
        let name = try XCTUnwrap(info.split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces))
        XCTAssertTrue(cpu.hasPrefix(name), "\(cpu) starts with the first processor's name \(name)")
        if info.contains("cpu family") { XCTAssertTrue(cpu.contains("(family "), cpu) }
        XCTAssertTrue(KernelChoice.current.line.hasPrefix("CPU: \(cpu); "))
    }

    func testSgemmRateAndTargetArePositive() throws {
        let rate = try ForwardBenchmark.sgemmRate(n: 256, runs: 3)
        XCTAssertTrue(rate.isFinite && rate > 0, "\(rate) GFLOP/s")
        let cfg = try LlamaModel(gguf: GGUFFile(bytes: SyntheticModel.writer(SyntheticConfig(layers: 2)).bytes())).config
        let one = ForwardBenchmark.flops(config: cfg, lengths: [10], logitRows: 1)
        XCTAssertGreaterThan(ForwardBenchmark.flops(config: cfg, lengths: [10], logitRows: 2), one, "each logit row adds the LM head")
        XCTAssertGreaterThan(one, 2.0 * 10 * Double(cfg.layers * cfg.hidden * cfg.ffn * 3), "at least the MLPs' multiply-adds")
    }

    /// The generation figure times real decoding: its tokens are the greedy continuation that the
    /// full-sequence `Generator` gives, and every step is timed once per round.
    func testDecodeStepsAreGreedyGeneration() throws {
        let gguf = try GGUFFile(bytes: SyntheticModel.writer(SyntheticConfig(layers: 2)).bytes())
        let model = try LlamaModel(gguf: gguf)
        let prompt: [Int32] = [1, 7, 3, 9, 4]
        let r = try ForwardBenchmark.decodeSteps(model: model, prompt: prompt, steps: 6, rounds: 2)
        XCTAssertEqual(r.seconds.count, 12)
        XCTAssertTrue(r.seconds.allSatisfy { $0 > 0 && $0.isFinite })
        var sampler = Sampler()
        let want = try Generator(model: model, tokenizer: BPETokenizer(gguf: gguf))
            .generate(ids: prompt, maxTokens: 6, sampler: &sampler, stopAtEOS: false)
        XCTAssertEqual(r.tokens, want)
    }
}
