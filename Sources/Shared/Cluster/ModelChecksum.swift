// The identity of a model file across processes: FNV-1a-64 (as the artifacts, see Artifact.swift) of
// its bytes, read memory-mapped. A worker whose checksum differs from the coordinator's would compute
// statistics or targets of another model, so the coordinator refuses it at hello.
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store
import Evaluation
import Wire
import Config
import Foundation

public enum ModelChecksum {
    public static func of(path: String) throws -> String {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw ArtifactError.io(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        return data.withUnsafeBytes { hex(FNV1a64.hash($0)) }
    }

    /// Always 16 hex digits, as hello requires: a hash with a leading zero nibble (Qwen2.5's file has
    /// one) would otherwise print 15 and every worker would be refused.
    public static func hex(_ h: UInt64) -> String {
        let s = String(h, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
