// cluster.conf (issue 4 §4): every key parses, defaults hold, and each invalid value is an error
// naming the key and the line (texts pinned).
import Foundation
import Shared
import XCTest

final class ClusterConfigTests: XCTestCase {
    func testEveryKeyParses() throws {
        let text = """
        # comment
        model = m.gguf
        threads = 4
        endpoint = tcp://10.0.0.1:6000
        workers = local 3   # trailing comment
        worker_threads = 2
        worker_memory_mb = 1500
        layers = 2-4,6
        v_lr = 0.5
        v_steps = 30
        clamp_factor = 0.8
        kl_factor = 0.1
        weight_decay = 0.25
        null_space_threshold = 0.01
        lambda = 5
        memit_lambda = 20000
        kept_c0_weight = 2000
        corpus = data/c.jsonl
        cov_sentences = 123
        shard_sentences = 45
        straggler_backup = 3.5
        dead_after = 12.5
        artifacts = out/cov
        state = /abs/run
        """
        let c = try ClusterConfig.parse(text, baseDirectory: "/base")
        XCTAssertEqual(c.model, "/base/m.gguf")
        XCTAssertEqual(c.threads, 4)
        XCTAssertEqual(c.endpoint, "tcp://10.0.0.1:6000")
        XCTAssertEqual(c.workers, .local(3))
        XCTAssertEqual(c.resolvedWorkerThreads, 2)
        XCTAssertEqual(c.workerMemoryMB, 1500)
        XCTAssertNil(try ClusterConfig.parse("").workerMemoryMB)
        XCTAssertThrowsError(try ClusterConfig.parse("worker_memory_mb = 0"))
        XCTAssertEqual(c.hyperparameters.layers, [2, 3, 4, 6])
        XCTAssertEqual(c.hyperparameters.vLR, 0.5)
        XCTAssertEqual(c.hyperparameters.vSteps, 30)
        XCTAssertEqual(c.hyperparameters.clampFactor, 0.8)
        XCTAssertEqual(c.hyperparameters.keptC0Weight, 2000)
        XCTAssertEqual(c.hyperparameters.klFactor, 0.1)
        XCTAssertEqual(c.hyperparameters.weightDecay, 0.25)
        XCTAssertEqual(c.hyperparameters.nullSpaceThreshold, 0.01)
        XCTAssertEqual(c.hyperparameters.lambda, 5)
        XCTAssertEqual(c.hyperparameters.memitLambda, 20000)
        XCTAssertEqual(c.corpus, "/base/data/c.jsonl")
        XCTAssertEqual(c.covSentences, 123)
        XCTAssertEqual(c.shardSentences, 45)
        XCTAssertEqual(c.stragglerBackup, 3.5)
        XCTAssertNil(try ClusterConfig.parse("straggler_backup = off").stragglerBackup)
        XCTAssertEqual(try ClusterConfig.parse("").stragglerBackup, 2)
        XCTAssertEqual(c.deadAfter, 12.5)
        XCTAssertEqual(try ClusterConfig.parse("").deadAfter, WireProtocol.deadAfter)
        XCTAssertEqual(c.artifacts, "/base/out/cov")
        XCTAssertEqual(c.state, "/abs/run")
        XCTAssertEqual(Set(ClusterConfig.keys.map(\.0)).count, 34, "every key listed once")
    }

