// The projector and the edit solves (docs/algorithm.md §1, §4) checked by their identities.
import Foundation
import Shared
import XCTest

/// A small edit problem whose preserved keys K0 span only `rank` of the f dimensions, so C0 has an
/// exact null space of dimension f − rank.
struct EditProblem {
    let f = 24, d = 7, u = 5, rank = 10
    let k0: Matrix64      // f×rank preserved keys
    let c0: Matrix64      // K0 K0ᵀ / rank
    let k1: Matrix64      // f×u new keys
    let r: Matrix64       // d×u residuals
    let cp: Matrix64      // f×f previously edited keys' Σ k kᵀ
    let projector: NullSpaceProjector

    init(seed: UInt64) throws {
        var rng = EditMathRNG(seed: seed)
        k0 = rng.matrix(f, rank)
        c0 = try k0.times(k0, transposeOther: true).scaled(1 / Double(rank))
        k1 = rng.matrix(f, u)
        r = rng.matrix(d, u, scale: 3)
        let kp = rng.matrix(f, 6)
        cp = try kp.times(kp, transposeOther: true)
        // The range's eigenvalues are O(0.1–1), the null space's O(1e-16): 1e-8 separates them.
        projector = try NullSpaceProjector(c0: c0, threshold: 1e-8, layer: 3)
    }
}

extension EditMathTests {
    func testProjectorIsSymmetricIdempotentAndKeepsTheNullSpace() throws {
        let pb = try EditProblem(seed: 11)
        XCTAssertEqual(pb.projector.keptDimension, pb.f - pb.rank, "r = f − rank(K0)")
        let p = pb.projector.projectionMatrix()
        let sym = maxDiff64(p.values, p.transposed.values)
        XCTAssertLessThan(sym, 1e-10, "P = Pᵀ: max diff \(sym)")
        let idem = maxDiff64(try p.times(p).values, p.values)
        XCTAssertLessThan(idem, 1e-10, "P² = P: max diff \(idem)")
        let pk0 = try p.times(pb.k0).maxAbs
        XCTAssertLessThan(pk0, 1e-10, "P K0 = 0 (preserved keys lie outside the kept space): max \(pk0)")
        let u = pb.projector.basis
        let orth = maxDiff64(try u.times(u, transposeSelf: true).values, Matrix64.identity(u.cols).values)
        XCTAssertLessThan(orth, 1e-12, "Ûᵀ Û = I: max diff \(orth)")
        let s = pb.projector.spectrum
        XCTAssertEqual(s.max, pb.projector.eigenvalues.last)
        XCTAssertLessThan(abs(s.trace - (0..<pb.f).reduce(0) { $0 + pb.c0[$1, $1] }), 1e-12, "Σλ = tr C0")
        XCTAssertEqual(pb.projector.count(below: 1e-8), pb.projector.keptDimension)
    }

    func testAlphaEditVanishesOnTheComplementAndOnPreservedKeys() throws {
        let pb = try EditProblem(seed: 12)
        let dw = try EditSolver.alphaEdit(residual: pb.r, keys: pb.k1, projector: pb.projector, previousKeys: pb.cp)
        XCTAssertEqual(dw.rows, pb.d)
        XCTAssertEqual(dw.cols, pb.f)
        let scale = dw.maxAbs
        XCTAssertGreaterThan(scale, 1e-3, "the edit is not trivially zero")
        let p = pb.projector.projectionMatrix()
        let comp = maxDiff64(dw.values, try dw.times(p).values)
        XCTAssertLessThan(comp, 1e-10 * scale, "ΔW (I − P) = 0 (docs/algorithm.md §4.3): max \(comp), ‖ΔW‖max \(scale)")
        // (W + ΔW) K0 = W K0 for every k0 in span(K0): ΔW k0 = 0.
        var rng = EditMathRNG(seed: 13)
        let k0s = try pb.k0.times(rng.matrix(pb.rank, 8))
        let out = try dw.times(k0s).maxAbs
        XCTAssertLessThan(out, 1e-10 * scale * k0s.maxAbs * Double(pb.f), "ΔW k0 = 0 for k0 ∈ span(K0): max \(out)")
    }

