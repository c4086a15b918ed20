// A batch of token sequences of different lengths, packed row after row into one T-row matrix
// so every linear layer is a single GEMM. Row r belongs to sequence `seqOf[r]` at `positions[r]`.
// A sequence may start past position 0 when its earlier rows were run before (PrefixKVCache).
import Support
import GGUF
import Tokenization
import Kernels

public struct TokenBatch: Sendable {
    public let tokens: [Int32]
    public let positions: [Int32]
    public let starts: [Int]
    public let lengths: [Int]
    public var count: Int { tokens.count }
    public var sequences: Int { lengths.count }
    /// Rows whose float32 (BLAS) products run apart: OpenBLAS rounds a row differently with the row
    /// count of the call, so sequences decoded together with `groups` get, group by group, the bits
    /// they get in a batch of their own (CachedGenerator's independent generations). The quantized
    /// kernels compute each row alone and run over all rows at once; whether they are used is decided
    /// on the whole batch, so callers keep it within `QuantizedLinear.maxRows`. nil: one product.
    public var productGroups: [Range<Int>]?

    /// `firstPositions` (one per sequence, default 0): the position of each sequence's first row.
    public init(_ sequences: [[Int32]], firstPositions: [Int]? = nil) {
        var t: [Int32] = [], p: [Int32] = [], s: [Int] = [], l: [Int] = []
        for (i, seq) in sequences.enumerated() {
            let p0 = firstPositions.map { i < $0.count ? $0[i] : 0 } ?? 0
            s.append(t.count); l.append(seq.count)
            t += seq
            p += (0..<seq.count).map { Int32(p0 + $0) }
        }
        tokens = t; positions = p; starts = s; lengths = l
    }

    /// Packed row of the `pos`-th row of sequence `seq` (negative `pos` counts from the end).
    public func row(_ seq: Int, _ pos: Int) -> Int {
        starts[seq] + (pos < 0 ? lengths[seq] + pos : pos)
    }

    /// Rows of the last token of every sequence.
    public var lastRows: [Int] { (0..<sequences).map { row($0, -1) } }

    package func validate(vocab: Int, context: Int) throws {
        for n in lengths {
            if n == 0 { throw ModelError.emptyPrompt }
            if n > context { throw ModelError.contextOverflow(tokens: n, context: context) }
        }
        for id in tokens where id < 0 || Int(id) >= vocab { throw ModelError.tokenOutOfRange(id: id, vocab: vocab) }
    }
}
