// The settings of docs/algorithm.md §5 with their defaults for SmolLM2-135M.
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model

public struct EditHyperparameters: Sendable, Equatable, Codable {
    /// Edited layers E, ascending; the last is where v* is defined.
    public var layers: [Int] = [3, 4, 5, 6, 7]
    /// docs/algorithm.md §5: the reference uses 0.1 (tuned for Llama-3-8B). On this model the v* loss is still ≈ 2 after 24 steps
    /// at 0.1; measured on dev 0–19 (2 × 10 sequential, docs/evaluation.md): 0.5 gives efficacy 100,
    /// generalization 95, specificity 70.8 against 90 / 75 / 71.2 at 0.1 (one neighborhood prompt apart).
    public var vLR: Float = 0.5
    /// At most `vSteps − 1` Adam updates.
    public var vSteps: Int = 25
    public var clampFactor: Float = 0.75
    public var klFactor: Float = 0.0625
    public var weightDecay: Float = 0.5
    public var earlyStopLoss: Float = 0.05
    /// Null-space threshold τ on the eigenvalues of C0.
    public var nullSpaceThreshold: Double = 2e-2
    /// A threshold relative to each layer's largest eigenvalue: τ_l = ρ · λ_max(C0_l), used instead of
    /// `nullSpaceThreshold` when set (issue 10: an absolute τ does not transfer between layers or models).
    public var nullSpaceRelative: Double?
    /// The null space as a share of C0's trace (NullSpaceRule.traceShare), used instead of τ and ρ when set.
    public var nullSpaceTraceShare: Double?
    /// AlphaEdit's λ.
    public var lambda: Double = 10
    /// MEMIT's λm.
    public var memitLambda: Double = 15000
    /// w of AlphaEdit's penalty on the preserved keys inside the kept directions, w·‖ΔW K0‖²/n (nil or 0:
    /// the paper's AlphaEdit). The kept directions carry part of C0's trace on models without a true null
    /// space (README "Why AlphaEdit loses here"), and AlphaEdit's solve otherwise has only λ·I there;
    /// w = λm puts MEMIT's penalty on them. Since Û holds eigenvectors of C0, ÛᵀC0Û = diag(λ_kept) and the
    /// term costs nothing (EditSolver.alphaEdit's `keptPenalty`).
    public var keptC0Weight: Double?

    /// The method's stages (EditStages.swift); nil: docs/algorithm.md's method as it is (and in the
    /// settings of campaigns recorded before stages existed).
    public var stages: EditStages?

    public init() {}

    /// How τ is set per layer: the trace share when set, else ρ when set, else the absolute τ.
    public var nullSpaceRule: NullSpaceRule {
        nullSpaceTraceShare.map { .traceShare($0) } ?? nullSpaceRelative.map { .relative($0) } ?? .absolute(nullSpaceThreshold)
    }
    public var zLayer: Int { layers.last ?? 0 }

    /// Why `layers` cannot be edited on a model of `n` blocks (nil: they can): they must be distinct and
    /// within 0..<n, and the last (`zLayer`, where v* optimises) below the top block, whose output v*
    /// reaches through the blocks above it. Checked before any work (K₀, the pre-edit evaluation).
    public func layersProblem(modelLayers n: Int) -> String? {
        guard !layers.isEmpty, Set(layers).count == layers.count, layers.allSatisfy({ (0..<n).contains($0) }) else {
            let shown = layers.count > 12 ? LayerList.format(layers) : "\(layers)"
            return "edited layers \(shown) must be distinct, non-empty and within 0...\(n - 2) (the model has \(n) blocks; "
                + "v* optimises the last edited layer's output through the blocks above it)"
        }
        guard zLayer < n - 1 else {
            return "the last edited layer, \(zLayer), must be below the model's top block (\(n - 1)): v* optimises its output "
                + "through the blocks above it; edit layers within 0...\(n - 2)"
        }
        return nil
    }
    /// Why these settings cannot run with `method` (nil: they can). Checked before any work: it was found
    /// by the editor, after K₀ had been built and the campaign recorded with settings no run could use.
    public func methodProblem(_ method: EditMethod) -> String? {
        if (keptC0Weight ?? 0) > 0 && !(method == .alphaedit && effectiveStages.projects(method)) {
            return EditError.keptC0WeightNeedsProjection(effectiveStages.name(for: method)).description
        }
        return nil
    }

    /// The stages in effect.
    public var effectiveStages: EditStages { stages ?? EditStages() }
}
