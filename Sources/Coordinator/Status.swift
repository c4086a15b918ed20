import ArgumentParser
import Foundation
import Shared

/// `alphaedit status`: the progress of a state directory's campaign, read from its database (read
/// only; safe while a coordinator is writing, the database is in WAL mode).
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show an edit campaign's progress: batches, requests, jobs, workers.")

    @Option(help: "State directory of an edit campaign.") var state: String
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "A worker counts as alive when seen within this many seconds.") var liveness: Double = 15
    @Flag(help: "Skip recomputing the checksums of the committed files.") var noVerify = false

    func run() throws {
        guard liveness > 0 else { throw ValidationError("--liveness must be positive") }
        let store = try JobStore(directory: state, create: false, readOnly: true)
        var s = try store.status(now: Date().timeIntervalSince1970, liveness: liveness)
        if !noVerify {
            let (checked, bad, damaged) = try store.verifyFilesNamingDamaged()
            (s.filesChecked, s.filesBad) = (checked, bad)
            s.rollbackTargets = s.rollbackTargets.map { StoreStatus.rollbackTargets($0, committed: s.batchesCommitted, damaged: damaged) }
        }
        if json {
            try printJSON(s)
            return
        }
        let last = s.lastBatchAt.map { at -> String in
            let f = ISO8601DateFormatter()
            return f.string(from: Date(timeIntervalSince1970: at)) + (s.lastBatchSeconds.map { String(format: " (%.1f s)", $0) } ?? "")
        }
        let rows: [(String, String)] = [
            ("state", store.path),
            ("method", s.stages ?? s.method ?? "– (no campaign yet)"),
            ("batches", "\(s.batchesCommitted) / \(s.batchesTotal) committed"),
            ("requests", "\(s.requestsDone) / \(s.requestsTotal) done"),
            ("jobs", JobState.allCases.map { "\($0.rawValue) \(s.jobs[$0.rawValue] ?? 0)" }.joined(separator: ", ")),
            ("workers", "\(s.workersAlive) alive (\(s.workersKnown) known)"),
            ("current", s.currentBatch.map { b in
                "batch \(b): " + (s.currentBatchJobsTotal.map { "\(s.currentBatchJobsDone ?? 0)/\($0) v* jobs done" } ?? "no v* jobs (not started, or an in-process campaign)")
            } ?? "–"),
            ("v* rate", s.vstarRequestsPerMinute.map { r in
                String(format: "%.1f requests/min (latest jobs)", r) + (s.vstarSecondsLeft.map { "; v* left ≈ " + duration($0) } ?? "")
            } ?? "–"),
            ("last batch", last ?? "–"),
            ("rollback", s.rollbackTargets.map { t in
                // With damaged files, the targets a rollback still takes (StoreStatus.rollbackTargets).
                t.isEmpty ? "none: a file every rollback keeps is damaged (below)"
                    : (t.count == s.batchesCommitted + 1 ? "to any committed batch, " : "to ") + ranges(t) + " (alphaedit rollback)"
                        + ((s.filesBad ?? []).isEmpty ? "" : "; the damaged files below rule out the others")
            } ?? "–"),
            ("files", s.filesChecked.map { n in
                (s.filesBad ?? []).isEmpty ? "\(n) committed files match their checksums"
                    : "\((s.filesBad ?? []).count) of \(n) BAD: " + (s.filesBad ?? []).joined(separator: "; ")
            } ?? "not checked (--no-verify)"),
        ]
        for (k, v) in rows { print(k.padding(toLength: 11, withPad: " ", startingAt: 0) + v) }
        if let bad = s.filesBad, !bad.isEmpty { throw ExitCode(4) }
    }
}

/// [0, 1, 2, 5, 6] as "0…2, 5…6".
func ranges(_ xs: [Int]) -> String {
    var out: [String] = [], i = 0
    while i < xs.count {
        var j = i
        while j + 1 < xs.count, xs[j + 1] == xs[j] + 1 { j += 1 }
        out.append(i == j ? "\(xs[i])" : "\(xs[i])…\(xs[j])")
        i = j + 1
    }
    return out.joined(separator: ", ")
}

/// "2 h 05 min", "14 min", "40 s".
func duration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%d h %02d min", s / 3600, (s % 3600) / 60) }
    if s >= 60 { return "\(s / 60) min" }
    return "\(s) s"
}
