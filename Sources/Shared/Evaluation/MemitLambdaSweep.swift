// Choosing MEMIT's λm fairly (issue 5): on one batch, v* once, then the MEMIT update for each λm on
// the restored unedited weights; efficacy (and specificity) on the batch per λm. The reported choice is
// the largest λm whose efficacy reaches the goal — the strongest preservation term that still edits.
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store
import Foundation

public struct LambdaTrial: Codable, Equatable, Sendable {
    public var lambda: Double
    public var efficacy: Double
    public var specificity: Double
    public init(lambda: Double, efficacy: Double, specificity: Double) {
        self.lambda = lambda; self.efficacy = efficacy; self.specificity = specificity
    }
}

public enum MemitLambdaSweep {
    public static func run(editor base: Editor, statistics: KeyStatistics, batch: [EditRequest], lambdas: [Double],
                           evaluator: CounterFactEvaluator, log: (String) -> Void = { _ in }) throws -> [LambdaTrial] {
        let model = base.model
        let layers = base.hp.layers
        let saved = try layers.map { try model.editableDown($0).array }  // resident from here on
        let zs = try base.targets(batch)
        var out: [LambdaTrial] = []
        var ev = evaluator
        ev.generation = nil
        for lambda in lambdas {
            var hp = base.hp
            hp.memitLambda = lambda
            let ed = try Editor(model: model, tokenizer: base.tokenizer, hp: hp, method: .memit, templates: base.templates,
                                projectors: nil, statistics: statistics)
            _ = try ed.apply(batch, zs: zs)
            let s = try ev.evaluate(batch).summary()
            let t = LambdaTrial(lambda: lambda, efficacy: s[.efficacy] ?? .nan, specificity: s[.specificity] ?? .nan)
            log(String(format: "λm %g: efficacy %.1f, specificity %.1f", lambda, t.efficacy, t.specificity))
            out.append(t)
            for (i, l) in layers.enumerated() {
                saved[i].withUnsafeBufferPointer { model.weights.layers[l].down.ptr.update(from: $0.baseAddress!, count: $0.count) }
            }
        }
        return out
    }

    /// The largest λm reaching `goal` efficacy, if any.
    public static func choose(_ trials: [LambdaTrial], goal: Double = 90) -> Double? {
        trials.filter { $0.efficacy >= goal }.map(\.lambda).max()
    }
}
