// The artifacts of a state directory and of result payloads: z results, batch deltas, projectors,
// sequential state, key statistics, a batch's keys. Byte 0 picks the type (low 3 bits) and whether the rest is a whole
// file (bit 3 set) or a body to wrap in a valid header and checksum (Framing), so the body decoders
// are reached.
import Editing
import Foundation

public enum ArtifactFuzz: FuzzTarget {
    static let kinds: [any ArtifactCodable.Type] = [ZResultSet.self, BatchDeltas.self, NullSpaceProjectorSet.self,
                                                    SequentialState.self, KeyStatistics.self, BatchKeys.self]

    public static func seeds() throws -> [(String, [UInt8])] {
        let z = try JSONDecoder().decode(ZResult.self, from: Data(#"{"z":[0.5,-1,2,4],"h0Norm":1.5,"deltaNorm":0.25,"losses":[[1,0.9,0.05,0.05],[0.5,0.4,0.05,0.05]]}"#.utf8))
        var stats = try KeyStatistics(layers: [3, 5], f: 4, provenance: "seed")
        let keys: [Float] = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0.5, 0.5, 0.5, 0.5]
        try keys.withUnsafeBufferPointer { k in
            try stats.accumulate(layer: 3, keys: k.baseAddress!, count: 4)
            try stats.accumulate(layer: 5, keys: k.baseAddress!, count: 4)
        }
        let projectors = try NullSpaceProjectorSet(statistics: stats, threshold: 0.1)
        let artifacts: [(String, [UInt8])] = [
            ("zresults", ZResultSet([z, z]).serialized()),
            ("deltas", BatchDeltas(rows: 2, cols: 3, deltas: [3: [1, 2, 3, 4, 5, 6], 5: [0, 0, 0, 0, 0, 1]]).serialized()),
            ("projectors", projectors.serialized()),
            ("sequential", try SequentialState(layers: [3, 5], f: 4).serialized()),
            ("statistics", stats.serialized()),
            ("keys", try BatchKeys(keys: [(3, try Matrix64(rows: 4, cols: 2, values: [1, 0, 0, 1, 0.5, 0.5, 0, 2])),
                                          (5, try Matrix64(rows: 4, cols: 2, values: [0, 1, 1, 0, 2, 0, 0.5, 0.5]))]).serialized()),
        ]
        var seeds: [(String, [UInt8])] = []
        for (i, (name, bytes)) in artifacts.enumerated() {
            seeds.append(("\(name)-file", [UInt8(i | 8)] + bytes))
            seeds.append(("\(name)-body", [UInt8(i)] + Framing.body(of: bytes)))
        }
        return seeds
    }

    static func decode<T: ArtifactCodable>(_ type: T.Type, _ rest: ArraySlice<UInt8>, whole: Bool) {
        let bytes = whole ? Array(rest) : Framing.framed(body: rest, magic: T.magic, version: T.formatVersion)
        guard let value = try? T.read(bytes: bytes) else { return }
        // What was read must write back to a file that reads again.
        guard (try? T.read(bytes: value.serialized())) != nil else { fatalError("\(T.self) read back fails") }
    }

    public static func test(_ input: [UInt8]) {
        guard let first = input.first else { return }
        let kind = kinds[Int(first & 7) % kinds.count]
        decode(kind, input.dropFirst(), whole: first & 8 != 0)
    }
}
