import Foundation
import Shared
import XCTest

final class QKProfileTmp: XCTestCase {
    func testProfile() throws {
        let m = try LlamaModel(path: try RepoPaths.requireModel())
        let th = Int(ProcessInfo.processInfo.environment["QK_THREADS"] ?? "2") ?? 2
        BLAS.setThreads(th)
        let t = Int(ProcessInfo.processInfo.environment["QK_T"] ?? "10") ?? 10
        let reps = Int(ProcessInfo.processInfo.environment["QK_REPS"] ?? "30") ?? 30
        let ids: [Int32] = Array([504, 3575, 282, 4649, 314, 253, 2330, 338, 800, 915, 1000, 3000, 50, 60, 70, 80].prefix(t))
        let b = TokenBatch([ids])
        _ = try m.forward(b, logitRows: [t - 1])
        var times: [Double] = []
        for _ in 0..<reps {
            let t0 = Date()
            _ = try m.forward(b, logitRows: [t - 1])
            times.append(Date().timeIntervalSince(t0) * 1000)
        }
        times.sort()
        print("QKPROFILE T=\(t) threads=\(th) median \(times[times.count / 2]) ms min \(times[0]) ms")
    }
}
