// Slurm (issue 12 §3) against a real single-machine Slurm started by scripts/slurm-test.sh (Debian's
// slurmctld, slurmd and munge): `sbatch` of examples/slurm/cov.sbatch starts the coordinator, which
// starts its 2 workers with srun over tcp+CURVE, and the K0 statistics equal the in-process build.
// Outside an allocation `--cluster "slurm 2"` is refused with the reason. Skipped, with the reason,
// only where the Slurm daemons cannot be installed or started (not root, no apt).
import Foundation
import Shared
import XCTest

final class SlurmTests: XCTestCase {
    let script = RepoPaths.repo.appendingPathComponent("scripts/slurm-test.sh").path
    static let conf = "/tmp/alphaedit-slurm/slurm.conf"

    func testOutsideAnAllocationSlurmWorkersAreRefused() throws {
        let coordinator = try ClusterTestSupport.executable("alphaedit")
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 10)
        var env = ProcessInfo.processInfo.environment
        env["SLURM_JOB_ID"] = nil
        let p = Process()
        p.executableURL = URL(fileURLWithPath: coordinator)
        p.arguments = ["cov", "--model", model, "--corpus", corpus, "--sentences", "10", "--layers", "1", "--out", dir + "/cov",
                       "--cluster", "slurm 2"]
        p.environment = env
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let said = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(said.contains("workers = slurm N runs inside a Slurm allocation"), said)
    }

    func testSbatchOfTheExampleBuildsK0EqualToInProcess() throws {
        let coordinator = try ClusterTestSupport.executable("alphaedit")
        let (rc, said) = try ClusterTestSupport.run("/bin/bash", [script, "up"])
        if rc == 2 { throw XCTSkip("no Slurm here: \(said)") }
        XCTAssertEqual(rc, 0, said)
        guard rc == 0 else { return }
        defer { _ = try? ClusterTestSupport.run("/bin/bash", [script, "down"]) }
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 600)
        let example = RepoPaths.repo.appendingPathComponent("examples/slurm/cov.sbatch").path
        let args = "--model \(model) --corpus \(corpus) --sentences 600 --layers 1-2 --shard-sentences 100 --out \(dir)/cov"
        let (sb, out) = try ClusterTestSupport.run("/usr/bin/sbatch", ["--wait", "--ntasks=2", "--cpus-per-task=1", "--output=\(dir)/job.log", "--chdir=\(dir)",
                                                    "--export=ALL", example],
                                env: ["SLURM_CONF": Self.conf, "ALPHAEDIT": coordinator, "ALPHAEDIT_REPO": dir, "ALPHAEDIT_ARGS": args])
        let log = ClusterTestSupport.read(dir + "/job.log")
        XCTAssertEqual(sb, 0, "sbatch: \(out)\njob log:\n\(log)")
        XCTAssertTrue(log.contains("started 2 Slurm worker task(s) with srun"), log)
        XCTAssertTrue(log.contains("admitted slurm worker"), log)
        let stats = try KeyStatistics.read(from: dir + "/cov/statistics.bin")
        let rel = try ClusterTestSupport.relativeDifference(stats, try ClusterTestSupport.inProcessStatistics(model: model, corpus: corpus, range: 0..<600))
        print(String(format: "sbatch examples/slurm/cov.sbatch (2 srun workers, tcp+CURVE): max rel diff vs in-process %.2e", rel))
        XCTAssertLessThanOrEqual(rel, 1e-9)
    }
}
