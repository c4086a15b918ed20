// The coordinator's K₀ reduction (ShardReduction): shards added in any order give the in-order sum bit
// for bit, the payloads held in memory stay within the budget (the rest wait on disk), and a reduction
// started again on the same directory takes up what the earlier one left (its checkpoint and waiting
// shards) and still gives the same bits; files of another plan, and files that do not read back, are
// removed and their shards run again.
import Foundation
import Shared
import XCTest

final class ShardReductionTests: XCTestCase {
    static let f = 24, layers = [2, 5]

    /// A plan of `count` shards of 24 sentences (the values are synthetic; only the shard bounds count).
    func plan(_ count: Int) -> CovarianceJobPlan {
        CovarianceJobPlan(corpus: "/corpus", range: 0..<(24 * count), layers: Self.layers, f: Self.f, shardSentences: 24)
    }

    /// Shard i's statistics: 7 + i pseudo-random keys per layer.
    func shard(_ i: Int) throws -> KeyStatistics {
        var s = try KeyStatistics(layers: Self.layers, f: Self.f, provenance: "shard")
        var g = SplitMix64(seed: UInt64(i) &+ 11)
        for l in Self.layers {
            let n = 7 + i
            let keys = (0..<(n * Self.f)).map { _ in Float.random(in: -2 ..< 2, using: &g) }
            try keys.withUnsafeBufferPointer { try s.accumulate(layer: l, keys: $0.baseAddress!, count: n) }
        }
        return s
    }

    func inOrder(_ n: Int) throws -> KeyStatistics {
        var t = try KeyStatistics(layers: Self.layers, f: Self.f, provenance: "p")
        for i in 0..<n { try t.merge(try shard(i)) }
        return t
    }

    func assertBitEqual(_ a: KeyStatistics, _ b: KeyStatistics, _ message: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(a.counts, b.counts, message, file: file, line: line)
        for l in Self.layers {
            XCTAssertEqual(try a.sum(layer: l).values, try b.sum(layer: l).values, "\(message): layer \(l)", file: file, line: line)
        }
    }

    func testAnyArrivalOrderGivesTheInOrderSumWithinTheMemoryBudget() throws {
        let n = 12
        let reference = try inOrder(n)
        let payload = try shard(0).serialized().count
        for (order, budget) in [(Array(0..<n), 0), (Array((0..<n).reversed()), 0), (Array((0..<n).reversed()), 3 * payload + payload / 2),
                                ([3, 1, 0, 7, 2, 11, 5, 4, 6, 10, 9, 8], 1 << 30)] {
            let dir = try ClusterTestSupport.tempDir()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let r = try ShardReduction(directory: dir + "/k0", plan: plan(n), provenance: "p", memoryBudget: budget)
            XCTAssertEqual(r.remaining, Array(0..<n))
            for i in order {
                XCTAssertFalse(r.isComplete)
                let s = try shard(i)
                try r.add(shard: i, payload: s.serialized())
                XCTAssertLessThanOrEqual(r.heldBytes, budget)
            }
            XCTAssertTrue(r.isComplete)
            try assertBitEqual(try r.result(), reference, "order \(order), budget \(budget)")
            XCTAssertLessThanOrEqual(r.peakHeldBytes, budget)
            let leftover = try FileManager.default.contentsOfDirectory(atPath: dir + "/k0").filter { $0.hasSuffix(".aeks") }
            XCTAssertEqual(leftover, [], "every waiting shard's file is removed once it is summed")
            switch (order.first, budget) {
            case (0, _): XCTAssertEqual(r.spilledShards, 0, "in order: nothing waits")
            case (_, 0): XCTAssertEqual(r.spilledShards, n - 1, "budget 0: every waiting shard went to disk")
            case (_, 1 << 30): XCTAssertEqual(r.spilledShards, 0)
            default: XCTAssertEqual(r.spilledShards, n - 1 - 3, "3 held in memory, the rest on disk")
            }
            r.remove()
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/k0"))
        }
    }

