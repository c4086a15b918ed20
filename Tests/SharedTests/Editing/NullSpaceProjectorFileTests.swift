// A projector set's file read one layer at a time (NullSpaceProjectorFile, what an edit campaign's solve
// uses): each layer equals what the whole-set reader gives, the provenance and layers are indexed, and a
// damaged file is refused on opening as the whole-set reader refuses it (checksum, truncation, magic).
import Foundation
import Shared
import XCTest

final class NullSpaceProjectorFileTests: XCTestCase {
    func testLayersReadOneAtATimeEqualTheSet() throws {
        var rng = EditMathRNG(seed: 31)
        let f = 24
        var stats = try KeyStatistics(layers: [5, 2, 9], f: f, provenance: "test statistics")
        for l in [5, 2, 9] {
            let keys = rng.matrix(40, f).values.map(Float.init)
            try keys.withUnsafeBufferPointer { try stats.accumulate(layer: l, keys: $0.baseAddress!, count: 40) }
        }
        let set = try NullSpaceProjectorSet(statistics: stats, rule: .relative(0.3))
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/projector.bin"
        try set.write(to: path)
        let file = try NullSpaceProjectorFile(path: path)
        XCTAssertEqual(file.layers, [5, 2, 9])
        XCTAssertEqual(file.f, f)
        XCTAssertEqual(file.provenance, "test statistics")
        for l in [5, 2, 9] {
            XCTAssertEqual(try file.projector(layer: l), try set.projector(layer: l), "layer \(l)")
            XCTAssertGreaterThan(try file.projector(layer: l).keptDimension, 0)
        }
        XCTAssertThrowsError(try file.projector(layer: 3)) { XCTAssertEqual($0 as? KeyStatisticsError, .unknownLayer(3, known: [5, 2, 9])) }

        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        func refused(_ bytes: Data, _ check: (ArtifactError) -> Bool, _ what: String) throws {
            try bytes.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try NullSpaceProjectorFile(path: path), what) { e in
                XCTAssertTrue((e as? ArtifactError).map(check) ?? false, "\(what): \(e)")
            }
            XCTAssertThrowsError(try NullSpaceProjectorSet.read(from: path), "the whole-set reader refuses it too")
        }
        var flipped = good
        flipped[good.count / 2] ^= 0x04
        try refused(flipped, { if case .checksumMismatch = $0 { return true }; return false }, "a flipped byte")
        try refused(good.prefix(good.count - 100), { if case .truncated = $0 { return true }; return false }, "truncated")
        var magic = good
        magic[0] = UInt8(ascii: "X")
        try refused(magic, { if case .badMagic = $0 { return true }; return false }, "another magic")
        XCTAssertThrowsError(try NullSpaceProjectorFile(path: dir + "/none.bin")) {
            XCTAssertTrue("\($0)".contains("none.bin"), "\($0)")
        }
    }
}
