// Process facts for benchmarks: resident memory from /proc, a monotonic clock, medians.
import Foundation

public enum ProcessStats {
    /// Peak resident set size in MiB (VmHWM), or the current one (VmRSS) when `peak` is false.
    public static func residentMB(peak: Bool = true) -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        let key = peak ? "VmHWM:" : "VmRSS:"
        for line in s.split(separator: "\n") where line.hasPrefix(key) {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }

    /// The memory this process may use: the machine's, or less where a control group limits it (a
    /// container, a Slurm job): the smallest `memory.max` (cgroup v2) or `memory.limit_in_bytes` (v1) of
    /// this process's group and the groups above it.
    /// (`groups` and `root` are for tests: a /proc/self/cgroup and a /sys/fs/cgroup of their own.)
    public static func memoryLimit(physical: UInt64 = ProcessInfo.processInfo.physicalMemory,
                                   groups: String = "/proc/self/cgroup", root: String = "/sys/fs/cgroup") -> UInt64 {
        var limit = physical
        for g in memoryGroups(groups: groups, root: root) {
            if let v = number(g.dir + "/" + g.limitFile), v > 0 { limit = min(limit, v) }
        }
        return limit
    }

    /// The memory that new allocations of this process can take now without swapping or the
    /// out-of-memory killer: the kernel's estimate for the machine (MemAvailable: free memory and the
    /// page cache it can drop), or less where a control group's limit minus its usage is smaller.
    /// (`meminfo`, `groups` and `root` are for tests.)
    public static func availableMemory(meminfo: String = "/proc/meminfo", groups: String = "/proc/self/cgroup",
                                       root: String = "/sys/fs/cgroup") -> UInt64 {
        var available = ProcessInfo.processInfo.physicalMemory
        let text = (try? String(contentsOfFile: meminfo, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            if let kb = line.split(separator: " ").dropFirst().first.flatMap({ UInt64($0) }) { available = kb * 1024 }
        }
        for g in memoryGroups(groups: groups, root: root) {
            guard let limit = number(g.dir + "/" + g.limitFile), limit > 0, let used = number(g.dir + "/" + g.usageFile) else { continue }
            available = min(available, limit > used ? limit - used : 0)
        }
        return available
    }

    /// This process's memory control groups, outermost first: v2 ("0::/path": memory.max, memory.current)
    /// or v1 ("N:memory:/path": memory.limit_in_bytes, memory.usage_in_bytes). "max" or a missing file
    /// reads as no limit.
    private static func memoryGroups(groups: String, root: String) -> [(dir: String, limitFile: String, usageFile: String)] {
        var out: [(dir: String, limitFile: String, usageFile: String)] = []
        let text = (try? String(contentsOfFile: groups, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let base: String, limitFile: String, usageFile: String
            if parts[0] == "0" && parts[1].isEmpty { (base, limitFile, usageFile) = (root, "memory.max", "memory.current") }
            else if parts[1].split(separator: ",").contains("memory") {
                (base, limitFile, usageFile) = (root + "/memory", "memory.limit_in_bytes", "memory.usage_in_bytes")
            } else { continue }
            var path = base
            out.append((base, limitFile, usageFile))
            for c in parts[2].split(separator: "/") { path += "/\(c)"; out.append((path, limitFile, usageFile)) }
        }
        return out
    }

    private static func number(_ path: String) -> UInt64? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// This machine's name (gethostname), as workers report it: workers that give the same one share a
    /// machine's memory.
    public static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// CPU time of the whole process (all threads), in seconds.
    public static func cpuSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    public static func median(_ xs: [Double]) -> Double {
        guard !xs.isEmpty else { return .nan }
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Times `body` `runs` times and returns every duration in seconds.
    public static func time(runs: Int, _ body: () throws -> Void) rethrows -> [Double] {
        var out: [Double] = []
        for _ in 0..<runs {
            let t0 = now()
            try body()
            out.append(now() - t0)
        }
        return out
    }
}
