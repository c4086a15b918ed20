import ArgumentParser
import Foundation
import Shared

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks that print figures.",
                                                    subcommands: [BenchForward.self])
}

struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "forward", abstract: "Forward-pass speed, load time and memory.")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Timed runs of the batch (the 10-token prompt runs 3× as many).") var runs = 7
    @Option(help: "Sentences for the batch.") var corpus = "../shared/data/wiki-triplets/trex.jsonl"
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let cfg = try modelOptions.resolved()
        let r = try ForwardBenchmark.run(modelPath: cfg.model, threads: cfg.threads, runs: runs, corpus: corpus)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
        } else {
            print(String(format: "10-token forward (median of %d)   %8.2f ms", r.runs_ms.count, r.median_ms))
            print(String(format: "batch %d × %d tokens (median)     %8.1f ms  %8.0f tokens/s  %6.1f GFLOP/s",
                         r.batch_sequences, r.batch_tokens / r.batch_sequences, r.batch_median_ms, r.batch_tokens_per_s, r.gflops))
            print(String(format: "load (map + dequantize)         %8.2f s", r.load_s))
            print(String(format: "peak resident memory            %8.0f MB", r.rss_mb))
        }
    }
}