    func testAlphaEditSatisfiesItsNormalEquations() throws {
        // min over ΔP of ‖ΔP P K1 − R‖² + λ‖ΔP P‖² + ‖ΔP P Kp‖², ΔW = ΔP P: setting the gradient to zero,
        // (ΔW (K1K1ᵀ + Cp + λ I) − R K1ᵀ) P = 0.
        let pb = try EditProblem(seed: 14)
        for cp in [nil, pb.cp] as [Matrix64?] {
            let lambda = 10.0
            let dw = try EditSolver.alphaEdit(residual: pb.r, keys: pb.k1, projector: pb.projector,
                                              previousKeys: cp, lambda: lambda)
            var g = try pb.k1.times(pb.k1, transposeOther: true)
            if let cp { g = try g.combined(1, 1, cp) }
            for i in 0..<pb.f { g[i, i] += lambda }
            let rk = try pb.r.times(pb.k1, transposeOther: true)
            let lhs = try (try dw.times(g)).combined(1, -1, rk)
            let res = try lhs.times(pb.projector.projectionMatrix()).maxAbs
            XCTAssertLessThan(res, 1e-10 * rk.maxAbs,
                              "(ΔW (K1K1ᵀ + Cp + λI) − R K1ᵀ) P = 0, Cp \(cp == nil ? "zero" : "set"): max \(res)")
        }
    }

    func testAlphaEditMatchesTheReferenceFormula() throws {
        // Reference: ΔWᵀ = (P G + λ I)⁻¹ P K1 Rᵀ, a general f×f solve; ours works in the r-dim space.
        let pb = try EditProblem(seed: 15)
        let dw = try EditSolver.alphaEdit(residual: pb.r, keys: pb.k1, projector: pb.projector, previousKeys: pb.cp)
        let p = pb.projector.projectionMatrix()
        let g = try (try pb.k1.times(pb.k1, transposeOther: true)).combined(1, 1, pb.cp)
        var a = try p.times(g)
        for i in 0..<pb.f { a[i, i] += 10 }
        let b = try (try p.times(pb.k1)).times(pb.r, transposeOther: true)  // f×d
        let x = try LAPACK.luSolve(a.values, n: pb.f, b.values, nrhs: pb.d)
        let ref = try Matrix64(rows: pb.f, cols: pb.d, values: x).transposed
        let diff = maxDiff64(dw.values, ref.values)
        XCTAssertLessThan(diff, 1e-10 * ref.maxAbs, "R K1ᵀ Û (ÛᵀGÛ + λI)⁻¹ Ûᵀ = R K1ᵀ P (GP + λI)⁻¹: max diff \(diff)")
    }

