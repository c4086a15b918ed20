// ProcessStats.memoryLimit: the machine's memory, or a control group's limit below it, read from a
// cgroup v2 or v1 tree of the test's own making (a Slurm job's limit sits on an ancestor of its task's group).
import Foundation
import Shared
import XCTest

final class MemoryLimitTests: XCTestCase {
    func tree(_ files: [String: String]) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cg-\(UUID().uuidString)").path
        for (rel, text) in files {
            let p = root + "/" + rel
            try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: p, atomically: true, encoding: .utf8)
        }
        return root
    }

    func testLimitsOfControlGroups() throws {
        let gb: UInt64 = 1 << 30
        // v2: the job's group limits 8 GB, its task's says "max".
        let v2 = try tree(["self": "0::/slurm/job_7/task_0\n", "fs/memory.max": "max\n",
                           "fs/slurm/job_7/memory.max": "\(8 * gb)\n", "fs/slurm/job_7/task_0/memory.max": "max\n"])
        defer { try? FileManager.default.removeItem(atPath: v2) }
        XCTAssertEqual(ProcessStats.memoryLimit(physical: 64 * gb, groups: v2 + "/self", root: v2 + "/fs"), 8 * gb)
        XCTAssertEqual(ProcessStats.memoryLimit(physical: 4 * gb, groups: v2 + "/self", root: v2 + "/fs"), 4 * gb, "the machine's memory is below")
        // v1: the memory controller's line among others; an unlimited value is a huge number.
        let v1 = try tree(["self": "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n",
                           "fs/memory/memory.limit_in_bytes": "9223372036854771712\n",
                           "fs/memory/docker/abc/memory.limit_in_bytes": "\(3 * gb)\n"])
        defer { try? FileManager.default.removeItem(atPath: v1) }
        XCTAssertEqual(ProcessStats.memoryLimit(physical: 64 * gb, groups: v1 + "/self", root: v1 + "/fs"), 3 * gb)
        // No readable groups: the machine's memory.
        XCTAssertEqual(ProcessStats.memoryLimit(physical: 64 * gb, groups: "/nonexistent", root: "/nonexistent"), 64 * gb)
        // This process: at most the machine's memory, and some.
        XCTAssertLessThanOrEqual(ProcessStats.memoryLimit(), ProcessInfo.processInfo.physicalMemory)
        XCTAssertGreaterThan(ProcessStats.memoryLimit(), 0)
    }

    /// A model file larger than the memory this process may use runs end to end: `alphaedit generate` in
    /// a memory control group limited to 56 MB, on a fresh copy of SmolLM2's 98 MB file whose pages this
    /// process dropped from the page cache (so the generating process is charged for every page it reads).
    /// `auto` goes lean, the kernel evicts the mapped file's pages as the forward reads past the limit and
    /// reads them again on the next token, and the answer is the unlimited one. Needs root and a cgroup v1
    /// memory controller or a cgroup v2 tree that delegates memory; skipped, saying which, otherwise.
    func testAModelFileLargerThanTheLimitGenerates() throws {
        let exe = try ClusterTestSupport.executable("alphaedit")
        guard getuid() == 0 else { throw XCTSkip("memory control groups need root") }
        let fm = FileManager.default
        let v1 = "/sys/fs/cgroup/memory", v2 = "/sys/fs/cgroup"
        let parent: String, limitFile: String, v1Tree: Bool
        if fm.isWritableFile(atPath: v1 + "/cgroup.procs") {
            (parent, limitFile, v1Tree) = (v1, "memory.limit_in_bytes", true)
        } else if let c = try? String(contentsOfFile: v2 + "/cgroup.subtree_control", encoding: .utf8), c.contains("memory") {
            (parent, limitFile, v1Tree) = (v2, "memory.max", false)
        } else {
            throw XCTSkip("no cgroup v1 memory controller and no cgroup v2 tree delegating memory here")
        }
        let dir = try ClusterTestSupport.tempDir()
        defer { try? fm.removeItem(atPath: dir) }
        let model = dir + "/model.gguf"
        try fm.copyItem(atPath: RepoPaths.model, toPath: model)
        let fileBytes = try XCTUnwrap(fm.attributesOfItem(atPath: model)[.size] as? Int)
        let fd = open(model, O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        fsync(fd)
        XCTAssertEqual(posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED)), 0)
        close(fd)
        let limit = 56 << 20
        XCTAssertGreaterThan(fileBytes, limit + limit / 2, "the file is well over the limit")
        let group = parent + "/alphaedit-test-\(UUID().uuidString.prefix(8))"
        try fm.createDirectory(atPath: group, withIntermediateDirectories: false)
        defer { rmdir(group) }
        try "\(limit)\n".write(toFile: group + "/" + limitFile, atomically: false, encoding: .utf8)
        let (rc, said) = try ClusterTestSupport.run("/bin/sh", ["-c", #"echo $$ > "$1/cgroup.procs" && exec "$2" generate --model "$3" --max-tokens 4 "The capital of France is""#,
                                                             "sh", group, exe, model])
        let counter = v1Tree ? (try? String(contentsOfFile: group + "/memory.failcnt", encoding: .utf8)) ?? ""
                             : ((try? String(contentsOfFile: group + "/memory.events", encoding: .utf8)) ?? "").split(separator: "\n").first { $0.hasPrefix("max ") }.map { String($0.dropFirst(4)) } ?? ""
        let peak = (try? String(contentsOfFile: group + (v1Tree ? "/memory.max_usage_in_bytes" : "/memory.peak"), encoding: .utf8)) ?? "?"
        print("generate of a \(fileBytes / 1_000_000) MB file in a \(limit >> 20) MB group: exit \(rc), peak \(peak.trimmingCharacters(in: .whitespacesAndNewlines)) bytes, limit hit \(counter.trimmingCharacters(in: .whitespacesAndNewlines)) times")
        XCTAssertEqual(rc, 0, said)
        XCTAssertTrue(said.contains("weights lean: float32 copies would take ") && said.contains("more than a quarter of the 59 MB this process may use"), said)
        XCTAssertTrue(said.contains("The capital of France is Paris"), said)
        XCTAssertGreaterThan(Int(counter.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, 0, "the limit was reached: the file did not fit")
    }
}
