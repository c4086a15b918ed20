// Editing methods as stages (issue 14): a locate-then-edit method is targets → solve → filter, and each
// stage can be exchanged on its own. docs/algorithm.md's two methods are the default configurations:
// AlphaEdit = v* → AlphaEdit solve (projected by construction) → no filter; MEMIT = v* → MEMIT solve →
// no filter. The stages are part of the hyperparameters, so a campaign records them with its settings
// (a resume with other stages is refused) and the workers' v* jobs carry them.
//
//   targets  v*: docs/algorithm.md §3.
//            encore: v*'s loop also stops a request once its target probability (the geometric mean
//              over its rewrite prompts and target tokens, exp(−NLL)) reaches `encoreProbability`:
//              the early stopping of ENCORE (Gupta et al., "Lifelong Knowledge Editing requires Better
//              Regularization", 2025), which stops at a probability instead of a loss.
//            nas: each solved v* (the target output z at the last edited layer) is rescaled to the norm of
//              the unedited model's output there, ‖h⁰‖: Norm-Anchor Scaling (Liu et al., "Norm Anchors
//              Make Model Edits Last", arXiv 2602.02543, 2026), which breaks the feedback loop in which
//              solved value vectors and edited weights grow each other's norms. h⁰ is read with the
//              edited layers' unedited weights swapped in for the one forward (the file holds them).
//   solve    alphaedit or memit (the method), with the projection on or off: `project` on MEMIT is the
//              paper's plug-in experiment (AlphaEdit, Fang et al., ICLR 2025, §4.3): ΔW ← ΔW P with
//              P = Û Ûᵀ, so ΔW (I − P) = 0 and the preserved keys K0 are untouched as in AlphaEdit;
//              `project = false` on AlphaEdit solves over every direction (Û = I).
//   filter   prune: PRUNE (Ma et al., "Perturbation-Restrained Sequential Model Editing", ICLR 2025,
//              Eq. 9): the singular values σ of the accumulated update Δ above the largest singular
//              value σ̄ of the unedited W become σ̄ + ln(σ / σ̄) (log base e), which bounds the condition
//              number of W + Δ; Δ's singular vectors are kept. What is applied at a batch is the filtered
//              accumulated update minus what earlier batches applied.
//            rect: RECT (Gu et al., "Model Editing Harms General Abilities of Large Language Models:
//              Regularization to the Rescue", EMNLP 2024): of a batch's ΔW only the entries with the
//              largest relative change |ΔWᵢⱼ| / |Wᵢⱼ| are kept, `rectFraction` of them; the rest are 0.
import Support
import Kernels
import Foundation

public struct EditStages: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Targets: String, Codable, Sendable, CaseIterable { case vstar, encore, nas }
    public enum Filter: String, Codable, Sendable, CaseIterable { case none, prune, rect }

    public var targets: Targets = .vstar
    /// nil: the method's own (AlphaEdit projects, MEMIT does not).
    public var project: Bool?
    public var filter: Filter = .none
    /// ENCORE's stopping probability.
    public var encoreProbability: Float = 0.9
    /// RECT's kept fraction of entries.
    public var rectFraction: Double = 0.2

    public init(targets: Targets = .vstar, project: Bool? = nil, filter: Filter = .none) {
        self.targets = targets; self.project = project; self.filter = filter
    }

    public func projects(_ method: EditMethod) -> Bool { project ?? (method == .alphaedit) }

    /// The configuration as a user names it, e.g. "memit+P, filter rect".
    public func name(for method: EditMethod) -> String {
        var s = "\(method.rawValue)"
        if projects(method) != (method == .alphaedit) { s += projects(method) ? "+P" : " without projection" }
        if targets == .encore { s += ", targets encore (p ≥ \(encoreProbability))" }
        if targets == .nas { s += ", targets nas" }
        if filter != .none { s += ", filter \(filter.rawValue)" + (filter == .rect ? " (\(rectFraction))" : "") }
        return s
    }

    public var description: String {
        "targets \(targets.rawValue), project \(project.map { $0 ? "on" : "off" } ?? "method's"), filter \(filter.rawValue)"
    }
}

public enum StageMath {
    /// ΔW P = (ΔW Û) Ûᵀ (d×f), never forming P.
    public static func project(_ dw: Matrix64, basis U: Matrix64) throws -> Matrix64 {
        try (try dw.times(U)).times(U, transposeOther: true)
    }

