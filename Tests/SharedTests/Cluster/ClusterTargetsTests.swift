// v* over the cluster (issue 4 §1b, §8): fixed chunks of a batch on 2 real worker processes, after
// the workers were brought to the committed weights by the deltas the pool sends, equal the
// in-process ComputeZ on the same weights — also when a worker is killed (-9) during a v* job.
import Foundation
import Shared
import XCTest

final class ClusterTargetsTests: XCTestCase {
    func testTargetsOnWorkersEqualInProcessAndSurviveAKilledWorker() throws {
        let worker = try ClusterTestSupport.executable("alphaedit-worker")
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let modelPath = try ClusterTestSupport.model(in: dir)
        let c = ClusterTestSupport.modelConfig
        var rng = SplitMix64(seed: 9)
        let deltas = BatchDeltas(rows: c.hidden, cols: c.ffn, deltas: [1: (0..<(c.hidden * c.ffn)).map { _ in rng.symmetric(0.02) }])
        try deltas.write(to: dir + "/batch-1.bin")

        var hp = EditHyperparameters()
        hp.layers = [1]
        hp.vSteps = 25
        hp.earlyStopLoss = 0  // every request runs all steps: jobs long enough for a kill to land inside
        let templates = ContextTemplates(groups: [["{}"], ["The river. {}", "A city. {}"]])
        let subjects = ["France", "The river", "Paris", "the tower", "a museum", "The city", "north", "Its capital"]
        let targets = ["Rome", "Paris", "north", "river", "city", "tower", "France", "museums"]
        let requests = (0..<24).map { i in
            EditRequest(prompt: i % 2 == 0 ? "The capital of {} is" : "{} flows through", subject: subjects[i % 8],
                        targetNew: targets[(i * 3) % 8])
        }
        let model = try LlamaModel(path: modelPath)
        try model.applyDelta(layer: 1, delta: deltas.deltas[1] ?? [])
        let tok = try BPETokenizer(gguf: model.gguf)
        let cz = ComputeZ(model: model, tokenizer: tok, hp: hp)
        let chunks = DistributedTargets.chunks(count: requests.count)
        XCTAssertEqual(chunks, [0..<8, 8..<16, 16..<24])
        let want = try chunks.flatMap { try cz.run(Array(requests[$0]), templates: templates) }

        let log = CapturedLog()
        let pool = try WorkerPool(endpoint: "ipc://\(dir)/c.ipc", modelChecksum: try ModelChecksum.of(path: modelPath), logger: log.logger)
        defer { pool.shutdown() }
        pool.commit(version: 1, deltas: dir + "/batch-1.bin")  // before the workers join: they get it first
        try pool.spawnLocal(count: 2, executable: worker, modelPath: modelPath, threads: 1, logLevel: "warning")

        func distributed() throws -> [ZResult] {
            var got = [[ZResult]](repeating: [], count: chunks.count)
            try DistributedTargets.run(pool: pool, batch: 1, requests: requests, pending: Array(chunks.indices),
                                       hyperparameters: hp, templates: templates) { got[$0] = $1 }
            return got.flatMap { $0 }
        }
        func maxRelative(_ a: [ZResult]) -> Double {
            zip(a, want).map { x, y in
                let d = zip(x.z, y.z).map { Double(abs($0 - $1)) }.max() ?? .infinity
                return d / Double(y.z.map { abs($0) }.max() ?? 1)
            }.max() ?? .infinity
        }
        var t0 = ProcessStats.now()
        let clean = try distributed()
        print(String(format: "v* on 2 workers: %d requests in %.2f s, max rel diff vs in-process %.2e",
                     clean.count, ProcessStats.now() - t0, maxRelative(clean)))
        XCTAssertEqual(clean.count, requests.count)
        XCTAssertLessThanOrEqual(maxRelative(clean), 1e-5)

        let killer = Thread {
            let deadline = ProcessStats.now() + 20
            while ProcessStats.now() < deadline {
                if let lease = pool.leases.first {
                    usleep(30_000)
                    kill(lease.pid, SIGKILL)
                    print("killed worker pid \(lease.pid) holding v* job \(lease.job)")
                    return
                }
                usleep(2_000)
            }
        }
        killer.start()
        t0 = ProcessStats.now()
        let faulty = try distributed()
        print(String(format: "v* with a worker killed: %.2f s, %d lease(s) expired, max rel diff vs in-process %.2e",
                     ProcessStats.now() - t0, pool.expiredLeases, maxRelative(faulty)))
        XCTAssertGreaterThanOrEqual(pool.expiredLeases, 1, "the killed worker's v* lease expired and the chunk ran elsewhere")
        XCTAssertLessThanOrEqual(maxRelative(faulty), 1e-5)
    }
}
