// Key statistics (docs/algorithm.md §1), the artifacts, and the projector on the reference's real C0.
import Foundation
import Shared
import XCTest

extension EditMathTests {
    /// `count` float32 keys of dimension f, row-major, scaled like real MLP keys (|k_i| ≲ 0.5).
    private func keys(_ count: Int, f: Int, seed: UInt64) -> [Float] {
        var rng = EditMathRNG(seed: seed)
        return (0..<(count * f)).map { _ in Float(rng.uniform() * 0.5) }
    }

    private func accumulate(_ s: inout KeyStatistics, layer: Int, _ k: [Float], rows: Range<Int>, f: Int) throws {
        try k.withUnsafeBufferPointer { p in
            try s.accumulate(layer: layer, keys: p.baseAddress! + rows.lowerBound * f, count: rows.count)
        }
    }

    func testKeyStatisticsMergeIsOrderAndSplitIndependent() throws {
        let f = 24, n = 1300  // n > blockRows: the blocked conversion is exercised
        let k = keys(n, f: f, seed: 21)
        var whole = try KeyStatistics(layers: [3, 7], f: f)
        try accumulate(&whole, layer: 3, k, rows: 0..<n, f: f)

        var a = try KeyStatistics(layers: [3, 7], f: f), b = a, c = a
        try accumulate(&a, layer: 3, k, rows: 0..<1, f: f)
        try accumulate(&a, layer: 3, k, rows: 1..<601, f: f)
        try accumulate(&b, layer: 3, k, rows: 601..<1000, f: f)
        try accumulate(&c, layer: 3, k, rows: 1000..<n, f: f)
        let orders = [try a + b + c, try c + a + b, try b + (c + a)]

        // Naive S = Σ k kᵀ in float64.
        var naive = [Double](repeating: 0, count: f * f)
        for t in 0..<n { for i in 0..<f { for j in 0..<f { naive[i * f + j] += Double(k[t * f + i]) * Double(k[t * f + j]) } } }
        let scale = naive.map(abs).max() ?? 1
        let s = try whole.sum(layer: 3)
        let dn = maxDiff64(s.values, naive)
        XCTAssertLessThan(dn, 1e-12 * scale, "S = Σ k kᵀ (dsyrk, blocked) vs naive: max diff \(dn)")
        for (i, merged) in orders.enumerated() {
            XCTAssertEqual(try merged.count(layer: 3), n)
            let d = maxDiff64(try merged.sum(layer: 3).values, s.values)
            XCTAssertLessThan(d, 1e-12 * scale, "merged partials (order \(i)) = one accumulation: max diff \(d)")
        }
        let mean = try whole.mean(layer: 3)
        let dm = maxDiff64(mean.values, naive.map { $0 / Double(n) })
        XCTAssertLessThan(dm, 1e-12 * scale / Double(n), "C0 = S / n: max diff \(dm)")
        XCTAssertEqual(mean, mean.transposed, "C0 exactly symmetric")

        XCTAssertThrowsError(try whole.mean(layer: 7)) { error in
            XCTAssertEqual(error as? KeyStatisticsError, .noTokens(layer: 7))
        }
        XCTAssertThrowsError(try whole + KeyStatistics(layers: [3], f: f)) { error in
            guard case .mismatched? = error as? KeyStatisticsError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try accumulate(&whole, layer: 5, k, rows: 0..<1, f: f)) { error in
            XCTAssertEqual("\(error)", "layer 5 is not one of the statistics' layers [3, 7]")
        }
    }

