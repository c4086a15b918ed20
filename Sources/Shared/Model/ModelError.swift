// Errors of model loading and running, each naming what is wrong.
import Support
import GGUF
import Tokenization
import Kernels

public enum ModelError: Error, Equatable, CustomStringConvertible {
    case unsupportedArchitecture(String)
    case missingTensor(String)
    case unexpectedTensor(String)
    case badTensorShape(name: String, expected: [Int], found: [Int])
    case badConfig(key: String, detail: String)
    case tokenOutOfRange(id: Int32, vocab: Int)
    case positionOutOfRange(sequence: Int, position: Int, length: Int)
    case layerOutOfRange(Int, layers: Int)
    case emptyPrompt
    case contextOverflow(tokens: Int, context: Int)
    case badSetting(name: String, detail: String)

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let a):
            "unsupported model architecture \"\(a)\" (supported: \(ArchitectureSpec.names.joined(separator: ", ")))"
        case .missingTensor(let n): "model tensor \(n) is missing"
        case .unexpectedTensor(let n): "model tensor \(n) is not part of this model's architecture"
        case .badTensorShape(let n, let e, let f): "model tensor \(n) has shape \(f), expected \(e) (GGML order)"
        case .badConfig(let k, let d): "model metadata \(k): \(d)"
        case .tokenOutOfRange(let id, let v): "token id \(id) is outside the vocabulary (0..<\(v))"
        case .positionOutOfRange(let s, let p, let n): "position \(p) is outside sequence \(s) of length \(n)"
        case .layerOutOfRange(let l, let n): "layer \(l) is outside 0..<\(n)"
        case .emptyPrompt: "the prompt is empty (no tokens)"
        case .contextOverflow(let t, let c):
            t > c ? "\(t) tokens exceed the model's context of \(c)" : "\(t) tokens fill the model's context of \(c): no room for a generated token"
        case .badSetting(let n, let d): "\(n): \(d)"
        }
    }
}
