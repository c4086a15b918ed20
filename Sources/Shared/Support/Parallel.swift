// Independent items side by side: v* chunks and evaluated records run one per thread, each on one
// BLAS thread (see BLAS.singleThreaded), instead of one at a time on all threads.
import Foundation

public enum Parallel {
    /// Calls `body(i)` for every i in 0..<count on up to `threads` threads, items handed out in order.
    /// After the first error no further item starts; that error is rethrown.
    public static func forEach(_ count: Int, threads: Int, _ body: (Int) throws -> Void) throws {
        let lock = NSLock()
        var next = 0, failure: Error?
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, count))) { _ in
            while true {
                let i: Int? = lock.withLock {
                    guard failure == nil, next < count else { return nil }
                    next += 1
                    return next - 1
                }
                guard let i else { return }
                do { try body(i) } catch { lock.withLock { failure = failure ?? error } }
            }
        }
        if let failure { throw failure }
    }
}
