// Independent items side by side: v* chunks and evaluated records run one per thread, each on one
// BLAS thread (see BLAS.singleThreaded), instead of one at a time on all threads.
import Foundation

public enum Parallel {
    private final class Queue: @unchecked Sendable {  // every field is read and written under `lock`
        let lock = NSLock()
        var next = 0
        var failure: Error?
    }

    /// Calls `body(i)` for every i in 0..<count on up to `threads` threads, items handed out in order.
    /// After the first error no further item starts; that error is rethrown. `body` runs concurrently
    /// with itself: the caller's items must touch disjoint state (each writes its own slot), which is
    /// why it need not be @Sendable.
    public static func forEach(_ count: Int, threads: Int, _ body: (Int) throws -> Void) throws {
        let q = Queue()
        try withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: max(1, min(threads, count))) { _ in
                while true {
                    let i: Int? = q.lock.withLock {
                        guard q.failure == nil, q.next < count else { return nil }
                        q.next += 1
                        return q.next - 1
                    }
                    guard let i else { return }
                    do { try body(i) } catch { q.lock.withLock { q.failure = q.failure ?? error } }
                }
            }
            if let failure = q.failure { throw failure }
        }
    }
}
