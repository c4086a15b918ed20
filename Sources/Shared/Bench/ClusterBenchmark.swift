// `alphaedit bench cluster`: what the pipeline costs and how far it scales (issue 4 §6).
//  - K0 statistics on one corpus slice: in-process (all threads) vs 1 local worker (all threads) vs
//    2 local workers (half each): tokens/s, and the pipeline's overhead at equal total threads.
//  - v*: requests/min in-process vs 2 local workers (fixed chunks).
//  - The same 2-worker build over tcp (loopback) with CURVE: what authentication and encryption cost
//    against ipc, in the same rounds; and one shard's transfer over ipc, plain tcp and tcp+CURVE.
//  - The coordinator's per-shard cost (transfer of one shard result over the endpoint, checksum +
//    decode, merge), measured, and from it the worker count at which the coordinator saturates.
import Support
import Corpus
import Kernels
import Model
import Tokenization
import Editing
import Wire
import Cluster
import Foundation
import Logging

public struct ClusterBenchmarkReport: Codable, Sendable {
    public var threads: Int
    /// Rounds of the three K0 set-ups (alternating); the rates are of the median round time.
    public var repeats: Int
    public var sentences: Int
    public var tokens: Int
    public var shard_sentences: Int
    public var cov_in_process_tokens_per_s: Double
    public var cov_1_worker_tokens_per_s: Double
    public var cov_2_workers_tokens_per_s: Double
    /// 2 workers × threads/2 over tcp://127.0.0.1 with CURVE (same rounds as the ipc figures).
    public var cov_2_workers_tcp_curve_tokens_per_s: Double
    /// (t(2 workers, tcp+CURVE) − t(2 workers, ipc)) / t(2 workers, ipc), percent.
    public var cov_tcp_curve_overhead_pct: Double
    /// One shard result DEALER → ROUTER (median of 5), bytes/s.
    public var transfer_ipc_bytes_per_s: Double
    public var transfer_tcp_bytes_per_s: Double
    public var transfer_tcp_curve_bytes_per_s: Double
    /// (t(2 workers × threads/2) − t(in-process, threads)) / t(in-process), percent.
    public var cov_pipeline_overhead_pct: Double
    /// (t(1 worker × threads) − t(in-process, threads)) / t(in-process), percent.
    public var cov_1_worker_overhead_pct: Double
    public var max_rel_diff_vs_in_process: Double
    public var vstar_requests: Int
    public var vstar_in_process_requests_per_min: Double
    public var vstar_2_workers_requests_per_min: Double
    /// Scaling: per-shard figures (f, layers from the run).
    public var f: Int
    public var layers: Int
    public var shard_payload_bytes: Int
    public var transfer_bytes_per_s: Double
    public var decode_bytes_per_s: Double
    public var merge_bytes_per_s: Double
    public var coordinator_seconds_per_shard: Double
    public var worker_seconds_per_shard: Double
    /// Workers at which the coordinator's per-shard work fills its time: worker s/shard ÷ coordinator s/shard.
    public var workers_before_coordinator_bound: Double
    public var kernels = KernelChoice.current
}

