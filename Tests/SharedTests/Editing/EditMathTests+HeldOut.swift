// The figures `bench nullspace` gives over every token's key (README "K₀ size"): the RMS change
// √(tr(ΔW C ΔWᵀ)), and the energy of held-out keys along C₀'s eigenvectors, against direct sums over keys.
import Foundation
import Shared
import XCTest

extension EditMathTests {
    private func statistics(_ keys: [Float], n: Int, f: Int) throws -> KeyStatistics {
        var s = try KeyStatistics(layers: [0], f: f)
        try keys.withUnsafeBufferPointer { try s.accumulate(layer: 0, keys: $0.baseAddress!, count: n) }
        return s
    }

    func testQuadraticTraceIsTheMeanSquaredResponseOverKeys() throws {
        var rng = EditMathRNG(seed: 91)
        let d = 5, f = 12, n = 300
        let keys = rng.floats(n * f), a = rng.floats(d * f)
        let c = try statistics(keys, n: n, f: f).mean(layer: 0)
        var direct = 0.0
        for t in 0..<n {
            for r in 0..<d {
                var y = 0.0
                for j in 0..<f { y += Double(a[r * f + j]) * Double(keys[t * f + j]) }
                direct += y * y
            }
        }
        direct /= Double(n)
        let q = try NullSpaceBenchmark.quadraticTrace(a, d: d, f: f, c)
        XCTAssertEqual(q, direct, accuracy: 1e-10 * direct)
    }

    func testHeldOutEnergiesAlongC0EigenvectorsGiveTheKeptShare() throws {
        var rng = EditMathRNG(seed: 92)
        let f = 10, n = 200
        // K₀ keys squeezed along the last 4 coordinates (a small-eigenvalue subspace); held-out keys not.
        var k0 = rng.floats(n * f)
        for t in 0..<n { for j in 6..<f { k0[t * f + j] *= 0.01 } }
        let held = rng.floats(n * f)
        let c0 = try statistics(k0, n: n, f: f).mean(layer: 0), ch = try statistics(held, n: n, f: f).mean(layer: 0)
        let eigen = try C0Eigen(c0: c0, layer: 0)

        // C₀'s own energies are its eigenvalues.
        let own = try NullSpaceBenchmark.directionEnergies(c: c0, eigen: eigen)
        for (e, l) in zip(own, eigen.values) { XCTAssertEqual(e, l, accuracy: 1e-12) }

        // The held-out energies sum to tr C_h, and a prefix is tr(Ûᵀ C_h Û) for the projector keeping it.
        let e = try NullSpaceBenchmark.directionEnergies(c: ch, eigen: eigen)
        let trace = (0..<f).reduce(0.0) { $0 + ch[$1, $1] }
        XCTAssertEqual(e.reduce(0, +), trace, accuracy: 1e-12 * trace)
        let p = try NullSpaceProjector(eigen: eigen, rule: .absolute(1e-3))
        XCTAssertEqual(p.keptDimension, 4)
        let u = p.basis
        let kept = try u.times(try ch.times(u), transposeSelf: true)
        let direct = (0..<u.cols).reduce(0.0) { $0 + kept[$1, $1] }
        XCTAssertEqual(e.prefix(p.keptDimension).reduce(0, +), direct, accuracy: 1e-12 * trace)
        // The squeezed directions hold ≈ 0.01 % of K₀'s energy but ≈ 4/10 of the held-out keys'.
        XCTAssertLessThan(p.keptTraceShare, 1e-3)
        XCTAssertGreaterThan(direct / trace, 0.25)
    }

    func testRoomCountsTheDirectionsHoldingAShareOfTheTrace() throws {
        // Eigenvalues 0.5, 1.5, 2, 96 (trace 100): 1 % of the trace holds the first direction, 2 % the first
        // two, 4 % the first three, 0.4 % none; the largest holds 96 %.
        let values: [Double] = [0.5, 1.5, 2, 96]
        let eigen = try C0Eigen(c0: try Matrix64(rows: 4, cols: 4, values: (0..<16).map { $0 % 5 == 0 ? values[$0 / 5] : 0 }), layer: 0)
        let p = try NullSpaceProjector(eigen: eigen, rule: .absolute(2e-2))
        XCTAssertEqual(p.room(traceShare: 1e-2), 0.25)
        XCTAssertEqual(p.room(traceShare: 2e-2), 0.5)
        XCTAssertEqual(p.room(traceShare: 4e-2), 0.75)
        XCTAssertEqual(p.room(traceShare: 4e-3), 0)
        XCTAssertEqual(p.largestShare, 0.96, accuracy: 1e-12)
    }
}
