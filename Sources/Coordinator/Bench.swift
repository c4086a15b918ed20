import ArgumentParser
import Foundation
import Shared

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks that print figures.",
                                                    subcommands: [BenchForward.self, BenchEdit.self])
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

struct BenchEdit: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "edit",
        abstract: "Edit-engine speed: K0 statistics, v*, a batch of AlphaEdit vs MEMIT updates.")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Edits in the batch (from the facts file).") var edits = 100
    @Option(help: "Corpus sentences for K0.") var sentences = 2000
    @Option var corpus = "../shared/data/wiki-triplets/trex.jsonl"
    @Option var facts = "../shared/data/pararel-cf/dev.jsonl"
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let cfg = try modelOptions.resolved()
        let r = try EditBenchmark.run(modelPath: cfg.model, corpus: corpus, facts: facts, edits: edits,
                                      sentences: sentences, threads: cfg.threads) { log($0) }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
        } else {
            print(String(format: "K0 statistics, 5 layers        %8.0f tokens/s   (reference 1,219; target ≥ 2,000)", r.cov_tokens_per_s))
            print(String(format: "v* per request                 %8.2f s          (reference 14.2 s; target ≤ 4.5 s)", r.z_seconds_per_request))
            print(String(format: "100 edits, AlphaEdit           %8.0f s          (reference ≈ 1,650 s; target ≤ 500 s)", r.seconds_per_100_edits_alphaedit))
            print(String(format: "100 edits, MEMIT               %8.0f s", r.seconds_per_100_edits_memit))
            print(String(format: "AlphaEdit overhead over MEMIT  %8.2f %%         (target ≤ 2%%)", r.alphaedit_overhead_pct))
        }
    }
}