    /// A coordinator dies (its reduction dropped without `remove`) after a checkpoint and with shards
    /// waiting on disk and in memory; the next one on the same directory runs only the others and ends
    /// with the same bits.
    func testAReductionStartedAgainTakesUpTheCheckpointAndWaitingShards() throws {
        let n = 10
        let reference = try inOrder(n)
        let dir = try ClusterTestSupport.tempDir() + "/k0"
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: dir).deletingLastPathComponent().path) }
        let payload = try shard(0).serialized().count
        do {
            let first = try ShardReduction(directory: dir, plan: plan(n), provenance: "p", memoryBudget: payload, checkpointInterval: 0)
            for i in [0, 1, 2, 5, 8, 6] {  // 0–2 summed (checkpoint total-3), 5 held in memory, 8 and 6 on disk
                let s = try shard(i)
                try first.add(shard: i, payload: s.serialized())
            }
            XCTAssertEqual(first.next, 3)
            XCTAssertEqual(first.checkpoints, 3, "interval 0: a checkpoint after each advance (total-1, -2, -3; the older removed)")
            XCTAssertEqual(first.spilledShards, 2)
            XCTAssertThrowsError(try ShardReduction(directory: dir, plan: plan(n), provenance: "p"), "one coordinator per directory") { e in
                XCTAssertEqual(e as? ShardReductionError, .inUse(directory: dir, pid: getpid()))
                XCTAssertTrue("\(e)".contains("the K0 build folder \(dir) is in use by pid \(getpid())"), "\(e)")
            }
        }  // dropped: its lock goes with it, its files stay
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        XCTAssertEqual(names, ["lock", "plan.json", "shard-6.aeks", "shard-8.aeks", "total-3.aeks"])

        var lines: [String] = []
        let second = try ShardReduction(directory: dir, plan: plan(n), provenance: "p", memoryBudget: 0) { lines.append($0) }
        XCTAssertEqual(second.next, 3)
        XCTAssertEqual(second.resumedShards, 5, "3 summed + 2 waiting")
        XCTAssertEqual(second.remaining, [3, 4, 5, 7, 9], "shard 5 was in the dead one's memory: it runs again")
        XCTAssertTrue(lines.joined().contains("resuming"), "\(lines)")
        for i in second.remaining.reversed() {
            let s = try shard(i)
            try second.add(shard: i, payload: s.serialized())
        }
        XCTAssertTrue(second.isComplete)
        try assertBitEqual(try second.result(), reference, "resumed")
        second.remove()
    }

    func testFilesOfAnotherPlanOrThatDoNotReadBackAreRemovedAndTheirShardsRunAgain() throws {
        let n = 6
        let dir = try ClusterTestSupport.tempDir() + "/k0"
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: dir).deletingLastPathComponent().path) }
        func leave(_ order: [Int], plan p: CovarianceJobPlan, provenance: String = "p") throws {
            let r = try ShardReduction(directory: dir, plan: p, provenance: provenance, memoryBudget: 0, checkpointInterval: 0)
            for i in order {
                let s = try shard(i)
                try r.add(shard: i, payload: s.serialized())
            }
        }
        // Another provenance (another model or corpus): nothing is taken up.
        try leave([0, 1, 3, 4], plan: plan(n), provenance: "other")
        var lines: [String] = []
        var r = try ShardReduction(directory: dir, plan: plan(n), provenance: "p") { lines.append($0) }
        XCTAssertEqual(r.remaining, Array(0..<n))
        XCTAssertTrue(lines.joined().contains("another plan"), "\(lines)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".aeks") }, [])
        r.remove()

        // Another shard size is another plan too.
        try leave([0, 2], plan: plan(n))
        let wider = CovarianceJobPlan(corpus: "/corpus", range: 0..<(24 * n), layers: Self.layers, f: Self.f, shardSentences: 48)
        r = try ShardReduction(directory: dir, plan: wider, provenance: "p")
        XCTAssertEqual(r.remaining, Array(0..<3))
        r.remove()

        // A waiting shard's file and the checkpoint damaged on disk: both removed, their shards run again.
        try leave([0, 1, 4, 5], plan: plan(n))
        for name in ["shard-4.aeks", "total-2.aeks"] {
            let path = dir + "/" + name
            var bytes = try XCTUnwrap(FileManager.default.contents(atPath: path))
            bytes[bytes.count / 2] ^= 0x40
            try bytes.write(to: URL(fileURLWithPath: path))
        }
        lines = []
        r = try ShardReduction(directory: dir, plan: plan(n), provenance: "p") { lines.append($0) }
        XCTAssertEqual(r.remaining, [0, 1, 2, 3, 4], "only shard 5 survives")
        XCTAssertEqual(lines.filter { $0.contains("does not read back") }.count, 2, "\(lines)")
        for i in r.remaining {
            let s = try shard(i)
            try r.add(shard: i, payload: s.serialized())
        }
        try assertBitEqual(try r.result(), try inOrder(n), "after the damaged files")
        r.remove()
    }

    /// The coordinator adds a worker's artifact straight from its bytes: the same bits as decoding it and
    /// merging, the summary says what `read` would, and a refused artifact (damaged, another shape,
    /// trailing bytes) changes nothing.
    func testMergeFromSerializedBytesEqualsMergeOfTheDecodedStatistics() throws {
        var viaDecode = try shard(0), viaBytes = try shard(0)
        let other = try shard(3), bytes = other.serialized()
        try viaDecode.merge(try KeyStatistics.read(bytes: bytes))
        try viaBytes.merge(serialized: bytes)
        try assertBitEqual(viaBytes, viaDecode, "merge(serialized:)")
        let summary = try KeyStatistics.summary(bytes: bytes)
        XCTAssertEqual(summary.layers, other.layers)
        XCTAssertEqual(summary.f, other.f)
        XCTAssertEqual(summary.counts, other.counts)
        XCTAssertEqual(summary.provenance, other.provenance)

        let before = viaBytes
        var damaged = bytes
        damaged[damaged.count / 2] ^= 1
        let wrongShape = try KeyStatistics(layers: [2], f: Self.f).serialized()
        var trailing = try KeyStatistics(layers: Self.layers, f: Self.f)
        trailing.provenance = "x"
        var longer = trailing.serialized()
        longer.insert(0, at: longer.count - 8)   // a byte more in the body (the checksum then fails too)
        for (bad, what) in [(damaged, "damaged"), (wrongShape, "another shape"), (Array(bytes.prefix(bytes.count - 9)), "truncated"), (longer, "longer")] {
            XCTAssertThrowsError(try viaBytes.merge(serialized: bad), what)
            try assertBitEqual(viaBytes, before, "\(what): nothing changed")
        }
        XCTAssertThrowsError(try KeyStatistics.summary(bytes: damaged)) { XCTAssertTrue("\($0)".contains("checksum"), "\($0)") }
    }
}