    /// RECT: keeps the `fraction` of entries with the largest |ΔW| / |W| (ties broken by position),
    /// zeroes the rest. `w` is the weight the update is added to (same layout). An entry of W that is 0
    /// counts as an infinite relative change.
    public static func rect(_ dw: Matrix64, weights w: [Float], fraction: Double) throws -> Matrix64 {
        guard w.count == dw.values.count else { throw LinearAlgebraError.shapeMismatch("W has \(w.count) entries, ΔW \(dw.values.count)") }
        guard fraction > 0, fraction <= 1 else { throw LinearAlgebraError.nonFinite("RECT fraction \(fraction) (must be in (0, 1])") }
        let n = dw.values.count
        let keep = Int((Double(n) * fraction).rounded())
        let rel = (0..<n).map { i -> Double in
            let a = abs(dw.values[i]), b = Double(abs(w[i]))
            return b > 0 ? a / b : (a > 0 ? .infinity : 0)
        }
        let order = (0..<n).sorted { rel[$0] != rel[$1] ? rel[$0] > rel[$1] : $0 < $1 }
        var out = Matrix64(zeros: dw.rows, dw.cols)
        for i in order.prefix(keep) { out.values[i] = dw.values[i] }
        return out
    }

    /// σ̄ + ln(σ / σ̄) for σ > σ̄, else σ (PRUNE's restraint).
    public static func pruneValue(_ sigma: Double, bound: Double) -> Double {
        sigma > bound && bound > 0 ? bound + Foundation.log(sigma / bound) : sigma
    }

    /// PRUNE on an accumulated update Δ (d×f): Δ = U Σ Vᵀ from the eigenvectors U of Δ Δᵀ (d×d);
    /// each σ > `bound` becomes pruneValue(σ), i.e. Δ' = Δ + U_big diag(F(σ)/σ − 1) U_bigᵀ Δ.
    public static func prune(_ delta: Matrix64, bound: Double) throws -> Matrix64 {
        try pruneReporting(delta, bound: bound).0
    }

    /// `prune`, with Δ's largest singular value and how many were above the bound (for the log).
    public static func pruneReporting(_ delta: Matrix64, bound: Double) throws -> (Matrix64, largest: Double, shrunk: Int) {
        let d = delta.rows
        guard d > 0, delta.cols > 0 else { return (delta, 0, 0) }
        let m = try delta.times(delta, transposeOther: true)                     // Δ Δᵀ, d×d
        let (values, vectors) = try LAPACK.symmetricEigen(m.values, n: d)        // ascending; vectors column-major
        var big: [(Int, Double)] = []
        for (i, v) in values.enumerated() {
            let s = max(v, 0).squareRoot()
            if s > bound { big.append((i, pruneValue(s, bound: bound) / s - 1)) }
        }
        let largest = max(values.last ?? 0, 0).squareRoot()
        if big.isEmpty { return (delta, largest, 0) }
        // U_big (d×k) scaled columns, then Δ + U_big diag(c) (U_bigᵀ Δ).
        var ub = Matrix64(zeros: d, big.count), ubScaled = Matrix64(zeros: d, big.count)
        for (j, (i, c)) in big.enumerated() {
            for r in 0..<d {
                let x = vectors[r * d + i]  // eigenvector i is column i
                ub.values[r * big.count + j] = x
                ubScaled.values[r * big.count + j] = x * c
            }
        }
        let proj = try ub.times(delta, transposeSelf: true)                       // U_bigᵀ Δ, k×f
        return (try delta.combined(1, 1, try ubScaled.times(proj)), largest, big.count)
    }

    /// The largest singular value of a d×f matrix (float32 weights), from the eigenvalues of W Wᵀ.
    public static func largestSingularValue(_ w: [Float], rows d: Int, cols f: Int) throws -> Double {
        let m = try Matrix64(rows: d, cols: f, values: w.map(Double.init))
        let (values, _) = try LAPACK.symmetricEigen(try m.times(m, transposeOther: true).values, n: d)
        return max(values.last ?? 0, 0).squareRoot()
    }

    /// Singular values of a d×f matrix, descending.
    public static func singularValues(_ a: Matrix64) throws -> [Double] {
        let (values, _) = try LAPACK.symmetricEigen(try a.times(a, transposeOther: true).values, n: a.rows)
        return values.map { max($0, 0).squareRoot() }.sorted(by: >)
    }
}