    /// AlphaEdit with a penalty on the preserved keys inside the kept directions (kept_c0_weight w): the
    /// diagonal shortcut (ÛᵀC0Û = the kept eigenvalues) equals the general solve of (P (G + w C0) + λ I) Xᵀ
    /// = P K1 Rᵀ, the update stays in the kept directions, w = 0 is the paper's AlphaEdit, and a larger w
    /// changes the preserved keys less: tr(ΔW C0 ΔWᵀ) falls.
    func testAlphaEditWithKeptC0PenaltyMatchesTheGeneralSolve() throws {
        var rng = EditMathRNG(seed: 31)
        let f = 20, d = 6, u = 4
        let k0 = rng.matrix(f, 60)
        let c0 = try k0.times(k0, transposeOther: true).scaled(1.0 / 60)   // full rank: no true null space
        let median = try NullSpaceProjector(c0: c0, threshold: 1e9, layer: 0).eigenvalues[f / 2]
        let proj = try NullSpaceProjector(c0: c0, threshold: median, layer: 0)
        XCTAssertEqual(proj.keptDimension, f / 2)
        XCTAssertGreaterThan(proj.keptTraceShare, 0.05, "the kept directions carry part of C0's trace")
        let k1 = rng.matrix(f, u), r = rng.matrix(d, u, scale: 3), kp = rng.matrix(f, 3)
        let cp = try kp.times(kp, transposeOther: true)
        let p = proj.projectionMatrix()
        func preservedChange(_ dw: Matrix64) throws -> Double {
            let m = try (try dw.times(c0)).times(dw, transposeOther: true)
            return (0..<d).reduce(0.0) { $0 + m[$1, $1] }
        }
        var last = Double.infinity
        for w in [0.0, 50, 2000] {
            let dw = try EditSolver.alphaEdit(residual: r, keys: k1, projector: proj, previousKeys: cp, keptC0Weight: w)
            let g = try (try (try k1.times(k1, transposeOther: true)).combined(1, 1, cp)).combined(1, w, c0)
            var a = try p.times(g)
            for i in 0..<f { a[i, i] += EditSolver.defaultLambda }
            let b = try (try p.times(k1)).times(r, transposeOther: true)
            let ref = try Matrix64(rows: f, cols: d, values: try LAPACK.luSolve(a.values, n: f, b.values, nrhs: d)).transposed
            XCTAssertLessThan(maxDiff64(dw.values, ref.values), 1e-9 * ref.maxAbs, "w \(w): diagonal shortcut = general solve")
            let outside = try dw.combined(1, -1, try dw.times(p)).maxAbs
            XCTAssertLessThan(outside, 1e-10 * dw.maxAbs, "w \(w): ΔW (I − P) = 0")
            let change = try preservedChange(dw)
            XCTAssertLessThan(change, last, "w \(w): tr(ΔW C0 ΔWᵀ) falls as w grows")
            last = change
        }
        XCTAssertEqual(try EditSolver.alphaEdit(residual: r, keys: k1, projector: proj, previousKeys: cp, keptC0Weight: 0),
                       try EditSolver.alphaEdit(residual: r, keys: k1, projector: proj, previousKeys: cp), "w = 0 is the paper's AlphaEdit")
        XCTAssertThrowsError(try EditSolver.alphaEdit(residual: r, keys: k1, basis: proj.basis, keptPenalty: [1, 2])) { error in
            guard case .shapeMismatch? = error as? LinearAlgebraError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try EditSolver.alphaEdit(residual: r, keys: k1, basis: proj.basis,
                                                      keptPenalty: [Double](repeating: -1, count: proj.keptDimension)))
    }

    func testMemitSatisfiesItsNormalEquation() throws {
        var rng = EditMathRNG(seed: 16)
        let f = 20, d = 6, u = 4
        let k0 = rng.matrix(f, 60)
        let c0 = try k0.times(k0, transposeOther: true).scaled(1.0 / 60)
        let k1 = rng.matrix(f, u), r = rng.matrix(d, u), kp = rng.matrix(f, 3)
        let cp = try kp.times(kp, transposeOther: true)
        let lambdaM = 15000.0
        let dw = try EditSolver.memit(residual: r, keys: k1, c0: c0, previousKeys: cp, lambdaM: lambdaM)
        let a = try (try c0.combined(lambdaM, 1, cp)).combined(1, 1, try k1.times(k1, transposeOther: true))
        let rk = try r.times(k1, transposeOther: true)
        let res = try (try dw.times(a)).combined(1, -1, rk).maxAbs
        XCTAssertLessThan(res, 1e-10 * rk.maxAbs, "ΔW (λm C0 + Cp + K1K1ᵀ) = R K1ᵀ: max residual \(res)")
    }

    func testMemitWithSingularMatrixIsTypedError() throws {
        // A corrupted (negative semidefinite) C0 makes λm C0 + K1K1ᵀ indefinite → Cholesky breaks down.
        let pb = try EditProblem(seed: 17)
        var rng = EditMathRNG(seed: 18)
        let k1 = rng.matrix(pb.f, 1), r = rng.matrix(pb.d, 1)
        let bad = try pb.c0.combined(-1, 0, pb.c0)
        XCTAssertThrowsError(try EditSolver.memit(residual: r, keys: k1, c0: bad)) { error in
            guard case .notPositiveDefinite(order: pb.f, info: _)? = error as? LinearAlgebraError else {
                return XCTFail("expected notPositiveDefinite, got \(error)")
            }
        }
        XCTAssertThrowsError(try EditSolver.alphaEdit(residual: r, keys: pb.k0, basis: pb.projector.basis)) { error in
            guard case .shapeMismatch? = error as? LinearAlgebraError else { return XCTFail("\(error)") }
        }
    }

