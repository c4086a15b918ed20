// OpenBLAS's runtime CPU detection does not recognise some virtualised Xeons (cpuid reports a
// generic model) and falls back to its Prescott (SSE3) kernels: 3-4× slower sgemm here.
// OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so an executable that finds the fallback
// on a CPU with AVX-512/AVX2 re-executes itself once with the right core type set.
import CBLAS
import Foundation

public enum BLASRuntime {
    /// The kernel family OpenBLAS selected (e.g. "SkylakeX", "Haswell", "Prescott").
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// The core type this CPU supports best, from /proc/cpuinfo flags (nil if unknown); ALPHAEDIT_ISA=avx2
    /// caps it at HASWELL (the AVX2 kernels), as it caps our own kernels (quant_kernels.h).
    public static func bestCoreType() -> String? {
        if ProcessInfo.processInfo.environment["ALPHAEDIT_ISA"] == "avx2" { return "HASWELL" }
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        if flags.contains("avx512f") && flags.contains("avx512vl") && flags.contains("avx512bw") { return "SKYLAKEX" }
        if flags.contains("avx2") && flags.contains("fma") { return "HASWELL" }
        return nil
    }

    /// Call first thing in `main`: re-executes the process with OPENBLAS_CORETYPE set when OpenBLAS
    /// fell back to generic kernels on a CPU that has better ones, or chose AVX-512 kernels where
    /// ALPHAEDIT_ISA=avx2 asks for the AVX2 ones. Returns normally otherwise.
    public static func ensureOptimizedKernels() {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil else { return }
        let name = coreName.lowercased()
        let generic = name.contains("prescott") || name.contains("core2") || name.contains("nehalem") || name.contains("katmai")
        let capped = ProcessInfo.processInfo.environment["ALPHAEDIT_ISA"] == "avx2" && name != "haswell"
        guard generic || capped, let best = bestCoreType() else { return }
        setenv("OPENBLAS_CORETYPE", best, 1)
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // execv returned: carry on with the generic kernels.
    }
}
