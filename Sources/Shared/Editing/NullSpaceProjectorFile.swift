// A projector set's artifact (NullSpaceProjectorSet, "AENSPROJ") read one layer at a time: what an edit
// campaign's solve needs, which takes the layers one after another. Reading the set whole held every
// layer's basis Û (f×r float64: 0.66 GB for Qwen2.5-0.5B's 5 layers, ≈ 5.7 GB for an 8B model's f of
// 14,336), and the file's bytes beside them while it decoded. Here opening checks the container as
// ArtifactReader does (magic, version, declared length, FNV-1a-64 checksum, streamed in 1 MiB reads)
// (ArtifactReader.checkHeader) and indexes the layers' headers; `projector(layer:)` reads that layer's eigenvalues and basis straight
// into their arrays (pread), the same values `NullSpaceProjectorSet.read` gives (NullSpaceProjectorFileTests).
import Support
import Kernels
import Foundation

public struct NullSpaceProjectorFile: Sendable {
    public let path: String
    public let f: Int
    public let provenance: String
    struct Entry: Sendable {
        var layer: Int, threshold: Double, kept: Int, valuesOffset: Int
    }
    let entries: [Entry]
    private let file: RandomAccessFile

    public var layers: [Int] { entries.map(\.layer) }

    public init(path: String) throws {
        let file: RandomAccessFile
        do { file = try RandomAccessFile(path: path) } catch { throw ArtifactError.io(path: path, reason: "cannot read: \(error)") }
        self.file = file
        self.path = path
        let size = file.size, header = ArtifactLayout.headerBytes, sumBytes = ArtifactLayout.checksumBytes
        func fail(_ reason: String) -> ArtifactError { .malformed(path: path, reason: reason) }
        _ = try ArtifactReader.checkHeader(try file.bytes(at: 0, count: min(header, size)), size: size, path: path,
                                           magic: NullSpaceProjectorSet.magic, supportedVersion: NullSpaceProjectorSet.formatVersion)
        func u64(_ b: [UInt8], _ o: Int) -> UInt64 { ArtifactReader.readU64(b, at: o) }
        let end = size - sumBytes
        // The checksum, streamed.
        var h = FNV1a64.offsetBasis
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var at = 0
        while at < end {
            let n = min(chunk.count, end - at)
            try chunk.withUnsafeMutableBytes { try file.read(at: at, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
            h = chunk.withUnsafeBytes { FNV1a64.hash(UnsafeRawBufferPointer(rebasing: $0[0..<n]), seed: h) }
            at += n
        }
        let stored = u64(try file.bytes(at: end, count: 8), 0)
        guard stored == h else { throw ArtifactError.checksumMismatch(path: path, stored: stored, computed: h) }
        // The body's fields, bounds-checked as ArtifactReader checks them.
        var offset = header
        func take(_ n: Int, _ what: String) throws -> [UInt8] {
            guard n >= 0, n <= end - offset else { throw fail("\(what) runs past the end of the body") }
            defer { offset += n }
            return try file.bytes(at: offset, count: n)
        }
        func count(_ what: String, limit: Int) throws -> Int {
            let v = Int64(bitPattern: u64(try take(8, what), 0))
            guard v >= 0, v <= Int64(limit) else { throw fail("\(what) = \(v) is out of range 0...\(limit)") }
            return Int(v)
        }
        let length = try count("provenance length", limit: 1 << 20)
        provenance = String(decoding: try take(length, "provenance"), as: UTF8.self)
        f = try count("f", limit: KeyStatistics.maxDimension)
        let m = try count("layer count", limit: KeyStatistics.maxLayers)
        var entries: [Entry] = []
        for i in 0..<m {
            let layer = try count("layer index \(i)", limit: Int(Int32.max))
            let threshold = Double(bitPattern: u64(try take(8, "threshold of layer \(layer)"), 0))
            let k = try count("kept dimension of layer \(layer)", limit: f)
            let (values, o1) = (f + f * k).multipliedReportingOverflow(by: 8)
            guard !o1, values <= end - offset else { throw fail("eigenvalues and basis of layer \(layer) run past the end of the body") }
            entries.append(Entry(layer: layer, threshold: threshold, kept: k, valuesOffset: offset))
            offset += values
        }
        guard offset == end else { throw fail("\(end - offset) bytes after the last layer") }
        guard !entries.isEmpty, Set(entries.map(\.layer)).count == entries.count else {
            throw fail("the layers \(entries.map(\.layer)) must be distinct and at least one")
        }
        self.entries = entries
    }

    /// Layer `layer`'s projector, read from the file now (nothing is kept).
    public func projector(layer: Int) throws -> NullSpaceProjector {
        guard let e = entries.first(where: { $0.layer == layer }) else { throw KeyStatisticsError.unknownLayer(layer, known: layers) }
        func doubles(_ n: Int, at offset: Int) throws -> [Double] {
            var out = [Double](repeating: 0, count: n)
            try out.withUnsafeMutableBytes { try file.read(at: offset, into: $0) }
            #if !_endian(little)
            out = out.map { Double(bitPattern: UInt64(littleEndian: $0.bitPattern)) }
            #endif
            return out
        }
        let values = try doubles(f, at: e.valuesOffset)
        let basis = try doubles(f * e.kept, at: e.valuesOffset + 8 * f)
        do {
            return try NullSpaceProjector(layer: layer, threshold: e.threshold, eigenvalues: values,
                                          basis: try Matrix64(rows: f, cols: e.kept, values: basis))
        } catch { throw ArtifactError.malformed(path: path, reason: "layer \(layer): \(error)") }
    }
}
