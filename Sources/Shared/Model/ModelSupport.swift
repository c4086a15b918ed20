// Whether this package can run a GGUF file, from its metadata and tensor table alone (no weight is
// read or dequantized): `alphaedit inspect` prints it, so a user with their own file learns in a second
// what a load would refuse (an architecture, a RoPE scaling, a tensor, a tokenizer), and how much
// memory the float32 weights will take, before starting a long run.
import Support
import GGUF
import Tokenization
import Foundation

public struct ModelSupport: Sendable {
    /// What a load would refuse, each naming its cause; empty when the file is supported.
    public let problems: [String]
    /// What was read: architecture and shape, RoPE, memory, tokenizer (one line each, as far as reading got).
    public let facts: [String]
    public var supported: Bool { problems.isEmpty }

    public init(gguf: GGUFFile) {
        var problems: [String] = [], facts: [String] = []
        do {
            let c = try LlamaConfig(gguf: gguf)
            let t = c.traits
            var shape = "\(t.name): \(c.layers) blocks, C \(c.hidden), F \(c.ffn), H \(c.heads) (KV \(c.kvHeads)), D \(c.headDim), "
                + "vocabulary \(c.vocab), \(c.tiedEmbeddings ? "tied" : "untied") head"
            if let w = t.slidingWindow { shape += ", sliding window \(w)" }
            facts.append(shape)
            let infos = try LlamaWeights.tensorInfos(gguf, config: c)
            let divisors = try LlamaWeights.ropeFactors(gguf, config: c)
            var rope = "RoPE: base \(c.ropeBase) over \(c.ropeDims) dims"
            let r = t.ropeScaling
            if r.freqScale != 1 { rope += ", θ × \(r.freqScale) (\(r.yarnOriginalContext == nil ? "linear scaling" : "YaRN from a context of \(r.yarnOriginalContext!)"))" }
            if r.magnitude != 1 { rope += ", cos and sin × \(r.magnitude)" }
            if divisors != nil { rope += ", θ divided by rope_freqs.weight" }
            if let b = t.ropeBaseLocal { rope += "; local layers: base \(b), unscaled" }
            facts.append(rope)
            facts.append(ModelSupport.memory(infos))
            facts.append(ModelSupport.statistics(ffn: c.ffn))
        } catch {
            problems.append("\(error)")
        }
        do {
            let tokenizer = try BPETokenizer(gguf: gguf)
            let kind = (try? gguf.string(GGUFNames.tokenizerModel)) ?? "?"
            let pre = (try? gguf.string(GGUFNames.tokenizerPre)).map { ", pre-tokenizer \($0)" } ?? ""
            facts.append("tokenizer: \(kind)\(pre), \(tokenizer.tokens.count) tokens\(tokenizer.addsBOS ? ", BOS added" : "")")
        } catch {
            problems.append("\(error)")
        }
        self.problems = problems
        self.facts = facts
    }

    /// What K₀ statistics take: F × F float64 a layer, on a worker while it runs a shard and on the
    /// coordinator for the whole build (lean does not shrink them; a K₀ build fits them to the workers'
    /// memory: WorkerPool+Memory).
    public static func statistics(ffn: Int) -> String {
        let bytes = Double(ffn) * Double(ffn) * 8
        func size(_ b: Double) -> String { b >= 1e9 ? String(format: "%.2f GB", b / 1e9) : String(format: "%.0f MB", b / 1e6) }
        return "K0 statistics: \(size(bytes)) an edited layer (F × F float64), on a worker while it runs a shard and on the coordinator for the whole build; a distributed build runs fewer layers a pass where the workers' memory is short; "
            + "an edit campaign's coordinator then holds Cp, \(size(Double(ffn) * Double(ffn + 1) * 4)) an edited layer (its upper triangle), with one layer's Cp in full and its projector (up to \(size(bytes)) each) while the solve is at it"
    }

    /// The memory line: float32 copies, lean (vectors only), and what `auto` picks on this machine.
    public static func memory(_ infos: [GGUFTensorInfo], physicalMemory: UInt64 = ProcessStats.memoryLimit()) -> String {
        let floats = infos.reduce(0) { $0 + $1.elementCount }, vectors = infos.filter { $0.dims.count < 2 }.reduce(0) { $0 + $1.elementCount }
        let auto = (try? WeightResidency.chosen(float32Bytes: floats * 4, environment: [:], physicalMemory: physicalMemory)) ?? .float32
        return String(format: "memory: %.2f GB of float32 weights once loaded, beside the mapped file; lean (ALPHAEDIT_WEIGHTS=lean) %.1f MB, "
                      + "the matrices read from the file; ALPHAEDIT_WEIGHTS=auto picks %@ here (%.1f GB of memory)",
                      Double(floats) * 4 / 1e9, Double(vectors) * 4 / 1e6, auto.rawValue, Double(physicalMemory) / 1e9)
    }
}
