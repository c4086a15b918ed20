// Typed errors of GGUF reading and writing: each names the field and the byte offset involved.
import Support

public enum GGUFError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case badMagic(found: UInt32)
    case unsupportedVersion(UInt32)
    case truncated(field: String, offset: Int, needed: Int, fileSize: Int)
    case absurdCount(field: String, value: UInt64, offset: Int)
    /// A count larger than the rest of the file can hold: the usual sign of a cut-off file.
    case countBeyondFile(field: String, value: UInt64, offset: Int, fileSize: Int)
    case invalidUTF8(field: String, offset: Int)
    case unknownValueType(raw: UInt32, key: String, offset: Int)
    case unknownTensorType(raw: UInt32, tensor: String, offset: Int)
    case badShape(tensor: String, detail: String)
    case badAlignment(UInt64)
    case duplicateKey(String)
    case duplicateTensor(String)
    case tensorOutOfBounds(tensor: String, start: Int, end: Int, fileSize: Int)
    case misalignedTensor(tensor: String, offset: UInt64, alignment: Int)
    case missingKey(String)
    case wrongValueType(key: String, expected: String, found: String)
    case missingTensor(String)
    case unsupportedTensorType(tensor: String, type: GGMLType)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let p, let r): "cannot open GGUF file \(p): \(r)"
        case .badMagic(let m): "not a GGUF file: magic is 0x\(String(m, radix: 16)), expected 0x46554747 (\"GGUF\")"
        case .unsupportedVersion(let v): "unsupported GGUF version \(v) (supported: 2, 3)"
        case .truncated(let f, let o, let n, let s):
            "GGUF truncated: \(f) at offset \(o) needs \(n) bytes but the file has \(s) bytes"
        case .absurdCount(let f, let v, let o): "GGUF field \(f) at offset \(o) has an absurd value \(v)"
        case .countBeyondFile(let f, let v, let o, let s):
            "GGUF truncated (or corrupt): \(f) at offset \(o) is \(v), more entries than the \(s)-byte file can hold"
        case .invalidUTF8(let f, let o): "GGUF string \(f) at offset \(o) is not valid UTF-8"
        case .unknownValueType(let r, let k, let o): "GGUF metadata \(k) at offset \(o) has unknown value type \(r)"
        case .unknownTensorType(let r, let t, let o): "GGUF tensor \(t) at offset \(o) has unknown type id \(r)"
        case .badShape(let t, let d): "GGUF tensor \(t) has a bad shape: \(d)"
        case .badAlignment(let a): "GGUF general.alignment \(a) is not a power of two between 1 and 65536"
        case .duplicateKey(let k): "GGUF metadata key \(k) appears twice"
        case .duplicateTensor(let t): "GGUF tensor \(t) appears twice"
        case .tensorOutOfBounds(let t, let s, let e, let f):
            e > f ? "GGUF truncated: tensor \(t) data [\(s), \(e)) ends past the end of the file (\(f) bytes)"
                : "GGUF tensor \(t) data [\(s), \(e)) lies outside the file (\(f) bytes)"
        case .misalignedTensor(let t, let o, let a): "GGUF tensor \(t) offset \(o) is not a multiple of the alignment \(a)"
        case .missingKey(let k): "GGUF metadata key \(k) is missing"
        case .wrongValueType(let k, let e, let f): "GGUF metadata \(k) has type \(f), expected \(e)"
        case .missingTensor(let t): "GGUF tensor \(t) is missing"
        case .unsupportedTensorType(let t, let ty): "GGUF tensor \(t) has type \(ty), which cannot be dequantized"
        case .writeFailed(let p, let r): "cannot write GGUF file \(p): \(r)"
        }
    }
}