    /// A file saved with CRLF line ends: each line is a line (the whole file used to be one, so a comment
    /// on line 1 hid every key), and a bad value is named by its own line.
    func testCRLFLineEnds() throws {
        let c = try ClusterConfig.parse("# mine\r\nthreads = 3\r\nworkers = in-process\r\n", baseDirectory: "/base")
        XCTAssertEqual(c.threads, 3)
        XCTAssertEqual(c.workers, .inProcess)
        XCTAssertThrowsError(try ClusterConfig.parse("# mine\r\nthreads = 3\r\nworkers = many\r\n")) {
            XCTAssertEqual("\($0)", #"config line 3: workers = "many" is invalid (expected in-process, local N (1-64), remote or slurm N (1-4096))"#)
        }
    }

    func testDefaultsAndDerivedValues() throws {
        let c = try ClusterConfig.parse("")
        XCTAssertEqual(c.workers, .local(2))
        XCTAssertEqual(c.resolvedWorkerThreads, 1, "2 threads shared by 2 local workers")
        XCTAssertEqual(c.hyperparameters, EditHyperparameters(), "docs/algorithm.md §5 defaults")
        XCTAssertEqual(c.resolvedEndpoint(directory: "/tmp/s"), "ipc:///tmp/s/coordinator.ipc")
        let long = c.resolvedEndpoint(directory: "/" + String(repeating: "d", count: 120))
        XCTAssertTrue(long.hasPrefix("ipc:///tmp/alphaedit-\(getuid())/") && long.hasSuffix(".ipc"),
                      "an ipc path too long for a Unix socket falls back to one in a private /tmp folder (never plaintext tcp): \(long)")
        XCTAssertNotEqual(long, c.resolvedEndpoint(directory: "/" + String(repeating: "e", count: 120)))
        XCTAssertEqual(Endpoint.connectable("tcp://*:5570", host: "node7"), "tcp://node7:5570")
        XCTAssertEqual(Endpoint.connectable("tcp://0.0.0.0:41234", host: "127.0.0.1"), "tcp://127.0.0.1:41234")
        XCTAssertEqual(Endpoint.connectable("ipc:///tmp/c.ipc", host: "x"), "ipc:///tmp/c.ipc")
        XCTAssertEqual(WorkerMode.parse("remote"), .remote)
        XCTAssertEqual(WorkerMode.parse("in-process"), .inProcess)
        XCTAssertNil(WorkerMode.parse("local"))
        XCTAssertNil(WorkerMode.parse("local 0"))
    }

    func testInvalidValuesNameKeyAndLine() {
        let cases: [(String, String)] = [
            ("threads = 2\nworkers = many", #"config line 2: workers = "many" is invalid (expected in-process, local N (1-64), remote or slurm N (1-4096))"#),
            ("endpoint = http://x", #"config line 1: endpoint = "http://x" is invalid (expected tcp://host:port or ipc://path: it starts with neither tcp:// nor ipc://)"#),
            // Issue 15 §6: a port outside 1-65535, and a pasted blob cut to a readable length.
            ("endpoint = tcp://10.0.0.1:70000", #"config line 1: endpoint = "tcp://10.0.0.1:70000" is invalid (expected tcp://host:port or ipc://path: port "70000" is not 1-65535)"#),
            ("endpoint = tcp://10.0.0.1:0", #"config line 1: endpoint = "tcp://10.0.0.1:0" is invalid (expected tcp://host:port or ipc://path: port "0" is not 1-65535)"#),
            ("threads = " + String(repeating: "9", count: 5000), #"config line 1: threads = ""# + String(repeating: "9", count: 57)
                + #"… (5000 characters)" is invalid (expected an integer 1-256)"#),
            ("\n\nv_lr = -1", #"config line 3: v_lr = "-1" is invalid (expected a positive number)"#),
            ("layers = 7-3", #"config line 1: layers = "7-3" is invalid (expected a layer list such as 3-7 or 3,5,7)"#),
            ("shard_sentences = 0", #"config line 1: shard_sentences = "0" is invalid (expected an integer 1-100000000)"#),
            ("straggler_backup = 0.5", #"config line 1: straggler_backup = "0.5" is invalid (expected a multiple of the median job time in [1, 1000], or off)"#),
            ("dead_after = 0.2", #"config line 1: dead_after = "0.2" is invalid (expected seconds in [1, 600])"#),
            ("kl_factor = nan", #"config line 1: kl_factor = "nan" is invalid (expected a number ≥ 0)"#),
            ("worker_threads = 2\nworker_threads = 3", "config line 2: worker_threads is set twice"),
            ("heartbeat = 1", #"config line 1: unknown key "heartbeat""#),
            ("workers local 2", #"config line 1: expected `key = value`, found "workers local 2""#),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try ClusterConfig.parse(text), text) { XCTAssertEqual("\($0)", message) }
        }
    }

    func testRepositoryClusterConfParses() throws {
        let c = try ClusterConfig.load(path: RepoPaths.repo.appendingPathComponent("cluster.conf").path)
        XCTAssertEqual(c.workers, .local(2))
        XCTAssertEqual(c.hyperparameters.layers, [3, 4, 5, 6, 7])
    }

    /// A catalog model's table entry fills what cluster.conf did not set; explicit values win; other
    /// models get their own artifact and state folders. (Paths only: nothing is fetched here.)
    func testPerModelDefaults() throws {
        for m in ModelCatalog.models {
            XCTAssertEqual(ModelCatalog.matching(path: "/x/models/" + m.file), m)
            XCTAssertEqual(ModelCatalog.named(m.name), m)
        }
        XCTAssertNil(ModelCatalog.matching(path: "models/my-own.gguf"))
        XCTAssertEqual(try ModelCatalog.resolve("models/my-own.gguf"), "models/my-own.gguf", "a path stays a path")
        XCTAssertEqual(try ModelCatalog.resolve("my-own.GGUF"), "my-own.GGUF", "so does a file name")
        XCTAssertThrowsError(try ModelCatalog.resolve("qwen3")) {
            XCTAssertEqual("\($0)", "model qwen3 is neither a file nor a packaged model's name (\(ModelCatalog.names.joined(separator: ", "))); give a GGUF file's path or one of those names")
        }
        var c = try ClusterConfig.parse("model = /nonexistent/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf\nv_lr = 0.25")
        try c.applyModelDefaults()
        let qwen = try XCTUnwrap(ModelCatalog.named("qwen2.5-0.5b"))
        XCTAssertEqual(c.hyperparameters.layers, qwen.hyperparameters.layers)
        XCTAssertEqual(c.hyperparameters.vLR, 0.25, "cluster.conf's value wins")
        XCTAssertNil(c.hyperparameters.nullSpaceRelative, "every catalog model: the absolute τ")
        XCTAssertEqual(c.hyperparameters.nullSpaceThreshold, 0.02)
        for m in ModelCatalog.models {
            XCTAssertEqual(m.hyperparameters.nullSpaceRule, .absolute(0.02), "\(m.name): ρ 1e-3 broke sequential campaigns")
        }
        // Gemma: block 3 alone with λ 1 (README "Gemma: where the edit did not reach"); cluster.conf's λ wins.
        var g = try ClusterConfig.parse("model = /nonexistent/gemma-3-270m.Q4_K_M.gguf\n")
        try g.applyModelDefaults()
        XCTAssertEqual(g.hyperparameters.layers, [3])
        XCTAssertEqual(g.hyperparameters.lambda, 1)
        var g5 = try ClusterConfig.parse("model = /nonexistent/gemma-3-270m.Q4_K_M.gguf\nlambda = 5\n")
        try g5.applyModelDefaults()
        XCTAssertEqual(g5.hyperparameters.lambda, 5)
        XCTAssertEqual(c.hyperparameters.lambda, 10, "Qwen keeps the generic λ")
        var t = try ClusterConfig.parse("model = /nonexistent/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf\nnull_space_relative = 1e-3")
        try t.applyModelDefaults()
        XCTAssertEqual(t.hyperparameters.nullSpaceRelative, 1e-3, "a ρ in cluster.conf is kept")
        XCTAssertEqual(c.artifacts, "state/cov-qwen2.5-0.5b")
        XCTAssertEqual(c.state, "state/run-qwen2.5-0.5b")
        var d = try ClusterConfig.parse("layers = 1-2")
        try d.applyModelDefaults(repo: RepoPaths.repo.path)
        XCTAssertEqual(d.hyperparameters.layers, [1, 2])
        XCTAssertEqual(d.artifacts, "state/cov", "the default model keeps the default folders")
        // A packaged model's name in cluster.conf stays a name (not a path beside the file).
        let named = try ClusterConfig.parse("model = qwen2.5-0.5b\n", baseDirectory: "/elsewhere")
        XCTAssertEqual(named.model, "qwen2.5-0.5b")
        XCTAssertEqual(try ClusterConfig.parse("model = my.gguf\n", baseDirectory: "/elsewhere").model, "/elsewhere/my.gguf")
    }
}
