import ArgumentParser
import Foundation
import Shared

/// `alphaedit rollback`: an edit campaign back to its first K batches (Shared/Campaign/EditRollback.swift).
struct Rollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take the last batches out of an edit campaign: its state as after batch K.",
        discussion: """
            The removed batches' deltas, keys and v* results are deleted, and the campaign keeps only the requests \
            of its first K batches; Cp is rebuilt from the keys the batches added, so it is the Cp the campaign had \
            after batch K. Edit the removed requests again, or as corrected in the facts file, with \
            `alphaedit edit --facts FILE --state DIR --extend`. Refused while an edit runs on the state.
            """)

    @Option(help: "State directory of an edit campaign.") var state: String
    @Option(help: "Keep batches 1…K (0: none; the K0 base stays).") var toBatch: Int?
    @Option(help: "Remove the last N committed batches.") var last: Int?
    @Option(help: "The model file the campaign edited, or a packaged model's name: needed only where batches committed before 2026-12-07 lack their keys, which are then read again from it (default: the recorded path).")
    var model: String?
    @Flag(help: "Make every check and say what would be removed; change nothing.") var dryRun = false
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        guard (toBatch == nil) != (last == nil) else { throw ValidationError("give exactly one of --to-batch K and --last N") }
        if let last, last < 1 { throw ValidationError("--last must be at least 1") }
        if let toBatch, toBatch < 0 { throw ValidationError("--to-batch must be at least 0") }
        var k = toBatch ?? 0
        if let last {
            // Past the start is the same failure as --to-batch past the end: the state's (exit 1), not a usage error.
            let committed = try EditState.load(directory: state).manifest.batches.count
            guard last <= committed else {
                throw StoreError.cannotRollBack(path: state, reason: "--last \(last): "
                    + (committed == 0 ? "it has no committed batch" : "it has \(committed) committed batch\(committed == 1 ? "" : "es"); take out 1…\(committed)"))
            }
            k = committed - last
        }
        let modelPath = try model.map { try ModelCatalog.resolve($0, repo: ".") }
        let summary = try EditRollback.run(directory: state, to: k, dryRun: dryRun, modelPath: modelPath, log: json ? { _ in } : { print($0) })
        if json { try printJSON(summary) }
    }
}
