// Sampler's argmax and top-k give the same answers on arrays, slices (indices from the slice's start)
// and collections without contiguous storage (the generic loop).
import Shared
import XCTest

final class SamplerTests: XCTestCase {
    func testArgmaxAndTopKOnEveryKindOfCollection() {
        var rng = SplitMix64(seed: 11)
        let v: [Float] = (0..<5000).map { _ in Float(rng.next() % 100_000) / 1000 }
        let slice = v[1000..<4000]
        let plain = Array(slice)
        let lazy = plain.lazy.map { $0 }  // no contiguous storage
        let want = plain.indices.max { plain[$0] < plain[$1] || (plain[$0] == plain[$1] && $0 > $1) }!
        XCTAssertEqual(Sampler.argmax(plain), want)
        XCTAssertEqual(Sampler.argmax(slice), want)
        XCTAssertEqual(Sampler.argmax(lazy), want)
        let top = Sampler.topK(plain, 7)
        XCTAssertEqual(top.count, 7)
        XCTAssertEqual(top[0], want)
        XCTAssertEqual(top.map { plain[$0] }, top.map { plain[$0] }.sorted(by: >))
        XCTAssertEqual(Sampler.topK(slice, 7), top)
        XCTAssertEqual(Sampler.topK(lazy, 7), top)
        // Ties go to the first index; all -inf gives 0.
        XCTAssertEqual(Sampler.argmax([1, 3, 3, 2] as [Float]), 1)
        XCTAssertEqual(Sampler.argmax([-.infinity, -.infinity] as [Float]), 0)
        XCTAssertEqual(Sampler.argmax(([0, 5, 5] as [Float])[1...]), 0)
    }
}
