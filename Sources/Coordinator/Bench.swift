import ArgumentParser
import Foundation
import Logging
import Shared

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks that print figures.",
                                                    subcommands: [BenchForward.self, BenchEdit.self, BenchCluster.self,
                                                                  BenchVStar.self, BenchMath.self, BenchNullSpace.self, BenchTrace.self])
}

struct BenchTrace: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "trace",
        abstract: "Causal trace: the indirect effect of each layer's MLP at the subject's last token (how edited layers are chosen).")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Facts with a true target.") var facts = "../shared/data/pararel-cf/dev.jsonl"
    @Option(help: "Facts to trace (the first N).") var count = 50
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws { try benchInputs(counts: ["--count": count], files: ["--facts": facts]) }

    func run() throws {
        let cfg = try modelOptions.resolved()
        let r = try CausalTraceBenchmark.run(modelPath: cfg.model, facts: facts, count: count) { log($0) }
        if json { try printJSON(r); return }
        print(r.kernels.line)
        print(String(format: "%@: %d of %d facts traced; p(true) clean %.3f, subject corrupted %.3f (noise σ %.3f)",
                     r.model, r.used, r.facts, r.p_clean, r.p_corrupted, r.noise_sigma))
        let mx = r.indirect_effect.max() ?? 1
        for (l, e) in r.indirect_effect.enumerated() {
            let bar = String(repeating: "█", count: max(0, Int((e / max(mx, 1e-12)) * 40)))
            print(String(format: "layer %2d  %+.4f  %@", l, e, bar))
        }
        print("best window of 5 (first two thirds): \(r.best_window.map(String.init).joined(separator: ","))")
    }
}

struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "forward", abstract: "Forward-pass speed, load time and memory.")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Timed runs of the batch (the 10-token prompt runs 3× as many).") var runs = 7
    @Option(help: "Sentences for the batch.") var corpus = "../shared/data/wiki-triplets/trex.jsonl"
    @Flag(help: "Also time each kind of matrix product in separate 10-token forwards and generation steps.") var breakdown = false
    @Option(help: "Activations of the few-token products: float32, or int8 (rounded per block of 32, as llama.cpp).") var activations: Activations = .float32
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws { try benchInputs(counts: ["--runs": runs], files: ["--corpus": corpus]) }

    func run() throws {
        let cfg = try modelOptions.resolved()
        let r = try ForwardBenchmark.run(modelPath: cfg.model, threads: cfg.threads, runs: runs, corpus: corpus, breakdown: breakdown,
                                         activations: activations)
        if json {
            try printJSON(r)
        } else {
            print(r.kernels.line + (r.activations == "int8" ? "; activations int8 (rounded per block of 32; int8 kernels \(QuantizedLinear.int8Kernels), up to \(QuantizedLinear.int8MaxRows) token rows)" : ""))
            print(String(format: "10-token forward (median of %d)   %8.2f ms  (target ≤ %.1f ms: 1.5 × %.2f GFLOP at sgemm's %.0f GFLOP/s here)",
                         r.runs_ms.count, r.median_ms, r.target_ms, r.prompt_gflop, r.sgemm_gflops))
            print(String(format: "generation step (median of %d)    %8.2f ms  %8.1f tokens/s  (greedy, KV cache, after the prompt)",
                         r.decode_steps, r.decode_step_ms, r.decode_tokens_per_s))
            print(String(format: "batch %d × %d tokens (median)     %8.1f ms  %8.0f tokens/s  %6.1f GFLOP/s",
                         r.batch_sequences, r.batch_tokens / r.batch_sequences, r.batch_median_ms, r.batch_tokens_per_s, r.gflops))
            print(String(format: "load (map + dequantize)         %8.2f s     weights: %@", r.load_s,
                         r.weights == "lean" ? "lean (matrices read from the mapped file)" : "float32 copies"))
            print(String(format: "peak resident memory            %8.0f MB", r.rss_mb))
            if let b = r.breakdown {
                printBreakdown("10-token forward", b.prompt, passes: b.prompt_passes, total: b.prompt_ms, other: b.prompt_other_ms, sgemm: r.sgemm_gflops)
                printBreakdown("generation step", b.step, passes: b.step_passes, total: b.step_ms, other: b.step_other_ms, sgemm: r.sgemm_gflops)
            }
        }
    }

    /// One pass's products, a row per role, kernel and row count, then the rest of the pass.
    private func printBreakdown(_ title: String, _ rows: [ForwardBenchmark.Row], passes: Int, total: Double, other: Double, sgemm: Double) {
        func left(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        func right(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
        print("")
        print(String(format: "%@, profiled (mean of %d passes: %.2f ms)", title, passes, total))
        print("product  kernel       shape  tokens  calls       ms   share  GFLOP/s  of sgemm  weights MB   GB/s")
        for row in rows {
            print(left(row.role, 7) + "  " + left(row.kernel, 6) + right("\(row.out_dim)×\(row.in_dim)", 11)
                  + String(format: "  %6d  %5.0f  %7.2f  %5.1f%%  %7.1f  %7.0f%%  %10.1f  %5.1f",
                           row.tokens, row.calls, row.ms, 100 * row.ms / total, row.gflops, 100 * row.gflops / sgemm,
                           row.weight_mb, row.ms > 0 ? row.weight_mb / row.ms : 0))
        }
        print(left("other", 7) + String(repeating: " ", count: 34)
              + String(format: "%7.2f  %5.1f%%  (attention, norms, RoPE, activations, embedding)", other, 100 * other / total))
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

    func validate() throws {
        try benchInputs(counts: ["--edits": edits, "--sentences": sentences], files: ["--corpus": corpus, "--facts": facts])
    }

    func run() throws {
        let cfg = try modelOptions.resolved()
        let r = try EditBenchmark.run(modelPath: cfg.model, hp: cfg.hyperparameters, corpus: corpus, facts: facts, edits: edits,
                                      sentences: sentences, threads: cfg.threads) { log($0) }
        if json {
            try printJSON(r)
        } else {
            print(r.kernels.line)
            print(String(format: "K0 statistics, 5 layers        %8.0f tokens/s   (reference 1,219; target ≥ 2,000)", r.cov_tokens_per_s))
            print(String(format: "v* per request                 %8.2f s          (reference 14.2 s; target ≤ 4.5 s)", r.z_seconds_per_request))
            print(String(format: "100 edits, AlphaEdit           %8.0f s          (reference ≈ 1,650 s; target ≤ 500 s)", r.seconds_per_100_edits_alphaedit))
            print(String(format: "100 edits, MEMIT               %8.0f s", r.seconds_per_100_edits_memit))
            print(String(format: "AlphaEdit overhead over MEMIT  %8.2f %%         (target ≤ 2%%)", r.alphaedit_overhead_pct))
        }
    }
}

struct BenchCluster: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cluster",
        abstract: "Pipeline cost: K0 statistics in-process vs 1 and 2 local workers, v* in-process vs 2 workers, coordinator scaling.")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var clusterOptions: ClusterOptions
    @Option(help: "Corpus sentences for K0.") var sentences = 2000
    @Option(help: "Sentences per shard.") var shardSentences = 500
    @Option(help: "Rounds of the four K0 set-ups (in-process, 1 worker, 2 workers over ipc, 2 over tcp+CURVE), alternating (medians reported).") var repeats = 3
    @Option(help: "v* requests (from the facts file).") var requests = 8
    @Option var corpus = "../shared/data/wiki-triplets/trex.jsonl"
    @Option var facts = "../shared/data/pararel-cf/dev.jsonl"
    @Option(help: "Directory for the ipc sockets.") var scratch = "state/bench"
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        try benchInputs(counts: ["--sentences": sentences, "--shard-sentences": shardSentences, "--repeats": repeats, "--requests": requests],
                        files: ["--corpus": corpus, "--facts": facts])
    }

    func run() throws {
        var cfg = try modelOptions.resolved()
        try clusterOptions.apply(to: &cfg)
        try FileIO.makeDirectory(scratch)
        let dir = AbsolutePath.of(scratch)
        let r = try ClusterBenchmark.run(modelPath: cfg.model, corpus: corpus, facts: facts, sentences: sentences, requests: requests,
                                         shardSentences: shardSentences, threads: cfg.threads, layers: cfg.hyperparameters.layers, repeats: repeats,
                                         directory: dir, log: Logger(label: "coordinator")) { log($0) }
        if json {
            try printJSON(r)
        } else {
            print(r.kernels.line)
            print(String(format: "K0 statistics, %d tokens: in-process %.0f, 1 worker %.0f, 2 workers %.0f tokens/s; overhead 1 worker %.1f%%, 2 workers %.1f%% (target ≤ 5%%; max rel diff %.1e)",
                         r.tokens, r.cov_in_process_tokens_per_s, r.cov_1_worker_tokens_per_s, r.cov_2_workers_tokens_per_s,
                         r.cov_1_worker_overhead_pct, r.cov_pipeline_overhead_pct, r.max_rel_diff_vs_in_process))
            print(String(format: "2 workers over tcp (loopback) with CURVE: %.0f tokens/s, %+.1f%% time against ipc; one shard's transfer: ipc %.0f MB/s, tcp %.0f MB/s, tcp+CURVE %.0f MB/s",
                         r.cov_2_workers_tcp_curve_tokens_per_s, r.cov_tcp_curve_overhead_pct, r.transfer_ipc_bytes_per_s / 1e6,
                         r.transfer_tcp_bytes_per_s / 1e6, r.transfer_tcp_curve_bytes_per_s / 1e6))
            print(String(format: "v*, %d requests: in-process %.1f, 2 workers %.1f requests/min", r.vstar_requests,
                         r.vstar_in_process_requests_per_min, r.vstar_2_workers_requests_per_min))
            print(String(format: "per shard: %.1f MB; transfer %.2f GB/s, decode %.2f GB/s, merge %.2f GB/s → coordinator %.3f s/shard, worker %.2f s/shard → %.0f workers before the coordinator is the bottleneck",
                         Double(r.shard_payload_bytes) / 1e6, r.transfer_bytes_per_s / 1e9, r.decode_bytes_per_s / 1e9,
                         r.merge_bytes_per_s / 1e9, r.coordinator_seconds_per_shard, r.worker_seconds_per_shard,
                         r.workers_before_coordinator_bound))
        }
    }
}

