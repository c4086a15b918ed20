// The model checksum workers send at hello is always 16 hex digits (the Qwen2.5 file's hash starts
// with a zero nibble; unpadded, every worker was refused and `edit --model qwen2.5-0.5b` found none).
import Foundation
import Shared
import XCTest

final class ModelChecksumTests: XCTestCase {
    func testChecksumIsSixteenHexDigitsEvenWithLeadingZeros() throws {
        XCTAssertEqual(ModelChecksum.hex(0x0fd1_8d02_cd07_1b43), "0fd18d02cd071b43")
        XCTAssertEqual(ModelChecksum.hex(0), "0000000000000000")
        XCTAssertEqual(ModelChecksum.hex(.max), "ffffffffffffffff")
        let path = TestPaths.temporaryFile("checksum.bin")
        defer { try? FileManager.default.removeItem(atPath: path) }
        for n in 0..<64 {  // some of these hashes have a leading zero nibble
            try Data((0..<n).map { UInt8($0) }).write(to: URL(fileURLWithPath: path))
            let c = try ModelChecksum.of(path: path)
            XCTAssertEqual(c.count, 16, c)
            XCTAssertTrue(c.allSatisfy(\.isHexDigit))
        }
    }
}
