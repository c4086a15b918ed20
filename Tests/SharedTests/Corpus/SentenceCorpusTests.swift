// The K₀ corpus reader: JSON lines and plain text, offsets and limits, and the files it refuses by line.
import Foundation
import Shared
import XCTest

final class SentenceCorpusTests: XCTestCase {
    func testLinesOffsetsAndRefusals() throws {
        let dir = NSTemporaryDirectory() + "corpus-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let jsonl = dir + "/c.jsonl", text = dir + "/c.txt"
        try "{\"sentence\": \"One.\"}\n\n{\"sentence\": \"Two é.\"}\n{\"sentence\": \"Three.\"}\n".write(toFile: jsonl, atomically: true, encoding: .utf8)
        try "One.\nTwo é.\n\nThree.".write(toFile: text, atomically: true, encoding: .utf8)
        for p in [jsonl, text] {
            XCTAssertEqual(try SentenceCorpus.read(path: p), ["One.", "Two é.", "Three."], p)
            XCTAssertEqual(try SentenceCorpus.read(path: p, offset: 1, limit: 1), ["Two é."], p)
        }
        try "{\"sentence\": \"One.\"}\n{\"text\": \"x\"}\n".write(toFile: jsonl, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SentenceCorpus.read(path: jsonl)) { XCTAssertEqual("\($0)", "corpus \(jsonl) line 2: missing or empty \"sentence\"") }
        // A binary file given as plain text (here a GGUF header and invalid UTF-8) is refused at its first bad line.
        try Data("Fine.\nGGUF\u{0}\u{3}\u{0}\n".utf8).write(to: URL(fileURLWithPath: text))
        XCTAssertThrowsError(try SentenceCorpus.read(path: text)) { XCTAssertTrue("\($0)".hasPrefix("corpus \(text) line 2: not UTF-8 text"), "\($0)") }
        try Data([0x46, 0x0A, 0xC3, 0x28, 0x0A]).write(to: URL(fileURLWithPath: text))
        XCTAssertThrowsError(try SentenceCorpus.read(path: text)) { XCTAssertTrue("\($0)".hasPrefix("corpus \(text) line 2: not UTF-8 text"), "\($0)") }
        XCTAssertEqual(try SentenceCorpus.read(path: text, limit: 1), ["F"], "the scan stops at the last line wanted")
        XCTAssertThrowsError(try SentenceCorpus.read(path: dir + "/missing")) { XCTAssertEqual("\($0)", "cannot read corpus \(dir)/missing: No such file or directory") }
    }
}