struct BenchVStar: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vstar",
        abstract: "v* speed with and without the cached prefix, alternating rounds: wall and CPU seconds per request.")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Requests (from the facts file).") var requests = 8
    @Option(help: "Rounds of the two set-ups, alternating (medians reported).") var rounds = 2
    @Option var facts = "../shared/data/pararel-cf/dev.jsonl"
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws { try benchInputs(counts: ["--requests": requests, "--rounds": rounds], files: ["--facts": facts]) }

    func run() throws {
        let cfg = try modelOptions.resolved()
        let r = try VStarBenchmark.run(modelPath: cfg.model, hp: cfg.hyperparameters, facts: facts, requests: requests, rounds: rounds,
                                       threads: cfg.threads) { log($0) }
        if json { return try printJSON(r) }
        print(r.kernels.line)
        print(String(format: "v*, %d requests, %d thread(s): prefix reused %.2f s wall / %.2f s CPU per request; recomputed %.2f / %.2f (medians)",
                     r.requests, r.threads, r.median_wall_reuse, r.median_cpu_reuse, r.median_wall_no_reuse, r.median_cpu_no_reuse))
    }
}

struct BenchMath: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "math",
        abstract: "Edit math at SmolLM2 sizes on random data: K0 accumulation, projector, AlphaEdit and MEMIT solves.")
    @Option(help: "OpenBLAS threads.") var threads = 2
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws { guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1-256") } }

    func run() throws {
        let r = try EditMathBenchmark.run(threads: threads) { log($0) }
        if json { return try printJSON(r) }
        print(r.kernels.line)
        print(String(format: "accumulate f=%d, 5 layers, float64: %.0f tokens/s (%.1f GFLOP/s; float32 ssyrk %.0f tokens/s)",
                     r.f, r.accumulate_tokens_per_s, r.accumulate_gflops, r.accumulate_float32_tokens_per_s))
        print(String(format: "statistics artifact %.0f MB: serialize + read %.2f s", r.statistics_artifact_mb, r.statistics_round_trip_seconds))
        print(String(format: "projector (dsyevd + basis): %.3f s, kept %d of %d", r.projector_seconds, r.kept_dimension, r.f))
        print(String(format: "solve d=%d u=100: AlphaEdit %.3f s (Cp = 0: %.3f s), MEMIT %.3f s (best of 3)",
                     r.d, r.alphaedit_solve_seconds, r.alphaedit_solve_no_cp_seconds, r.memit_solve_seconds))
    }
}

