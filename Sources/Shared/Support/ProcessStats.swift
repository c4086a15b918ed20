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
        let groups = (try? String(contentsOfFile: groups, encoding: .utf8)) ?? ""
        for line in groups.split(separator: "\n") {
            // "0::/path" (v2) or "4:memory:/path" (v1).
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let file: String, base: String
            if parts[0] == "0" && parts[1].isEmpty { (base, file) = (root, "memory.max") }
            else if parts[1].split(separator: ",").contains("memory") { (base, file) = (root + "/memory", "memory.limit_in_bytes") }
            else { continue }
            var dirs = [base], path = base
            for c in parts[2].split(separator: "/") { path += "/\(c)"; dirs.append(path) }
            for d in dirs {
                let text = (try? String(contentsOfFile: "\(d)/\(file)", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
                if let text, let v = UInt64(text), v > 0 { limit = min(limit, v) }
            }
        }
        return limit
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