public enum ClusterBenchmark {
    public static func run(modelPath: String, corpus: String, facts: String, sentences: Int, requests: Int,
                           shardSentences: Int, threads: Int, layers: [Int], repeats: Int, directory: String,
                           log: Logger, say: (String) -> Void) throws -> ClusterBenchmarkReport {
        let model = try LlamaModel(path: modelPath)
        let tok = try BPETokenizer(gguf: model.gguf)
        let f = model.config.ffn
        let range = 0..<sentences
        let corpusPath = AbsolutePath.of(corpus)

        // The three set-ups alternate `repeats` times and the medians are reported: on a shared machine
        // the load drifts, and alternating spreads the drift over all three instead of biasing one.
        func inProcessRun() throws -> (Double, KeyStatistics) {
            // One forward per thread, one BLAS thread each (as `cov`).
            let t0 = ProcessStats.now()
            let s = try CovarianceBuilder(model: model, tokenizer: tok, layers: layers, workers: threads)
                .build(corpus: corpusPath, range: range)
            return (ProcessStats.now() - t0, s)
        }
        let plan = CovarianceJobPlan(corpus: corpusPath, range: range, layers: layers, f: f, shardSentences: shardSentences)
        func startPool(_ n: Int, curve: Bool = false) throws -> WorkerPool {
            let checksum = try ModelChecksum.of(path: modelPath)
            let pool = curve
                ? try WorkerPool.withEphemeralCurve(endpoint: "tcp://127.0.0.1:\(try freePort())", modelChecksum: checksum, logger: log)
                : try WorkerPool(endpoint: "ipc://\(directory)/bench-\(n).ipc", modelChecksum: checksum, logger: log)
            try pool.spawnLocal(count: n, modelPath: AbsolutePath.of(modelPath), threads: max(1, threads / n), logLevel: "warning")
            let ready = ProcessStats.now() + 60
            while pool.aliveCount < n, ProcessStats.now() < ready { usleep(20_000) }
            return pool
        }
        let pools = [try startPool(1), try startPool(2), try startPool(2, curve: true)]
        defer { for p in pools { p.shutdown() } }
        var maxRel = 0.0, timings = ReductionTimings(), tokens = 0
        var times: [[Double]] = [[], [], [], []]
        for r in 0..<repeats {
            let (t, reference) = try inProcessRun()
            tokens = try reference.count(layer: layers[0])
            times[0].append(t)
            for (i, pool) in pools.enumerated() {
                let t0 = ProcessStats.now()
                let (stats, tm) = try DistributedCovariance.build(pool: pool, plan: plan, provenance: "bench")
                times[i + 1].append(ProcessStats.now() - t0)
                if i < 2 { timings = tm }
                maxRel = max(maxRel, try relativeDifference(stats, reference))
            }
            say(String(format: "K0 round %d/%d, %d tokens: in-process %.1f s, 1 worker %.1f s, 2 workers %.1f s, 2 workers tcp+CURVE %.1f s",
                       r + 1, repeats, tokens, times[0][r], times[1][r], times[2][r], times[3][r]))
        }
        let median = times.map { $0.sorted()[$0.count / 2] }
        let (inProcess, one, two, twoCurve) = (median[0], median[1], median[2], median[3])

        // v*: the same requests, chunks of `chunk`, in-process then on 2 workers.
        let reqs = try FactsFile.read(path: facts, limit: requests)
        let templates = try ContextTemplates.generate(model: model, tokenizer: tok, seed: 0)
        var hp = EditHyperparameters()
        hp.layers = layers
        let tz = ProcessStats.now()
        _ = try ComputeZ(model: model, tokenizer: tok, hp: hp).run(reqs, templates: templates)
        let zIn = ProcessStats.now() - tz
        say(String(format: "v* in-process: %d requests in %.1f s", reqs.count, zIn))
        let chunk = (reqs.count + 1) / 2
        let zTwo: Double = try {
            let pool = pools[1]
            let works: [Work] = stride(from: 0, to: reqs.count, by: chunk).enumerated().map { i, s in
                .vstar(VStarChunk(batch: 1, chunk: i, requests: Array(reqs[s..<min(s + chunk, reqs.count)]),
                                  hyperparameters: hp, templates: templates))
            }
            let t = ProcessStats.now()
            try pool.run(works) { _, _, _ in }
            return ProcessStats.now() - t
        }()
        say(String(format: "v* 2 workers: %d requests in %.1f s", reqs.count, zTwo))

        // The coordinator's share per shard: transfer (measured here over ipc), decode, merge.
        let payload = timings.payloadBytes / max(1, timings.shards)
        let transfer = try transferRate(bytes: payload, endpoint: "ipc://\(directory)/bench-transfer.ipc")
        let transferTCP = try transferRate(bytes: payload, endpoint: "tcp://127.0.0.1:\(try freePort())")
        let transferCurve = try transferRate(bytes: payload, endpoint: "tcp://127.0.0.1:\(try freePort())", curve: true)
        say(String(format: "one %.1f MB shard: ipc %.0f MB/s, tcp %.0f MB/s, tcp+CURVE %.0f MB/s",
                   Double(payload) / 1e6, transfer / 1e6, transferTCP / 1e6, transferCurve / 1e6))
        let decodeRate = Double(timings.payloadBytes) / max(timings.decodeSeconds, 1e-9)
        let mergeRate = Double(timings.payloadBytes) / max(timings.mergeSeconds, 1e-9)
        let perShard = Double(payload) / transfer + Double(payload) / decodeRate + Double(payload) / mergeRate
        // A worker with `threads` threads computes a shard at the 1-worker rate.
        let workerPerShard = Double(tokens) / Double(plan.shards.count) / (Double(tokens) / one)
        return ClusterBenchmarkReport(
            threads: threads, repeats: repeats, sentences: sentences, tokens: tokens, shard_sentences: shardSentences,
            cov_in_process_tokens_per_s: Double(tokens) / inProcess, cov_1_worker_tokens_per_s: Double(tokens) / one,
            cov_2_workers_tokens_per_s: Double(tokens) / two,
            cov_2_workers_tcp_curve_tokens_per_s: Double(tokens) / twoCurve, cov_tcp_curve_overhead_pct: 100 * (twoCurve - two) / two,
            transfer_ipc_bytes_per_s: transfer, transfer_tcp_bytes_per_s: transferTCP, transfer_tcp_curve_bytes_per_s: transferCurve,
            cov_pipeline_overhead_pct: 100 * (two - inProcess) / inProcess,
            cov_1_worker_overhead_pct: 100 * (one - inProcess) / inProcess,
            max_rel_diff_vs_in_process: maxRel, vstar_requests: reqs.count,
            vstar_in_process_requests_per_min: 60 * Double(reqs.count) / zIn,
            vstar_2_workers_requests_per_min: 60 * Double(reqs.count) / zTwo,
            f: f, layers: layers.count, shard_payload_bytes: payload, transfer_bytes_per_s: transfer,
            decode_bytes_per_s: decodeRate, merge_bytes_per_s: mergeRate, coordinator_seconds_per_shard: perShard,
            worker_seconds_per_shard: workerPerShard, workers_before_coordinator_bound: workerPerShard / perShard)
    }

