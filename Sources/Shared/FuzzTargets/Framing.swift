// Artifacts end in a checksum of everything before it, which random mutation almost never keeps right,
// so most inputs would stop at the checksum test. `framed` wraps fuzzed body bytes in a valid header
// and checksum (the format of ArtifactWriter), so the body decoders are fuzzed too.
import Editing

public enum Framing {
    public static func framed(body: some Collection<UInt8>, magic: String, version: UInt32) -> [UInt8] {
        var out = Array(magic.utf8.prefix(8))
        while out.count < 8 { out.append(0) }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        u32(version)
        u32(0)
        u64(UInt64(24 + body.count + 8))
        out += body
        let sum = out.withUnsafeBytes { FNV1a64.hash($0) }
        u64(sum)
        return out
    }

    /// The body of a finished artifact (between the 24-byte header and the 8-byte checksum).
    public static func body(of artifact: [UInt8]) -> [UInt8] {
        Array(artifact[24 ..< artifact.count - 8])
    }
}
