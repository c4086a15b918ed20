// FloatBuffer: small and huge-page buffers (≥ FloatBuffer.hugeBytes, posix_memalign + MADV_HUGEPAGE)
// start zeroed when asked, hold what is written, start on a cache line, and are freed by the allocator
// that made them.
import Shared
import XCTest

final class FloatBufferTests: XCTestCase {
    func testSmallAndHugeBuffers() {
        for count in [0, 1, 1000, FloatBuffer.hugeBytes / 4 - 1, FloatBuffer.hugeBytes / 4, 3 * FloatBuffer.hugeBytes / 4 + 5] {
            for _ in 0..<3 {  // allocate and free repeatedly
                let b = FloatBuffer(count: count)
                XCTAssertEqual(b.count, count)
                XCTAssertTrue((0..<count).allSatisfy { b[$0] == 0 }, "zeroed, \(count) floats")
                for i in stride(from: 0, to: count, by: 997) { b[i] = Float(i) }
                if count > 0 { XCTAssertEqual(b[count - 1], count - 1 == 0 ? 0 : ((count - 1) % 997 == 0 ? Float(count - 1) : 0)) }
                if count * 4 >= FloatBuffer.hugeBytes {
                    XCTAssertEqual(Int(bitPattern: b.ptr) % FloatBuffer.hugeBytes, 0, "2 MB aligned")
                }
                XCTAssertEqual(Int(bitPattern: b.ptr) % FloatBuffer.alignment, 0, "\(count) floats: on a cache line")
                XCTAssertEqual(FloatBuffer([1, 2, 3]).array, [1, 2, 3])
            }
        }
    }
}
