// Next-token choice: greedy argmax, or top-k sampling from a seeded generator (reproducible runs).
import Support
import GGUF
import Tokenization
import Kernels
import Foundation

public struct Sampler: Sendable {
    public enum Mode: Sendable, Equatable { case greedy, topK(Int) }
    public let mode: Mode
    private var rng: SplitMix64

    public init(mode: Mode = .greedy, seed: UInt64 = 0) {
        self.mode = mode
        rng = SplitMix64(seed: seed)
    }

    /// Index (from the collection's start) of the first largest logit. Arrays and slices take the
    /// concrete buffer loop: the generic one is not specialized across modules and took ~10 ms on
    /// Qwen's 151,936 logits, a third of a generation step.
    public static func argmax<C: Collection>(_ logits: C) -> Int where C.Element == Float, C.Index == Int {
        if let i = logits.withContiguousStorageIfAvailable({ argmax(buffer: $0) }) { return i }
        var best = logits.startIndex, bv = -Float.infinity
        for i in logits.indices where logits[i] > bv { bv = logits[i]; best = i }
        return best - logits.startIndex
    }

    public static func argmax(buffer p: UnsafeBufferPointer<Float>) -> Int {
        var best = 0, bv = -Float.infinity
        for i in 0..<p.count where p[i] > bv { bv = p[i]; best = i }
        return best
    }

    /// Indices of the k largest logits, largest first.
    public static func topK<C: Collection>(_ logits: C, _ k: Int) -> [Int] where C.Element == Float, C.Index == Int {
        if let ids = logits.withContiguousStorageIfAvailable({ topK(buffer: $0, k) }) { return ids }
        return Array(logits).withUnsafeBufferPointer { topK(buffer: $0, k) }
    }

    /// `topK` on a buffer (indices from its start).
    public static func topK(buffer p: UnsafeBufferPointer<Float>, _ k: Int) -> [Int] {
        var top: [(Float, Int)] = []
        top.reserveCapacity(k + 1)
        for i in 0..<p.count {
            let v = p[i]
            if top.count < k || v > top[top.count - 1].0 {
                var j = top.count
                top.append((v, i))
                while j > 0 && top[j - 1].0 < v { top[j] = top[j - 1]; j -= 1 }
                top[j] = (v, i)
                if top.count > k { top.removeLast() }
            }
        }
        return top.map { $0.1 }
    }

    public mutating func next<C: Collection>(_ logits: C) -> Int32 where C.Element == Float, C.Index == Int {
        switch mode {
        case .greedy: return Int32(Self.argmax(logits))
        case .topK(let k):
            let ids = Self.topK(logits, max(1, k))
            let base = logits.startIndex
            let mx = logits[base + ids[0]]
            let w = ids.map { Foundation.exp(Double(logits[base + $0] - mx)) }
            var u = Double(rng.next() >> 11) * 0x1.0p-53 * w.reduce(0, +)
            for (i, wi) in w.enumerated() {
                u -= wi
                if u < 0 { return Int32(ids[i]) }
            }
            return Int32(ids[ids.count - 1])
        }
    }
}
