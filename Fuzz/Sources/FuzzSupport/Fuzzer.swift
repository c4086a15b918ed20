// The entry point every harness shares. SwiftPM gives each executable its own entry symbol and points
// `main` at it, so libFuzzer's own main never links; each harness's @main calls `Fuzzer.run`, which
// hands its target's test to libFuzzer's driver. With ALPHAEDIT_FUZZ_SEEDS=DIR in the environment a
// harness instead writes its target's seeds into DIR and exits (scripts/fuzz.sh --seeds).
import CFuzzDriver
import FuzzTargets
import Foundation

nonisolated(unsafe) private var current: (any FuzzTarget.Type)?

public enum Fuzzer {
    public static func run(_ target: any FuzzTarget.Type) -> Never {
        if let dir = ProcessInfo.processInfo.environment["ALPHAEDIT_FUZZ_SEEDS"] {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                let all = try target.seeds()
                for (name, bytes) in all { try Data(bytes).write(to: URL(fileURLWithPath: dir).appendingPathComponent(name)) }
                print("wrote \(all.count) seeds to \(dir)")
                exit(0)
            } catch {
                print("cannot write seeds: \(error)")
                exit(1)
            }
        }
        current = target
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, count in
            current?.test(data.map { [UInt8](UnsafeBufferPointer(start: $0, count: count)) } ?? [])
            return 0
        })
    }
}