struct BenchNullSpace: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nullspace",
        abstract: "The null-space threshold τ: kept fraction, efficacy and change on preserved keys, with C0's spectrum.")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Edits in the batch (from the facts file).") var requests = 20
    @Option(help: "Corpus sentences for K0.") var sentences = 1000
    @Option var corpus = "../shared/data/wiki-triplets/trex.jsonl"
    @Option var facts = "../shared/data/pararel-cf/dev.jsonl"
    @Option(help: "Absolute thresholds τ, comma-separated.") var taus = "2e-2,1e-2,5e-3,2e-3,1e-3"
    @Option(help: "Relative thresholds ρ (τ_l = ρ · λ_max of layer l), comma-separated.") var relative = ""
    @Option(help: "Trace shares s (each layer's null space holds at most s of C0's trace), comma-separated.") var traceShares = ""
    @Option(help: "MEMIT λm values to compare with (same v*), comma-separated.") var memitLambdas = ""
    @Option(help: ArgumentHelp("K0 statistics built by `alphaedit cov` (comma-separated files are summed) instead of --sentences.",
                               discussion: "Each must be of this model and these layers, over disjoint sentence ranges."))
    var statistics: String?
    @Option(help: ArgumentHelp("Statistics of held-out sentences (`alphaedit cov --offset A --sentences N`, outside K0): the change "
                               + "on their keys and their energy in the kept directions.")) var heldOutStatistics: String?
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        try benchInputs(counts: ["--requests": requests, "--sentences": sentences],
                        files: statistics == nil ? ["--corpus": corpus, "--facts": facts] : ["--facts": facts])
        for (list, name) in [(taus, "taus"), (relative, "relative"), (traceShares, "trace-shares"), (memitLambdas, "memit-lambdas")] {
            _ = try numbers(list, name)
        }
    }

    func numbers(_ s: String, _ name: String) throws -> [Double] {
        try s.split(separator: ",").map { t in
            guard let v = Double(t.trimmingCharacters(in: .whitespaces)), v.isFinite, v > 0 else {
                throw ValidationError("--\(name): \"\(t)\" is not a positive number")
            }
            return v
        }
    }

    /// The statistics in `paths`, each checked to be of this model and these layers and of one corpus
    /// (`corpus`, a checksum, when given; else the first file's), summed; with the sentence ranges they
    /// cover and the corpus checksum, so disjoint ranges mean disjoint sentences.
    static func load(_ paths: [String], model: String, layers: [Int], corpus: String? = nil) throws -> (KeyStatistics, [Range<Int>], String) {
        let checksum = try EditState.fileChecksum(model)
        var sum: KeyStatistics?
        var ranges: [Range<Int>] = []
        var corpus = corpus
        for path in paths {
            let s = try KeyStatistics.read(from: path)
            guard let src = s.source else { throw ValidationError("\(path) does not record what it was built from") }
            guard src.modelChecksum == checksum else { throw ValidationError("\(path) was built from another model (checksum \(src.modelChecksum), \(model) is \(checksum))") }
            guard src.layers == layers else { throw ValidationError("\(path) is of layers \(LayerList.format(src.layers)), this run edits \(LayerList.format(layers))") }
            guard src.corpusChecksum == corpus ?? src.corpusChecksum else {
                throw ValidationError("\(path) was built from another corpus (checksum \(src.corpusChecksum), the others' \(corpus ?? ""))")
            }
            corpus = src.corpusChecksum
            if let other = ranges.first(where: { $0.overlaps(src.sentences) }) {
                throw ValidationError("\(path): sentences \(src.sentences) overlap \(other) of another file")
            }
            ranges.append(src.sentences)
            if sum == nil { sum = s } else { try sum!.merge(s) }
        }
        guard let sum, let corpus else { throw ValidationError("no statistics file given") }
        return (sum, ranges, corpus)
    }

    /// `s` left-aligned in `width` columns (String(format:)'s %-18@ does not pad on Linux).
    func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s.padding(toLength: width, withPad: " ", startingAt: 0) }

    /// How the tables name a row's update.
    static func name(_ row: NullSpaceBenchmark.Row) -> String {
        row.memit_lambda.map { String(format: "MEMIT λm %g", $0) }
            ?? row.relative.map { String(format: "ρ %.0e", $0) } ?? row.trace_share.map { String(format: "trace %.0e", $0) }
            ?? String(format: "τ %.0e", row.tau ?? 0)
    }

    func run() throws {
        let cfg = try modelOptions.resolved()
        let layers = cfg.hyperparameters.layers
        var given: (KeyStatistics, [Range<Int>], String)?
        if let statistics {
            given = try Self.load(statistics.split(separator: ",").map(String.init), model: cfg.model, layers: layers)
        }
        let k0Ranges = given?.1 ?? [0..<sentences]
        var heldOut: KeyStatistics?
        if let heldOutStatistics {
            // Without --statistics K0 is built here from --corpus: the held-out file must be of that corpus.
            let k0Corpus = try given?.2 ?? EditState.fileChecksum(corpus)
            let (h, hr, _) = try Self.load([heldOutStatistics], model: cfg.model, layers: layers, corpus: k0Corpus)
            if let o = k0Ranges.first(where: { $0.overlaps(hr[0]) }) {
                throw ValidationError("held-out sentences \(hr[0]) overlap K0's \(o): they must lie outside K0")
            }
            heldOut = h
        }
        let r = try NullSpaceBenchmark.run(modelPath: cfg.model, hp: cfg.hyperparameters, corpus: corpus, facts: facts, requests: requests,
                                           sentences: k0Ranges.reduce(0) { $0 + $1.count }, taus: try numbers(taus, "taus"),
                                           relative: try numbers(relative, "relative"), traceShares: try numbers(traceShares, "trace-shares"),
                                           memitLambdas: try numbers(memitLambdas, "memit-lambdas"), threads: cfg.threads,
                                           statistics: given?.0, heldOut: heldOut) { log($0) }
        if json { return try printJSON(r) }
        print(r.kernels.line)
        for l in r.layers {
            print(String(format: "layer %d: C0 eigenvalues min %.2e, median %.2e, max %.2e", l.layer, l.eigenvalue_min, l.eigenvalue_median, l.eigenvalue_max))
        }
        print(String(format: "%d edits, K0 of %d sentences, efficacy before %.1f", r.requests, r.sentences, r.efficacy_before))
        print("update             kept % per layer        trace kept per layer        efficacy  ‖ΔW k‖/‖W k‖ mean   max")
        for row in r.rows {
            let kept = row.kept_fraction.isEmpty ? "–" : row.kept_fraction.map { String(format: "%.0f", 100 * $0) }.joined(separator: "/")
            let trace = row.kept_trace_share.isEmpty ? "–" : row.kept_trace_share.map { String(format: "%.1g", $0) }.joined(separator: "/")
            let what = Self.name(row)
            print(pad(what, 18) + " " + pad(kept, 23) + " " + pad(trace, 27)
                  + String(format: " %8.1f  %.2e          %.2e", row.efficacy, row.preserved_change_mean, row.preserved_change_max))
        }
        // Every token's key: RMS ‖ΔW k‖ / RMS ‖W k‖ over K0 and over the held-out sentences, per layer.
        func list(_ v: [Double], _ fmt: String) -> String { v.isEmpty ? "–" : v.map { String(format: fmt, $0) }.joined(separator: "/") }
        func range(_ provenance: String) -> String {
            K0Source(provenance: provenance).map { "sentences \($0.sentences.lowerBound)..<\($0.sentences.upperBound)" } ?? provenance
        }
        print("every token's key (K0: \(r.k0_source.isEmpty ? "built here" : range(r.k0_source))"
              + (r.held_out_source.map { "; held out: " + range($0) } ?? "") + "): RMS ‖ΔW k‖ / RMS ‖W k‖ per layer")
        print("update             on K0's keys                      on held-out keys                  held-out energy kept")
        for row in r.rows {
            let what = Self.name(row)
            print(pad(what, 18) + " " + pad(list(row.k0_change, "%.3f"), 33) + " " + pad(list(row.held_out_change, "%.3f"), 33) + " "
                  + list(row.held_out_kept_trace_share, "%.2g"))
        }
    }
}

/// The checks every benchmark makes before it loads anything: each count at least 1 (a benchmark of 0
/// requests used to build K0 first, then fail), each input file readable (the defaults are relative to the
/// repository's root).
func benchInputs(counts: KeyValuePairs<String, Int>, files: KeyValuePairs<String, String>) throws {
    for (name, n) in counts where n < 1 { throw ValidationError("\(name) must be at least 1") }
    for (name, path) in files {
        if let problem = inputProblem(option: name, path: path) { throw ValidationError(problem) }
    }
}