    func testSequentialStateAccumulatesResetsAndRoundTrips() throws {
        var rng = EditMathRNG(seed: 19)
        let f = 10
        var state = try SequentialState(layers: [3, 4], f: f)
        XCTAssertNil(try state.previousKeys(layer: 3), "Cp starts at zero")
        let ka = rng.matrix(f, 3), kb = rng.matrix(f, 5)
        try state.add(layer: 3, keys: ka)
        try state.add(layer: 3, keys: kb)
        let want = try (try ka.times(ka, transposeOther: true)).combined(1, 1, try kb.times(kb, transposeOther: true))
        let cp = try XCTUnwrap(try state.previousKeys(layer: 3))
        let diff = maxDiff64(cp.values, want.values)
        XCTAssertLessThan(diff, 1e-13, "Cp = Ka Kaᵀ + Kb Kbᵀ: max diff \(diff)")
        XCTAssertEqual(cp, cp.transposed, "Cp exactly symmetric")
        XCTAssertEqual(state.keyCounts, [8, 0])
        XCTAssertNil(try state.previousKeys(layer: 4))

        let back = try SequentialState.read(bytes: state.serialized())
        XCTAssertEqual(back, state, "SequentialState artifact round-trips exactly")
        var bytes = state.serialized()
        bytes[bytes.count / 2] ^= 0x01
        XCTAssertThrowsError(try SequentialState.read(bytes: bytes)) { error in
            guard case .checksumMismatch? = error as? ArtifactError else { return XCTFail("\(error)") }
        }
        state.reset()
        XCTAssertNil(try state.previousKeys(layer: 3), "reset: Cp = 0")
        XCTAssertThrowsError(try state.add(layer: 9, keys: ka)) { error in
            XCTAssertEqual(error as? KeyStatisticsError, .unknownLayer(9, known: [3, 4]))
        }
    }

    /// Cp is kept packed (its upper triangle) and made full a layer at a time: the sums are those of the full
    /// matrix that dsyrk updated in place before (the same bits), and the file bytes are unchanged.
    func testPackedCpEqualsTheFullMatrixBitForBit() throws {
        var rng = EditMathRNG(seed: 23)
        let f = 37
        var state = try SequentialState(layers: [2], f: f)
        var c = [Double](repeating: 0, count: f * f)
        for u in [4, 9, 1] {
            let k = rng.matrix(f, u)
            try state.add(layer: 2, keys: k)
            let kt = k.transposed
            kt.values.withUnsafeBufferPointer { a in
                c.withUnsafeMutableBufferPointer { cb in
                    BLAS.dsyrkUpperAtA(n: f, k: u, a: a.baseAddress!, lda: f, beta: 1, c: cb.baseAddress!, ldc: f)
                }
            }
        }
        for i in 0..<f { for j in 0..<i { c[i * f + j] = c[j * f + i] } }
        let full = try Matrix64(rows: f, cols: f, values: c)
        XCTAssertEqual(try state.previousKeys(layer: 2), full, "bit for bit")
        XCTAssertEqual(try SequentialState.read(bytes: state.serialized()), state)
        var upper: [UInt8] = []
        for i in 0..<f { for j in i..<f { withUnsafeBytes(of: full[i, j].bitPattern.littleEndian) { upper += $0 } } }
        // header 24, f and the layer count 16, one layer's index and key count 16, then the triangle.
        XCTAssertEqual(Array(state.serialized()[56..<(56 + 8 * f * (f + 1) / 2)]), upper, "the file holds the upper triangle, row by row")
        XCTAssertEqual(state.relativeDifference(to: state), 0)
        var other = state
        try other.add(layer: 2, keys: rng.matrix(f, 1))
        XCTAssertNil(state.relativeDifference(to: other), "different key counts")
    }
}
