// Whole-file reads and atomic whole-file writes through the system calls, for files of any size.
// On Linux read(2) and write(2) move at most 0x7ffff000 bytes a call, and Foundation's
// `Data.write(to:options: .atomic)` got that wrong: a 2.41 GB K₀ projector artifact (Qwen, 24 layers,
// 2026-12-05) came out with the right length, but every byte past 2,147,479,552 was the buffer written
// again from its start. The checksum refused the file when it was read, but `cov` had reported success and
// its statistics (2.27 GB) were lost the same way. Here every call's count is checked and the loop goes on
// from where the last call stopped.
import Foundation
#if canImport(Glibc)
import Glibc
private let systemRead = Glibc.read
private let systemWrite = Glibc.write
private let systemPread = Glibc.pread
#elseif canImport(Darwin)
import Darwin
private let systemRead = Darwin.read
private let systemWrite = Darwin.write
private let systemPread = Darwin.pread
#endif

public struct FileIOError: Error, Equatable, Sendable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
    public var description: String { "\(path): \(reason)" }
}

public enum FileIO {
    /// Bytes one read(2) or write(2) call is asked to move: below Linux's cap of 0x7ffff000, so a large
    /// file takes several calls on every system (tests pass less to run the loop on small buffers).
    public static let defaultChunk = 1 << 30

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    /// Every byte of the file at `path`.
    public static func read(_ path: String, chunk: Int = defaultChunk) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError(path: path, reason: "cannot open: \(errnoText())") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileIOError(path: path, reason: "cannot stat: \(errnoText())") }
        let size = Int(st.st_size)
        var out = [UInt8](repeating: 0, count: size)
        var done = 0
        try out.withUnsafeMutableBytes { buf in
            guard let base = buf.baseAddress else { return }
            while done < size {
                let n = systemRead(fd, base + done, min(chunk, size - done))
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw FileIOError(path: path, reason: "read at byte \(done): \(errnoText())") }
                guard n > 0 else { throw FileIOError(path: path, reason: "ended at byte \(done) of \(size) (changed while read?)") }
                done += n
            }
        }
        return out
    }

    /// Whether `a` and `b` name one existing file (the same device and inode: a link or another spelling
    /// of the path included).
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// The first `bytes` bytes of the file at `path` (fewer where it is shorter); nil where it cannot be opened.
    public static func prefix(_ path: String, bytes: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: bytes)
        var done = 0
        while done < bytes {
            let n = out.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress! + done, bytes - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            done += n
        }
        return Array(out.prefix(done))
    }

    /// Creates the directory `path` (and its parents) where it is missing. A file in its place or in a
    /// parent's, or a failure, is an error naming that path and why (not Foundation's NSCocoaErrorDomain text).
    public static func makeDirectory(_ path: String) throws {
        var sofar = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            sofar += (sofar.isEmpty || sofar.hasSuffix("/") ? "" : "/") + part
            if isDirectory(sofar) { continue }
            if mkdir(sofar, 0o755) == 0 || (errno == EEXIST && isDirectory(sofar)) { continue }
            let why = errno == EEXIST ? "exists and is not a directory" : "cannot create the directory: \(errnoText())"
            throw FileIOError(path: path, reason: sofar == path ? why : "\(sofar) \(why)")
        }
    }

    /// Why the file at `path` cannot be read ("No such file or directory", "Permission denied", "a
    /// directory"), or nil where it can: the reason an input file's "cannot read" error gives.
    public static func whyUnreadable(_ path: String) -> String? {
        if isDirectory(path) { return "a directory, not a file" }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)   // a FIFO without a writer opens, not blocks
        guard fd >= 0 else { return errnoText() }
        close(fd)
        return nil
    }

    /// What stands at `path` when it is neither missing nor a regular file ("a symbolic link", "a FIFO
    /// (named pipe)", "a character device", …; the link itself, not what it points to), else nil.
    public static func nonRegularKind(_ path: String) -> String? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFLNK: return "a symbolic link"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFDIR: return "a directory"
        default: return "not a regular file"
        }
    }

    /// Whether `path` is an existing directory.
    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Writes `bytes` to `path` whole or not at all: into `path.tmp`, fsync, then rename over `path`.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, chunk: Int = defaultChunk) throws {
        var w = try AtomicFileWriter(path: path, chunk: chunk)
        do {
            try bytes.withUnsafeBytes { try w.write($0) }
            try w.commit()
        } catch {
            w.abandon()
            throw error
        }
    }
}

/// A file written in parts that appears at `path` only when `commit` succeeds (temporary file beside it,
/// fsync, rename); `abandon` removes the temporary file.
public struct AtomicFileWriter {
    public let path: String
    let tmp: String
    let chunk: Int
    private var fd: Int32

    public init(path: String, chunk: Int = FileIO.defaultChunk) throws {
        self.path = path
        self.tmp = path + ".tmp"
        self.chunk = max(1, chunk)
        // PATH.tmp is ours: a regular one is a leftover of a run cut short and is truncated; anything else
        // there (a symbolic link, whose target the write followed and filled, a FIFO) is removed, not opened.
        if let kind = FileIO.nonRegularKind(tmp), kind != "a directory" { unlink(tmp) }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw FileIOError(path: path, reason: "cannot open \(tmp): \(String(cString: strerror(errno)))") }
    }

    /// Appends every byte of `buf`.
    public mutating func write(_ buf: UnsafeRawBufferPointer) throws {
        guard let base = buf.baseAddress else { return }
        var done = 0
        while done < buf.count {
            let n = systemWrite(fd, base + done, min(chunk, buf.count - done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FileIOError(path: path, reason: "write: \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    public mutating func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// fsync, close and rename: the file is at `path`, whole.
    public mutating func commit() throws {
        guard fsync(fd) == 0 else { throw FileIOError(path: path, reason: "fsync: \(String(cString: strerror(errno)))") }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else { throw FileIOError(path: path, reason: "close: \(String(cString: strerror(errno)))") }
        guard rename(tmp, path) == 0 else { throw FileIOError(path: path, reason: "rename \(tmp): \(String(cString: strerror(errno)))") }
    }

    /// Closes and removes the temporary file (after a failure); `path` is untouched.
    public mutating func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(tmp)
    }
}

/// A file read at given offsets (pread), for artifacts read a part at a time (a projector set's layers).
public final class RandomAccessFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let fd: Int32

    public init(path: String) throws {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError(path: path, reason: "cannot open: \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw FileIOError(path: path, reason: "cannot stat: \(String(cString: strerror(errno)))")
        }
        self.path = path
        size = Int(st.st_size)
    }

    deinit { close(fd) }

    /// Fills `buffer` with the bytes from `offset` on; they must lie within the file.
    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer, chunk: Int = FileIO.defaultChunk) throws {
        guard offset >= 0, buffer.count <= size - offset else {
            throw FileIOError(path: path, reason: "bytes \(offset)..<\(offset + buffer.count) lie past its end (\(size) bytes)")
        }
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let n = systemPread(fd, base + done, min(chunk, buffer.count - done), off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw FileIOError(path: path, reason: "read at byte \(offset + done): \(String(cString: strerror(errno)))") }
            guard n > 0 else { throw FileIOError(path: path, reason: "ended at byte \(offset + done) of \(size) (changed while read?)") }
            done += n
        }
    }

    /// `count` bytes from `offset`.
    public func bytes(at offset: Int, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max(0, count))
        try out.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        return out
    }
}
