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
}
