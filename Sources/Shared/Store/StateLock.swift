// One coordinator per state directory: a process that writes a state directory (an edit campaign,
// an evaluation with --state) first takes an exclusive `flock` on `DIR/lock` and holds it until it
// exits. A second process finds the lock taken and stops before it touches anything, naming the pid
// the file records. flock belongs to the open file, so the kernel drops it when the holder exits in
// any way (kill -9 included): a stale lock file never blocks a resume. SQLite's own locks cannot do
// this job: they last one transaction, and the ipc socket, the deltas files and the workers live
// outside the database.
import Support
import GGUF
import Model
import Editing
import Foundation

public enum StateLockError: Error, Equatable, CustomStringConvertible {
    case inUse(directory: String, pid: Int32?)
    case unavailable(directory: String, reason: String)

    public var description: String {
        switch self {
        case let .inUse(d, pid):
            return "state \(d) is in use by " + (pid.map { "pid \($0)" } ?? "another process")
                + ": one coordinator per state directory (wait for it to finish, or use another --state)"
        case let .unavailable(d, reason):
            return "cannot lock state \(d): \(reason)"
        }
    }
}

public final class StateLock {
    public static let fileName = "lock"
    public let directory: String
    private var fd: Int32

    /// Creates `directory` if needed and takes its lock, or throws `.inUse` at once (no waiting).
    public init(directory: String) throws {
        self.directory = directory
        do { try FileIO.makeDirectory(directory) } catch let e as FileIOError {
            throw StateLockError.unavailable(directory: directory, reason: e.reason)
        }
        let path = URL(fileURLWithPath: directory).appendingPathComponent(Self.fileName).path
        // Never through a symbolic link (its target was truncated to hold our pid), nor into a FIFO or device.
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o644)
        guard fd >= 0 else {
            let why = errno == ELOOP ? "it is a symbolic link: remove it (the lock is a plain file alphaedit makes)"
                : String(cString: strerror(errno))
            throw StateLockError.unavailable(directory: directory, reason: "\(path): \(why)")
        }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_nlink <= 1 else {
            close(fd)
            throw StateLockError.unavailable(directory: directory, reason: "\(path): not a plain file of its own (a directory, a device, or a hard link to another file): remove it (the lock is a plain file alphaedit makes)")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            let holder = Self.readPID(fd)
            close(fd)
            if e == EWOULDBLOCK { throw StateLockError.inUse(directory: directory, pid: holder) }
            throw StateLockError.unavailable(directory: directory, reason: "flock: \(String(cString: strerror(e)))")
        }
        // The holder's pid, for the message a second process prints.
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    deinit { release() }

    /// Lets go of the lock (also done when the process exits).
    public func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    private static func readPID(_ fd: Int32) -> Int32? {
        var buf = [UInt8](repeating: 0, count: 32)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 31, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
