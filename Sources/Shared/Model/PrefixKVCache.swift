// K and V (after RoPE) of a packed batch's rows at a range of blocks, so that a later pass can run only
// the rows from some position of each sequence on and attend to the earlier rows' cached K/V. This is
// exact by causality: a row never depends on later rows, so the rows before the position where a pass
// changes something (v*'s δ, docs/algorithm.md §3) are the same in every pass and need computing once.
//
// Use: `runBlocks` with a batch of the sequences' first rows (`TokenBatch` positions 0…) fills the
// cache; later passes run batches whose sequences start at their first uncached position
// (`TokenBatch(_:firstPositions:)`). Each pass writes its own rows' K/V into the cache too, so its
// backward reads them there. Shapes: R cache rows, K = KV·D.
import Support
import GGUF
import Tokenization
import Kernels

public final class PrefixKVCache: @unchecked Sendable {
    public let layers: ClosedRange<Int>
    public let rows: Int
    let k: [FloatBuffer]  // per layer [R × K]
    let v: [FloatBuffer]  // per layer [R × K]

    public init(config c: LlamaConfig, layers: ClosedRange<Int>, rows: Int) {
        self.layers = layers; self.rows = rows
        k = layers.map { _ in FloatBuffer(count: rows * c.kvDim, zeroed: false) }
        v = layers.map { _ in FloatBuffer(count: rows * c.kvDim, zeroed: false) }
    }

    func k(_ l: Int) -> UnsafeMutablePointer<Float> { k[l - layers.lowerBound].ptr }
    func v(_ l: Int) -> UnsafeMutablePointer<Float> { v[l - layers.lowerBound].ptr }

    /// Copies block `l`'s K/V of a batch's rows [T × K] to their cache rows (`layout.kvStarts` + position).
    func store(_ l: Int, k src: UnsafePointer<Float>, v vsrc: UnsafePointer<Float>, layout: AttentionLayout, kvDim: Int) {
        let kd = k(l), vd = v(l)
        for (s, m) in layout.lengths.enumerated() where m > 0 {
            let from = layout.starts[s] * kvDim, to = (layout.kvStarts[s] + layout.prefixes[s]) * kvDim
            (kd + to).update(from: src + from, count: m * kvDim)
            (vd + to).update(from: vsrc + from, count: m * kvDim)
        }
    }
}

/// A pass over rows that continue sequences held in `cache`: sequence s of the pass's batch is cache
/// rows `kvStarts[s]` + 0…; its first `batch.positions` rows there are already filled.
public struct CachedPrefix: @unchecked Sendable {
    public let cache: PrefixKVCache
    public let kvStarts: [Int]
    public init(cache: PrefixKVCache, kvStarts: [Int]) { self.cache = cache; self.kvStarts = kvStarts }

    func layout(_ batch: TokenBatch, heads: Int) -> AttentionLayout {
        AttentionLayout(starts: batch.starts, lengths: batch.lengths, heads: heads,
                        prefixes: batch.starts.map { $0 < batch.count ? Int(batch.positions[$0]) : 0 }, kvStarts: kvStarts)
    }
}
