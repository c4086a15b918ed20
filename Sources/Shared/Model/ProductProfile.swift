// Where a forward's time goes: the wall time of each matrix product, by the matrix's role in the
// block, the kernel that ran it and the number of token rows. `bench forward --breakdown` installs one
// on the model (`LlamaModel.profile`) around timed passes; everything not in a product (attention,
// norms, RoPE, activations, the embedding) is the pass's time minus these. Off (nil) by default:
// a product then pays one load of a nil reference.
import Support
import GGUF
import Foundation

public final class ProductProfile: @unchecked Sendable {
    /// The matrix of a product: a block's attention (q, k, v, o) or MLP (gate, up, down) weights, or the LM head.
    public enum Role: String, Codable, Sendable, CaseIterable {
        case q, k, v, o, gate, up, down, head
    }

    /// Products of one role, kernel and row count.
    public struct Key: Hashable, Sendable {
        public var role: Role
        /// The stored format the quantized kernel read (Q5_0, Q8_0, …), or F32 for float32 BLAS.
        public var kernel: GGMLType
        public var outDim: Int
        public var inDim: Int
        public var tokens: Int
    }

    public struct Totals: Sendable {
        public var calls = 0
        public var seconds = 0.0
    }

    private let lock = NSLock()
    private var table: [Key: Totals] = [:]

    public init() {}

    /// Adds one product's wall time. Safe from several threads.
    public func record(_ key: Key, seconds: Double) {
        lock.lock()
        table[key, default: Totals()].calls += 1
        table[key, default: Totals()].seconds += seconds
        lock.unlock()
    }

    /// Everything recorded so far, in the order of a block (q, k, v, o, gate, up, down, head), then by
    /// kernel and row count.
    public var entries: [(key: Key, totals: Totals)] {
        lock.lock()
        defer { lock.unlock() }
        let order = Dictionary(uniqueKeysWithValues: Role.allCases.enumerated().map { ($1, $0) })
        return table.map { (key: $0.key, totals: $0.value) }.sorted { a, b in
            (order[a.key.role]!, a.key.kernel.description, a.key.tokens) < (order[b.key.role]!, b.key.kernel.description, b.key.tokens)
        }
    }

    public func reset() {
        lock.lock()
        table = [:]
        lock.unlock()
    }
}
