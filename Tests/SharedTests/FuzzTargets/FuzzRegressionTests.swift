import Foundation
import XCTest
import Shared

/// The fuzz targets in the ordinary test run: every seed, and every input that once crashed a parser
/// (Fixtures/FuzzRegressions/<harness>, also replayed by scripts/fuzz.sh), must go through without a
/// trap; and the crashes found get the errors they should have had.
final class FuzzRegressionTests: XCTestCase {
    static let regressions = TestPaths.fixtures.appendingPathComponent("FuzzRegressions")

    func testSeedsAndRegressionInputsRunThroughEveryTarget() throws {
        var inputs = 0
        for (name, target) in FuzzTargets.all {
            for (_, bytes) in try target.seeds() { target.test(bytes); inputs += 1 }
            let dir = Self.regressions.appendingPathComponent(name)
            for file in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] {
                target.test([UInt8](try Data(contentsOf: dir.appendingPathComponent(file))))
                inputs += 1
            }
        }
        XCTAssertGreaterThan(inputs, 30)
    }

    /// The committed wire seeds (Fuzz/Corpus/FuzzWire, where scripts/fuzz.sh starts) are this build's
    /// seeds. Stale ones, of an older protocol version, stop at the version check and the fuzzer never
    /// reaches the body decoders: 438 coverage points in 30 s with protocol 6 seeds under a protocol 7
    /// build, 2,035 in 60 s with current ones. `bash scripts/fuzz.sh --seeds 1 FuzzWire` rewrites them.
    func testCommittedWireSeedsAreCurrent() throws {
        let dir = RepoPaths.repo.appendingPathComponent("Fuzz/Corpus/FuzzWire")
        let committed = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
        let seeds = try WireFuzz.seeds()
        XCTAssertEqual(committed, Set(seeds.map(\.0)), "one committed file per seed")
        for (name, bytes) in seeds where committed.contains(name) {
            let file = [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))
            XCTAssertEqual(file, bytes, "\(name) differs from the seed (protocol \(WireProtocol.version)): run scripts/fuzz.sh --seeds 1 FuzzWire")
        }
    }

    /// Found by FuzzKeys: two statistics whose token counts add past Int.max trapped in `merge` (a
    /// worker's result could stop the coordinator). Now the merge is refused and changes nothing.
    func testMergeWhoseTokenCountsOverflowIsRefusedUnchanged() throws {
        let file = try Data(contentsOf: Self.regressions.appendingPathComponent("FuzzKeys/merge-count-overflow"))
        let bytes = Framing.framed(body: [UInt8](file), magic: KeyStatistics.magic, version: KeyStatistics.formatVersion)
        // The file declares a count above 2⁵³ tokens: refused on reading.
        XCTAssertThrowsError(try KeyStatistics.read(bytes: bytes)) { error in
            XCTAssertTrue("\(error)".contains("token count"), "\(error)")
        }
        var a = try KeyStatistics(layers: [3], f: 2)
        let keys: [Float] = [1, 2]
        try keys.withUnsafeBufferPointer { try a.accumulate(layer: 3, keys: $0.baseAddress!, count: 1) }
        var big = try KeyStatistics.read(bytes: a.serialized())
        big = try Self.withCount(KeyStatistics.maxTokens, of: big)
        let before = try a.sum(layer: 3)
        XCTAssertThrowsError(try a.merge(big)) { error in
            XCTAssertTrue("\(error)".contains("exceed"), "\(error)")
        }
        XCTAssertEqual(try a.count(layer: 3), 1)
        XCTAssertEqual(try a.sum(layer: 3), before)
    }

    /// Found by FuzzArtifact: a sequential-state file declaring f = 22,272 allocated 4 GB of zeros before
    /// finding that its body holds a few bytes. Now the shape is checked against the body first.
    func testArtifactDeclaringAShapeItsBodyCannotHoldFailsBeforeAllocating() throws {
        let file = [UInt8](try Data(contentsOf: Self.regressions.appendingPathComponent("FuzzArtifact/sequential-huge-f")))
        XCTAssertEqual(file.first.map { Int($0 & 7) }, 3, "the input selects SequentialState")
        let bytes = Framing.framed(body: file.dropFirst(), magic: SequentialState.magic, version: SequentialState.formatVersion)
        XCTAssertThrowsError(try SequentialState.read(bytes: bytes)) { error in
            XCTAssertTrue("\(error)".contains("run past the end of the body"), "\(error)")
        }
    }

    /// Found by FuzzGGUF: a synthetic model whose block_count reads 16,121,857 took over 10 s to refuse
    /// (a list of 145 million expected tensors was built first). Now the count is checked against the
    /// file's tensor table before anything is sized by it.
    func testModelDeclaringMoreBlocksThanTensorsIsRefusedAtOnce() throws {
        let file = [UInt8](try Data(contentsOf: Self.regressions.appendingPathComponent("FuzzGGUF/block-count-16m")))
        let t0 = Date()
        XCTAssertThrowsError(try LlamaModel(gguf: GGUFFile(bytes: file))) { error in
            XCTAssertTrue("\(error)".contains("16121857 blocks, but the file holds only"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1)
    }

    /// `stats` with its first layer's token count set to `count` (through the file format, as a peer would).
    static func withCount(_ count: Int, of stats: KeyStatistics) throws -> KeyStatistics {
        var body = Framing.body(of: stats.serialized())
        // body: f, layer count, provenance (length + bytes), then (layer, count) pairs.
        let countOffset = 8 + 8 + 8 + stats.provenance.utf8.count + 8
        withUnsafeBytes(of: Int64(count).littleEndian) { for i in 0..<8 { body[countOffset + i] = $0[i] } }
        return try KeyStatistics.read(bytes: Framing.framed(body: body, magic: KeyStatistics.magic, version: KeyStatistics.formatVersion))
    }
}
