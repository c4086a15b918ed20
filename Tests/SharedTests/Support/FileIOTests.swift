// FileIO: whole-file reads and atomic writes that move every byte, in as many system calls as it takes
// (Foundation's Data.write garbled files past 2 GiB on Linux: FileIO.swift).
import Foundation
import Shared
import XCTest

final class FileIOTests: XCTestCase {
    private func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "fileio-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func testSmallChunksMoveEveryByte() throws {
        let path = try tempDir() + "/a.bin"
        var rng = SplitMix64(seed: 5)
        let bytes = (0..<10_007).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        try FileIO.writeAtomically(bytes, to: path, chunk: 97)
        XCTAssertEqual(try FileIO.read(path, chunk: 13), bytes)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".tmp"))
        // A rewrite replaces the whole file, shorter or not.
        try FileIO.writeAtomically(Array(bytes.prefix(10)), to: path, chunk: 3)
        XCTAssertEqual(try FileIO.read(path), Array(bytes.prefix(10)))
    }

    func testFailuresNameThePathAndKeepTheOldFile() throws {
        let dir = try tempDir()
        let missing = dir + "/no/such/dir/x.bin"
        XCTAssertThrowsError(try FileIO.writeAtomically([1, 2, 3], to: missing)) {
            XCTAssertTrue("\($0)".contains(missing), "\($0)")
        }
        XCTAssertThrowsError(try FileIO.read(missing)) { XCTAssertTrue("\($0)".contains("cannot open"), "\($0)") }

        let path = dir + "/keep.bin"
        try FileIO.writeAtomically([7, 7, 7], to: path)
        var w = try AtomicFileWriter(path: path)
        try w.write([1, 2, 3, 4])
        w.abandon()
        XCTAssertEqual(try FileIO.read(path), [7, 7, 7])
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".tmp"))
    }

    /// Output directories (`cov --out`, `eval --out`, a state): made with their parents; a file in the way
    /// is named, where Foundation said "NSCocoaErrorDomain error 512"; the helpers that guard GGUF writes.
    func testDirectoriesAndTheFilesInTheirWay() throws {
        let dir = try tempDir()
        try FileIO.makeDirectory(dir + "/a/b//c/")
        try FileIO.makeDirectory(dir + "/a/b/c")
        XCTAssertTrue(FileIO.isDirectory(dir + "/a/b/c"))
        try FileIO.writeAtomically([1], to: dir + "/file")
        XCTAssertThrowsError(try FileIO.makeDirectory(dir + "/file")) {
            XCTAssertEqual($0 as? FileIOError, FileIOError(path: dir + "/file", reason: "exists and is not a directory"))
        }
        XCTAssertThrowsError(try FileIO.makeDirectory(dir + "/file/sub/x")) {
            XCTAssertEqual($0 as? FileIOError, FileIOError(path: dir + "/file/sub/x", reason: dir + "/file exists and is not a directory"))
        }
        XCTAssertFalse(FileIO.isDirectory(dir + "/file"))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: dir + "/file")
        XCTAssertTrue(FileIO.sameFile(dir + "/link", dir + "/file"))
        XCTAssertFalse(FileIO.sameFile(dir + "/file", dir + "/a"))
        XCTAssertFalse(FileIO.sameFile(dir + "/file", dir + "/missing"))
        XCTAssertEqual(FileIO.prefix(dir + "/file", bytes: 4), [1])
        XCTAssertNil(FileIO.prefix(dir + "/missing", bytes: 4))
    }

    /// A link at PATH.tmp is removed, not followed: the write used to fill its target.
    func testTheTemporaryFileIsNeverALink() throws {
        let dir = try tempDir()
        let victim = dir + "/victim.txt", path = dir + "/out.bin"
        try "precious\n".write(toFile: victim, atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: path + ".tmp", withDestinationPath: victim)
        try FileIO.writeAtomically([1, 2, 3], to: path)
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "precious\n")
        XCTAssertEqual(try FileIO.read(path), [1, 2, 3])
        XCTAssertNil(FileIO.nonRegularKind(path), "a regular file, not the link renamed")
    }

    /// An input file that cannot be read is named with why: the facts, corpus and config errors carry it.
    func testUnreadableInputsSayWhy() throws {
        let dir = try tempDir()
        try Data("x\n".utf8).write(to: URL(fileURLWithPath: dir + "/file"))
        XCTAssertNil(FileIO.whyUnreadable(dir + "/file"))
        XCTAssertEqual(FileIO.whyUnreadable(dir + "/missing"), "No such file or directory")
        XCTAssertEqual(FileIO.whyUnreadable(dir), "a directory, not a file")
        XCTAssertThrowsError(try FactsFile.read(path: dir + "/missing")) {
            XCTAssertEqual("\($0)", "cannot read facts file \(dir)/missing: No such file or directory")
        }
        XCTAssertThrowsError(try SentenceCorpus.read(path: dir)) {
            XCTAssertEqual("\($0)", "cannot read corpus \(dir): a directory, not a file")
        }
        XCTAssertThrowsError(try ClusterConfig.load(path: dir + "/missing")) {
            XCTAssertEqual("\($0)", "cannot read config file \(dir)/missing: No such file or directory")
        }
    }

    /// The size that broke Data.write: past the 0x7ffff000 bytes one Linux write(2) moves.
    func testFilesPast2GiBComeBackWhole() throws {
        let path = try tempDir() + "/big.bin"
        let count = (1 << 31) + 3 * 4096 + 5
        // Each 4 KiB page starts with its own index, so a repeated or shifted part cannot compare equal
        // (a loop over pages, not bytes: the tests run unoptimized).
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { b in
            for page in 0..<(count / 4096) { b.storeBytes(of: UInt64(page + 1), toByteOffset: page * 4096, as: UInt64.self) }
        }
        try FileIO.writeAtomically(bytes, to: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attributes[.size] as? NSNumber)?.intValue, count)
        let back = try FileIO.read(path)
        XCTAssertEqual(back.count, count)
        let same = back.withUnsafeBytes { a in bytes.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, count) == 0 } }
        XCTAssertTrue(same, "the file read back differs from what was written")
    }
}