    /// Bytes/s of one `bytes`-sized message DEALER → ROUTER on `endpoint` (median of 5), with CURVE
    /// on both ends when `curve` (fresh keys; the ROUTER's ZAP handler admits the DEALER's key).
    static func transferRate(bytes: Int, endpoint: String, curve: Bool = false) throws -> Double {
        let ctx = try ZMQContext()
        var zap: ZAPHandler?
        defer { zap?.stop() }
        let router = try ZMQSocket(ctx, .router), dealer = try ZMQSocket(ctx, .dealer)
        if curve {
            let server = try CurveKeyPair.generate(), client = try CurveKeyPair.generate()
            zap = try ZAPHandler(context: ctx, authorized: AuthorizedKeys([client.publicKey: "bench"])) { _ in }
            try router.secure(.curve(server, authorized: AuthorizedKeys([client.publicKey: "bench"])))
            try dealer.secure(.curve(client, server: server.publicKey))
        }
        try router.bind(endpoint)
        try dealer.connect(endpoint)
        let blob = [UInt8](repeating: 0x5a, count: bytes)
        var times: [Double] = []
        for _ in 0..<6 {
            let t = ProcessStats.now()
            try dealer.send([blob])
            guard try router.receive(timeoutMs: 30_000) != nil else { throw ZMQError.call("bench transfer", errno: 0, message: "nothing arrived in 30 s") }
            times.append(ProcessStats.now() - t)
        }
        dealer.close()
        router.close()
        return Double(bytes) / times.dropFirst().sorted()[2]  // the first includes the connection (and handshake)
    }

    /// A tcp port free on loopback now (bound, read, released).
    static func freePort() throws -> Int {
        let ctx = try ZMQContext()
        let s = try ZMQSocket(ctx, .router)
        try s.bind("tcp://127.0.0.1:*")
        let e = try s.lastEndpoint()
        s.close()
        guard let p = Int(e.split(separator: ":").last ?? "") else { throw ZMQError.call("free port", errno: 0, message: e) }
        return p
    }

    static func relativeDifference(_ a: KeyStatistics, _ b: KeyStatistics) throws -> Double {
        var diff = 0.0, scale = 0.0
        for l in b.layers {
            let x = try a.sum(layer: l).values, y = try b.sum(layer: l).values
            for i in y.indices { diff = max(diff, abs(x[i] - y[i])); scale = max(scale, abs(y[i])) }
        }
        return diff / max(scale, .leastNormalMagnitude)
    }
}
