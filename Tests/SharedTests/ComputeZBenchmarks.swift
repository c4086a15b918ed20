// v* speed with and without the cached prefix (ComputeZ.reusePrefix), alternating, on one zBatch of
// real requests: wall time and process CPU time (the robust figure on a shared machine). Printed,
// not asserted. Run with
//   ALPHAEDIT_BENCH=1 swift test -c release --filter ComputeZBenchmarks
// (ALPHAEDIT_BENCH_THREADS, ALPHAEDIT_BENCH_REQUESTS, ALPHAEDIT_BENCH_ROUNDS change the defaults 1, 8, 2).
import Foundation
import Shared
import XCTest

final class ComputeZBenchmarks: XCTestCase {
    func env(_ k: String, _ d: Int) -> Int { ProcessInfo.processInfo.environment[k].flatMap { Int($0) } ?? d }

    override func setUpWithError() throws {
        guard ProcessInfo.processInfo.environment["ALPHAEDIT_BENCH"] == "1" else {
            throw XCTSkip("set ALPHAEDIT_BENCH=1 to run the v* benchmark")
        }
    }

    static func cpuSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    func testPrefixReuseSpeed() throws {
        let (m, tok) = try ModelFixtureTests.load()
        BLAS.setThreads(env("ALPHAEDIT_BENCH_THREADS", 1))
        let facts = try RepoPaths.sharedFile("data/pararel-cf/dev.jsonl").path
        let url = try RepoPaths.sharedFile("fixtures/alphaedit/context_templates.json")
        let templates = ContextTemplates(groups: try JSONDecoder().decode([[String]].self, from: Data(contentsOf: url)))
        let requests = try FactsFile.read(path: facts, limit: env("ALPHAEDIT_BENCH_REQUESTS", 8))
        var figures: [Bool: [(wall: Double, cpu: Double)]] = [:]
        for round in 0..<env("ALPHAEDIT_BENCH_ROUNDS", 2) {
            for reuse in [false, true] {
                var cz = ComputeZ(model: m, tokenizer: tok, hp: EditHyperparameters())
                cz.reusePrefix = reuse
                let (w0, c0) = (ProcessStats.now(), Self.cpuSeconds())
                let out = try cz.run(requests, templates: templates)
                let f = (wall: (ProcessStats.now() - w0) / Double(requests.count), cpu: (Self.cpuSeconds() - c0) / Double(requests.count))
                figures[reuse, default: []].append(f)
                let passes = out.map(\.losses.count).reduce(0, +)
                print(String(format: "round %d reusePrefix %@: %.2f s wall, %.2f s CPU per request (%d passes)",
                             round, reuse ? "on " : "off", f.wall, f.cpu, passes))
            }
        }
        for reuse in [false, true] {
            let f = figures[reuse] ?? []
            print(String(format: "reusePrefix %@: median %.2f s wall, %.2f s CPU per request",
                         reuse ? "on " : "off", ProcessStats.median(f.map(\.wall)), ProcessStats.median(f.map(\.cpu))))
        }
    }
}
