// Whether a model keeps float32 copies of its matrices. `float32` (the default where they fit) dequantizes
// every matrix once at load: products of many token rows then run sgemm straight on them. `lean` keeps
// only the memory-mapped file and dequantizes a panel at a time for those products (StoredMatrix), so
// memory holds about the file's size plus activations: a model whose float32 copies would not fit in
// this machine's memory still loads, runs and is edited (an edited `ffn_down` becomes float32 then).
// Few-token products read the stored weights either way (QuantizedWeights).
import Support
import GGUF
import Foundation

public enum WeightResidency: String, Sendable, CaseIterable {
    case float32, lean

    /// The environment variable that chooses: `float32`, `lean` or `auto` (the default).
    public static let variable = "ALPHAEDIT_WEIGHTS"

    /// `auto` keeps float32 copies up to this share of the machine's memory: a coordinator and two
    /// local workers each hold a model, and activations and K₀ statistics come on top.
    public static let autoShare = 0.25

    /// The residency `ALPHAEDIT_WEIGHTS` asks for, `auto` deciding by the float32 copies' size against
    /// `physicalMemory`: the machine's memory, or a control group's limit below it (ProcessStats.memoryLimit;
    /// fixed for a machine or a job, so every process of a campaign there decides alike).
    public static func chosen(float32Bytes: Int, environment: [String: String] = ProcessInfo.processInfo.environment,
                              physicalMemory: UInt64 = ProcessStats.memoryLimit()) throws -> WeightResidency {
        switch environment[variable] ?? "auto" {
        case "float32": return .float32
        case "lean": return .lean
        case "auto", "": return Double(float32Bytes) > autoShare * Double(physicalMemory) ? .lean : .float32
        case let v: throw ModelError.badSetting(name: variable, detail: "\"\(v)\" is none of float32, lean, auto")
        }
    }

    /// Call first thing in `main`, beside `BLASRuntime.ensureOptimizedKernels`: an `ALPHAEDIT_WEIGHTS`
    /// that is none of the values is refused with a line naming it (exit status 2), before any work.
    public static func checkEnvironment() {
        do { _ = try chosen(float32Bytes: 0) } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            exit(2)
        }
    }

    /// Whether `ALPHAEDIT_WEIGHTS` leaves the choice to `auto`.
    static func isAuto(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        ["auto", "", nil].contains(environment[variable])
    }

    private static let announced = NSLock()
    nonisolated(unsafe) private static var didAnnounce = false

    /// One line on stderr, once a process, when `auto` went lean: a user who did not ask for it learns why
    /// products of many rows run on panels, and how to keep float32 copies instead.
    static func announceAutoLean(float32Bytes: Int) {
        let first = announced.withLock { () -> Bool in defer { didAnnounce = true }; return !didAnnounce }
        guard first else { return }
        func size(_ bytes: Double) -> String {
            bytes >= 1e9 ? String(format: "%.1f GB", bytes / 1e9) : String(format: "%.0f MB", bytes / 1e6)
        }
        let line = "alphaedit: weights lean: float32 copies would take \(size(Double(float32Bytes))), more than a quarter of the "
            + "\(size(Double(ProcessStats.memoryLimit()))) this process may use (ALPHAEDIT_WEIGHTS=float32 keeps them)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}

