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