    func testKeyStatisticsArtifactRoundTripsAndRejectsCorruption() throws {
        let f = 16
        var stats = try KeyStatistics(layers: [3, 4, 5], f: f, provenance: "test corpus, seed 22")
        let k = keys(50, f: f, seed: 22)
        try accumulate(&stats, layer: 3, k, rows: 0..<50, f: f)
        try accumulate(&stats, layer: 5, k, rows: 10..<30, f: f)

        let path = NSTemporaryDirectory() + "keystats-\(getpid()).aeks"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try stats.write(to: path)
        let back = try KeyStatistics.read(from: path)
        XCTAssertEqual(back.layers, stats.layers)
        XCTAssertEqual(back.counts, [50, 0, 20])
        XCTAssertEqual(back.provenance, stats.provenance)
        for l in stats.layers {
            XCTAssertEqual(try back.sum(layer: l), try stats.sum(layer: l), "S of layer \(l) round-trips bit for bit")
        }

        let good = stats.serialized()
        XCTAssertEqual(good, try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))), "file = serialized()")
        XCTAssertEqual(good.count, 24 + stats.artifactBodyBytes! + 8, "the body's size is known before writing")
        let copy = stats
        XCTAssertEqual(copy.serializedReleasingSums(), good, "a worker's serialization (sums released layer by layer) = serialized()")
        XCTAssertEqual(try stats.sum(layer: 3), try back.sum(layer: 3), "releasing a copy's sums leaves the original's")
        for position in [40, good.count / 2, good.count - 9] {  // a count, the payload, the last payload byte
            var bad = good
            bad[position] ^= 0x10
            XCTAssertThrowsError(try KeyStatistics.read(bytes: bad)) { error in
                guard case .checksumMismatch? = error as? ArtifactError else {
                    return XCTFail("flipped byte \(position): expected checksumMismatch, got \(error)")
                }
            }
        }
        XCTAssertThrowsError(try KeyStatistics.read(bytes: Array(good.dropLast(100)))) { error in
            XCTAssertEqual(error as? ArtifactError,
                           .truncated(path: "<memory>", expectedBytes: good.count, actualBytes: good.count - 100))
            XCTAssertEqual("\(error)", "<memory>: truncated, \(good.count - 100) of \(good.count) bytes")
        }
        XCTAssertThrowsError(try KeyStatistics.read(bytes: Array(good.prefix(5)))) { error in
            guard case .badMagic? = error as? ArtifactError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try KeyStatistics.read(bytes: good + [0])) { error in
            guard case .trailingBytes? = error as? ArtifactError else { return XCTFail("\(error)") }
        }
        var other = good
        other[0] = UInt8(ascii: "X")
        XCTAssertThrowsError(try KeyStatistics.read(bytes: other)) { error in
            XCTAssertEqual("\(error)", "<memory>: not a AEKSTATS file (magic XEKSTATS)")
        }
        var newer = good
        newer[8] = 2
        XCTAssertThrowsError(try KeyStatistics.read(bytes: newer)) { error in
            XCTAssertEqual(error as? ArtifactError, .unsupportedVersion(path: "<memory>", found: 2, supported: 1))
        }
        XCTAssertThrowsError(try NullSpaceProjectorSet.read(bytes: good)) { error in
            guard case .badMagic? = error as? ArtifactError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try KeyStatistics.read(from: path + ".missing")) { error in
            guard case .io? = error as? ArtifactError else { return XCTFail("\(error)") }
        }
    }

    func testProjectorSetFromStatisticsRoundTrips() throws {
        let f = 12
        var stats = try KeyStatistics(layers: [3, 4], f: f, provenance: "p")
        let k = keys(40, f: f, seed: 23)
        try accumulate(&stats, layer: 3, k, rows: 0..<40, f: f)
        try accumulate(&stats, layer: 4, k, rows: 0..<5, f: f)  // rank 5: null space of dimension ≥ 7
        let set = try NullSpaceProjectorSet(statistics: stats, threshold: 2e-2)
        XCTAssertEqual(set.layers, [3, 4])
        let copy = stats
        XCTAssertEqual(try NullSpaceProjectorSet(statistics: consume copy, rule: .absolute(2e-2)), set,
                       "statistics handed over (their sums freed layer by layer) give the same projectors")
        XCTAssertEqual(try stats.count(layer: 4), 5)
        XCTAssertNoThrow(try stats.sum(layer: 3), "the original keeps its sums")
        // Parts of disjoint layers join into the statistics of all of them.
        var low = try KeyStatistics(layers: [3], f: f, provenance: "p"), high = try KeyStatistics(layers: [4], f: f, provenance: "p")
        try accumulate(&low, layer: 3, k, rows: 0..<40, f: f)
        try accumulate(&high, layer: 4, k, rows: 0..<5, f: f)
        let joined = try KeyStatistics.joined([low, high], provenance: "p")
        XCTAssertEqual(joined.serialized(), stats.serialized(), "joined = built together, byte for byte")
        XCTAssertThrowsError(try KeyStatistics.joined([low, low], provenance: "p"), "a layer twice")
        XCTAssertThrowsError(try KeyStatistics.joined([low, try KeyStatistics(layers: [5], f: f + 1)], provenance: "p"), "f differs")
        XCTAssertGreaterThanOrEqual(try set.projector(layer: 4).keptDimension, 7)
        let back = try NullSpaceProjectorSet.read(bytes: set.serialized())
        XCTAssertEqual(back, set, "projector artifact round-trips exactly")
        var bad = set.serialized()
        bad[bad.count - 20] ^= 0x80
        XCTAssertThrowsError(try NullSpaceProjectorSet.read(bytes: bad)) { error in
            guard case .checksumMismatch? = error as? ArtifactError else { return XCTFail("\(error)") }
        }
    }

    /// The projector's thresholding on the reference's real C0 (fixtures/alphaedit/c_cov500_layer3.*).
    func testEigenSummaryOfReferenceCovariance() throws {
        let npy = try NPY.read(path: try RepoPaths.sharedFile("fixtures/alphaedit/c_cov500_layer3.npy").path)
        XCTAssertEqual(npy.shape, [1536, 1536])
        let json = try JSONSerialization.jsonObject(
            with: Data(contentsOf: try RepoPaths.sharedFile("fixtures/alphaedit/c_cov500_layer3.json")))
        let ref = try XCTUnwrap(json as? [String: Any])
        let top10 = try XCTUnwrap(ref["top10_eigenvalues"] as? [Double])
        let trace = try XCTUnwrap(ref["trace"] as? Double)
        let below1 = try XCTUnwrap(ref["n_eig_lt_1e-2"] as? Int), below2 = try XCTUnwrap(ref["n_eig_lt_2e-2"] as? Int)

        // The float32 dump is symmetric only up to float32 rounding; dsyevd reads the upper triangle.
        let c0 = try Matrix64(rows: 1536, cols: 1536, values: npy.values)
        let p = try NullSpaceProjector(c0: c0, threshold: 2e-2, layer: 3)
        let top = Array(p.eigenvalues.reversed().prefix(10))
        let rel = zip(top, top10).map { abs($0 - $1) / abs($1) }.max() ?? 0
        XCTAssertLessThan(rel, 1e-4, "top-10 eigenvalues of C0 vs reference: max rel diff \(rel)")
        let tr = abs(p.spectrum.trace - trace) / trace
        XCTAssertLessThan(tr, 1e-4, "tr C0 = Σλ vs reference: rel diff \(tr)")
        XCTAssertLessThanOrEqual(abs(p.count(below: 1e-2) - below1), 3, "#λ < 1e-2: \(p.count(below: 1e-2)) vs \(below1)")
        XCTAssertLessThanOrEqual(abs(p.keptDimension - below2), 3, "r = #λ < 2e-2: \(p.keptDimension) vs \(below2)")
        print("c_cov500_layer3: r = \(p.keptDimension) of 1536 (\(p.keptFraction)), #λ<1e-2 = \(p.count(below: 1e-2)), \(p.spectrum)")
    }

    /// The relative threshold: τ_l = ρ · λ_max of each layer, so the same ρ keeps the same directions of
    /// a layer whatever its scale, where one absolute τ keeps all of one layer and none of another.
    func testRelativeNullSpaceThresholdScalesWithTheLayer() throws {
        // A rotated diagonal: eigenvalues 1e-5 … 1e1 (one per decade), at two scales (×1 and ×1000).
        let f = 7, eig: [Double] = (0..<f).map { pow(10, Double($0) - 5) }
        var q = Matrix64(zeros: f, f)  // an orthogonal Q from a Householder reflection
        let v: [Double] = (0..<f).map { Double($0 + 1) }, vv = v.reduce(0) { $0 + $1 * $1 }
        for i in 0..<f { for j in 0..<f { q[i, j] = (i == j ? 1 : 0) - 2 * v[i] * v[j] / vv } }
        func c0(_ scale: Double) -> Matrix64 {
            var c = Matrix64(zeros: f, f)
            for i in 0..<f { for j in 0..<f { c[i, j] = (0..<f).reduce(0.0) { $0 + q[i, $1] * scale * eig[$1] * q[j, $1] } } }
            return c
        }
        for scale in [1.0, 1000.0] {
            let p = try NullSpaceProjector(c0: c0(scale), relative: 5e-4, layer: 0)
            XCTAssertEqual(p.threshold, 5e-4 * 10 * scale, accuracy: 1e-9 * scale, "τ = ρ λ_max")
            XCTAssertEqual(p.keptDimension, 3, "λ/λ_max = 1e-6, 1e-5, 1e-4 are below 5e-4 at scale \(scale)")
            let share = (1e-5 + 1e-4 + 1e-3) / eig.reduce(0, +)
            XCTAssertEqual(p.keptTraceShare, share, accuracy: 1e-9, "the kept directions' share of C0's trace")
            // The stored projector is an ordinary absolute-τ one: it reassembles from its parts.
            XCTAssertEqual(try NullSpaceProjector(layer: 0, threshold: p.threshold, eigenvalues: p.eigenvalues, basis: p.basis), p)
            let absolute = try NullSpaceProjector(c0: c0(scale), threshold: 2e-2, layer: 0)
            XCTAssertEqual(absolute.keptDimension, scale == 1 ? 4 : 1, "the absolute τ keeps a different share at each scale")
            // A sweep decomposes C0 once: each τ or ρ from that decomposition gives the same projector.
            let eigen = try C0Eigen(c0: c0(scale), layer: 0)
            XCTAssertEqual(try NullSpaceProjector(eigen: eigen, threshold: 2e-2), absolute)
            XCTAssertEqual(try NullSpaceProjector(eigen: eigen, relative: 5e-4), p)
        }
        // Through the hyperparameters and the config, and refused out of (0, 1).
        var hp = EditHyperparameters()
        hp.nullSpaceRelative = 1e-3
        let c = try ClusterConfig.parse("null_space_relative = 1e-3\n")
        XCTAssertEqual(c.hyperparameters.nullSpaceRelative, 1e-3)
        XCTAssertThrowsError(try ClusterConfig.parse("null_space_relative = 2\n")) {
            XCTAssertEqual("\($0)", #"config line 1: null_space_relative = "2" is invalid (expected a number in (0, 1))"#)
        }
        XCTAssertThrowsError(try NullSpaceProjector(c0: c0(1), relative: .nan, layer: 0))
        // A resume with another rule is refused, naming the field.
        let settings = { (h: EditHyperparameters) in
            CampaignSettings(method: .alphaedit, model: "m", modelChecksum: "0", facts: "f", factsChecksum: "0", requestCount: 1, batchSize: 1,
                             hyperparameters: h, templateSeed: 0, corpus: "c", covSentences: 1)
        }
        XCTAssertEqual(settings(EditHyperparameters()).differences(from: settings(hp)).map(\.key), ["hyperparameters.nullSpaceRelative"])
    }

    /// The trace-share rule: the most smallest-eigenvalue directions whose eigenvalues sum to at most
    /// s · tr(C0), whatever the scale; one more would exceed it. Through the hyperparameters, the config
    /// (it overrides τ and ρ) and a resume (another share is a difference).
    func testTraceShareNullSpaceKeepsAtMostThatShareOfTheTrace() throws {
        // Cumulative shares of the trace 64.2071: 1.6e-6, 3.3e-5, 1.1e-4, 3.2e-3, 1.9e-2, 6.6e-2, 0.22, 1.
        let eig: [Double] = [1e-4, 2e-3, 5e-3, 0.2, 1, 3, 10, 50]
        let total = eig.reduce(0, +)
        for scale in [1.0, 1e-3, 1e3] {
            let values = eig.map { $0 * scale }
            for (share, kept) in [(1e-6, 0), (2e-6, 1), (1e-4, 2), (4e-3, 4), (2e-2, 5), (0.5, 7), (0.999, 7)] {
                let tau = NullSpaceRule.traceShare(share).threshold(ascending: values)
                let r = values.prefix { $0 < tau }.count
                XCTAssertEqual(r, kept, "share \(share), scale \(scale)")
                let keptSum = values.prefix(r).reduce(0, +)
                XCTAssertLessThanOrEqual(keptSum, share * total * scale * (1 + 1e-12))
                if r < values.count { XCTAssertGreaterThan(keptSum + values[r], share * total * scale, "one more would exceed it") }
            }
        }
        XCTAssertGreaterThan(NullSpaceRule.traceShare(1).threshold(ascending: eig), 50, "all fit: τ above the largest")
        XCTAssertEqual(NullSpaceRule.relative(1e-2).threshold(ascending: eig), 0.5)
        XCTAssertEqual(NullSpaceRule.absolute(2e-2).threshold(ascending: eig), 2e-2)
        XCTAssertEqual(NullSpaceRule.traceShare(1e-3).description, "trace 0.001")

        // A projector from the rule reassembles as an ordinary absolute-τ one.
        var c = Matrix64(zeros: eig.count, eig.count)
        for i in eig.indices { c[i, i] = eig[i] }
        let p = try NullSpaceProjector(eigen: try C0Eigen(c0: c, layer: 2), rule: .traceShare(4e-3))
        XCTAssertEqual(p.keptDimension, 4)
        XCTAssertEqual(p.keptTraceShare, (1e-4 + 2e-3 + 5e-3 + 0.2) / total, accuracy: 1e-12)
        XCTAssertEqual(try NullSpaceProjector(layer: 2, threshold: p.threshold, eigenvalues: p.eigenvalues, basis: p.basis), p)

        var hp = EditHyperparameters()
        hp.nullSpaceRelative = 1e-3
        hp.nullSpaceTraceShare = 1e-3
        XCTAssertEqual(hp.nullSpaceRule, .traceShare(1e-3), "the trace share overrides ρ and τ")
        let cfg = try ClusterConfig.parse("null_space_trace = 1e-3\n")
        XCTAssertEqual(cfg.hyperparameters.nullSpaceRule, .traceShare(1e-3))
        XCTAssertThrowsError(try ClusterConfig.parse("null_space_trace = 1\n"))
        XCTAssertThrowsError(try NullSpaceProjector(eigen: try C0Eigen(c0: c, layer: 2), rule: .traceShare(.nan)))
        let settings = { (h: EditHyperparameters) in
            CampaignSettings(method: .alphaedit, model: "m", modelChecksum: "0", facts: "f", factsChecksum: "0", requestCount: 1, batchSize: 1,
                             hyperparameters: h, templateSeed: 0, corpus: "c", covSentences: 1)
        }
        var other = hp
        other.nullSpaceTraceShare = 2e-3
        XCTAssertEqual(settings(hp).differences(from: settings(other)).map(\.key), ["hyperparameters.nullSpaceTraceShare"])
        // A campaign recorded before the field existed reads as without it.
        let old = try JSONDecoder().decode(EditHyperparameters.self, from: try JSONEncoder().encode(EditHyperparameters()))
        XCTAssertNil(old.nullSpaceTraceShare)
    }

    func testNPYReaderReadsFloat32AndRejectsBadFiles() throws {
        func npy(_ header: String, _ payload: [Float]) -> [UInt8] {
            var h = Array(header.utf8)
            while (10 + h.count + 1) % 64 != 0 { h.append(UInt8(ascii: " ")) }
            h.append(UInt8(ascii: "\n"))
            var b: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.count & 0xff), UInt8(h.count >> 8)] + h
            for v in payload { withUnsafeBytes(of: v.bitPattern.littleEndian) { b += $0 } }
            return b
        }
        let path = NSTemporaryDirectory() + "editmath-\(getpid()).npy"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let good = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", [1, 2, 3, 4, 5, -0.5])
        try Data(good).write(to: URL(fileURLWithPath: path))
        let a = try NPY.read(path: path)
        XCTAssertEqual(a.shape, [2, 3])
        XCTAssertEqual(a.values, [1, 2, 3, 4, 5, -0.5])

        try Data(good.dropLast(4)).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try NPY.read(path: path)) { error in
            guard case .truncated? = error as? NPYError else { return XCTFail("\(error)") }
        }
        try Data(npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", [0, 0])).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try NPY.read(path: path)) { error in
            XCTAssertEqual(error as? NPYError, .unsupported(path: path, what: "dtype <i8"))
        }
        try Data(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", [0])).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try NPY.read(path: path)) { error in
            XCTAssertEqual(error as? NPYError, .unsupported(path: path, what: "Fortran order"))
        }
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try NPY.read(path: path)) { error in
            XCTAssertEqual(error as? NPYError, .badMagic(path: path))
        }
    }

    /// Our float32 writer: the header numpy writes for these shapes (so `np.load` reads it), data on a
    /// 64-byte boundary, values back bit for bit through our reader, 1-D shapes as "(n,)".
    func testNPYWriterRoundTripsFloat32() throws {
        let path = NSTemporaryDirectory() + "npywrite-\(getpid()).npy"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let values: [Float] = [1, -2.5, .leastNonzeroMagnitude, 3e38, -0.0, 7]
        try values.withUnsafeBufferPointer { try NPY.writeFloat32(path: path, shape: [3, 2], values: $0) }
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let dataStart = bytes.count - 4 * values.count
        XCTAssertEqual(dataStart % 64, 0)
        XCTAssertEqual(Int(bytes[8]) | Int(bytes[9]) << 8, dataStart - 10)
        let header = String(decoding: bytes[10..<dataStart], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"), header)
        XCTAssertTrue(header.hasSuffix("\n"))
        let back = try NPY.read(path: path)
        XCTAssertEqual(back.shape, [3, 2])
        XCTAssertEqual(back.values.map { Float($0).bitPattern }, values.map(\.bitPattern))
        try values.withUnsafeBufferPointer { try NPY.writeFloat32(path: path, shape: [6], values: $0) }
        let bytes1 = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertTrue(String(decoding: bytes1[10...], as: UTF8.self).contains("'shape': (6,)"))
        XCTAssertEqual(try NPY.read(path: path).shape, [6])
    }
}
