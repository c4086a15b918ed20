// OpenBLAS's runtime CPU detection does not recognise some virtualised Xeons (cpuid reports a
// generic model) and falls back to its Prescott (SSE3) kernels: 3-4× slower sgemm here.
// OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so an executable that finds the fallback
// on a CPU with AVX-512/AVX2 re-executes itself once with the right core type set. It never replaces a
// choice of OpenBLAS's own or of the environment's: AVX2 kernels on an AVX-512 CPU are kept (on a
// 2-core EPYC, one thread, the AVX-512 ones ran v* on SmolLM2 in 1.83 instead of 2.97 CPU-s per request,
// but older OpenBLAS builds compute wrong results or crash on some processors with them, which is why
// some machines set OPENBLAS_CORETYPE=Haswell).
import GGUF
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
        if ["avx512f", "avx512vl", "avx512bw", "avx512dq", "avx512cd"].allSatisfy(flags.contains) { return "SKYLAKEX" }
        if flags.contains("avx2") && flags.contains("fma") { return "HASWELL" }
        return nil
    }

    /// Call first thing in `main`: re-executes the process with OPENBLAS_CORETYPE set when OpenBLAS
    /// fell back to generic kernels on a CPU that has better ones, or chose AVX-512 kernels where
    /// ALPHAEDIT_ISA=avx2 asks for the AVX2 ones (`upgrade`).
    /// An OPENBLAS_CORETYPE already set is kept. Returns normally otherwise.
    /// Also the check of ALPHAEDIT_ISA: a value other than avx2, avx512 or none would be ignored by the
    /// kernels (they take the CPU's best), so a benchmark meant for AVX2 would silently measure AVX-512;
    /// it is refused here with a line naming it (exit status 2).
    public static func ensureOptimizedKernels() {
        if let problem = isaCapProblem(ProcessInfo.processInfo.environment["ALPHAEDIT_ISA"]) {
            FileHandle.standardError.write(Data("error: \(problem)\n".utf8))
            exit(2)
        }
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil else { return }
        let capped = ProcessInfo.processInfo.environment["ALPHAEDIT_ISA"] == "avx2"
        guard let best = bestCoreType(), let target = upgrade(from: coreName, best: best, capped: capped) else { return }
        setenv("OPENBLAS_CORETYPE", target, 1)
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // execv returned: carry on with the generic kernels.
    }

    /// The core type to re-execute with, when OpenBLAS's choice `core` is generic kernels on a CPU with
    /// AVX2 or AVX-512 (`best`, from `bestCoreType`), or anything but Haswell under ALPHAEDIT_ISA=avx2
    /// (`capped`). nil: keep it.
    public static func upgrade(from core: String, best: String, capped: Bool) -> String? {
        let name = core.lowercased()
        if capped { return name == "haswell" ? nil : "HASWELL" }
        let generic = ["prescott", "core2", "nehalem", "katmai", "atom", "penryn", "dunnington"].contains { name.contains($0) }
        return generic ? best : nil
    }

    /// The values ALPHAEDIT_ISA takes (quant_kernels.c reads the same): a cap on the kernels.
    public static let isaCaps = ["avx2", "avx512", "none"]

    /// nil when `value` is unset, empty (as unset) or one of `isaCaps`, else what is wrong with it.
    public static func isaCapProblem(_ value: String?) -> String? {
        guard let value, !value.isEmpty, !isaCaps.contains(value) else { return nil }
        return "ALPHAEDIT_ISA=\(value) is not one of \(isaCaps.joined(separator: ", ")) (a cap on the kernels; unset: the CPU's best)"
    }
}

/// What a benchmark ran on: the CPU's vector features and the kernels chosen for them (every
/// benchmark prints it, so figures from AVX2 and AVX-512 machines are never compared blind).
public struct KernelChoice: Codable, Sendable, Equatable {
    /// avx2, fma, f16c, avx512f, avx512bw, avx512vl: those the CPU has.
    public var cpu_features: [String]
    /// OpenBLAS's kernel family (e.g. Haswell, SkylakeX).
    public var openblas_core: String
    /// The few-token quantized kernels: avx512, avx2 or none (BLAS).
    public var quantized_kernels: String
    /// ALPHAEDIT_ISA when set (a cap on the kernels, e.g. avx2).
    public var isa_cap: String?
    /// The CPU's name, family and model (/proc/cpuinfo): VMs of one name run on different hosts.
    public var cpu_model: String?
    /// How the few-token products read Q5_0 matrices: "q8_0 copy" or "stored" (`QuantizedLinear.q5_0AsQ8_0`).
    public var q5_0_products: String?
    /// How they read Q4_1 matrices: "float32 scales" (a copy) or "stored" (`QuantizedLinear.q4_1FloatScales`).
    public var q4_1_products: String?

    /// The same, for a model whose products read copies of the stored formats `copied` only
    /// (`QuantizedWeights.copiedFormats`; none with lean weights): the others as stored.
    public func reading(copies copied: Set<QuantizedMatrix.Format>) -> KernelChoice {
        var k = self
        if k.q5_0_products != nil, !copied.contains(.q5_0) { k.q5_0_products = "stored" }
        if k.q4_1_products != nil, !copied.contains(.q4_1) { k.q4_1_products = "stored" }
        return k
    }

    public static var current: KernelChoice {
        let wanted = ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"]
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("flags") }
            .map { Set($0.split(separator: " ").map(String.init)) } ?? []
        let q: String
        switch QuantizedLinear.bestISA {
        case .avx512?: q = "avx512"
        case .avx2?: q = "avx2"
        case nil: q = "none"
        }
        return KernelChoice(cpu_features: wanted.filter(flags.contains), openblas_core: BLASRuntime.coreName,
                            quantized_kernels: q, isa_cap: ProcessInfo.processInfo.environment["ALPHAEDIT_ISA"],
                            cpu_model: cpuModel(), q5_0_products: QuantizedLinear.q5_0AsQ8_0 ? "q8_0 copy" : "stored",
                            q4_1_products: QuantizedLinear.q4_1FloatScales ? "float32 scales" : "stored")
    }

    /// "AMD EPYC (family 25, model 17)" from /proc/cpuinfo's first processor; nil where it has none.
    static func cpuModel() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if line.isEmpty || line.hasPrefix("processor") && !fields.isEmpty { break }
            let kv = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, fields[kv[0]] == nil { fields[kv[0]] = kv[1] }
        }
        guard let name = fields["model name"] else { return nil }
        guard let family = fields["cpu family"], let model = fields["model"] else { return name }
        return "\(name) (family \(family), model \(model))"
    }

    /// One line for the tables.
    public var line: String {
        (cpu_model.map { "CPU: \($0); " } ?? "")
            + "CPU features: \(cpu_features.isEmpty ? "none of avx2/avx512" : cpu_features.joined(separator: " ")); "
            + "kernels: OpenBLAS \(openblas_core), quantized \(quantized_kernels)" + (isa_cap.map { " (ALPHAEDIT_ISA=\($0))" } ?? "")
            + (q5_0_products == "q8_0 copy" ? ", Q5_0 read from a Q8_0 copy" : "")
            + (q4_1_products == "float32 scales" ? ", Q4_1 read with float32 scales" : "")
    }
}
