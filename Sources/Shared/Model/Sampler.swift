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

    public static func argmax<C: Collection>(_ logits: C) -> Int where C.Element == Float, C.Index == Int {
        var best = logits.startIndex, bv = -Float.infinity
        for i in logits.indices where logits[i] > bv { bv = logits[i]; best = i }
        return best - logits.startIndex
    }

    /// Indices of the k largest logits, largest first.
    public static func topK<C: Collection>(_ logits: C, _ k: Int) -> [Int] where C.Element == Float, C.Index == Int {
        var top: [(Float, Int)] = []
        top.reserveCapacity(k + 1)
        for i in logits.indices {
            let v = logits[i]
            if top.count < k || v > top[top.count - 1].0 {
                var j = top.count
                top.append((v, i))
                while j > 0 && top[j - 1].0 < v { top[j] = top[j - 1]; j -= 1 }
                top[j] = (v, i)
                if top.count > k { top.removeLast() }
            }
        }
        return top.map { $0.1 - logits.startIndex }
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
