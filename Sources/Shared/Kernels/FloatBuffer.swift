// A fixed-size float32 buffer with a stable address: weights and activations live in these,
// so hot kernels take raw pointers without copy-on-write checks or per-call allocation.
import GGUF
import Glibc

public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let ptr: UnsafeMutablePointer<Float>
    /// Allocated by `posix_memalign` on a 2 MB boundary with transparent huge pages asked for.
    private let huge: Bool

    /// Every buffer starts on a cache line. `.allocate(capacity:)` for floats gave malloc's 16 bytes, so
    /// activations began mid-line and half the AVX2 loads of x in the quantized kernels (all of the
    /// AVX-512 ones) crossed a line, two loads each. Measured 2026-12-05 (Zen 4, AVX2, 2 threads):
    /// Qwen's 24 blocks of T = 10 products from the file's weights, x 64-byte aligned 54.8 / 54.9 ms,
    /// 16 bytes past a line 71.0 / 69.7 (gate 650 → 860 µs), as slow as those products ran in the model.
    public static let alignment = 64

    /// Buffers of at least this many bytes (the weights, large activations) ask the kernel for 2 MB
    /// pages (`MADV_HUGEPAGE`; this VM's THP setting is `madvise`): 512× fewer page faults when a
    /// model's float32 copies are first written, and fewer TLB misses when sgemm streams them.
    public static let hugeBytes = 2 << 20

    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        var raw: UnsafeMutableRawPointer?
        if bytes >= Self.hugeBytes, posix_memalign(&raw, Self.hugeBytes, bytes) == 0, let raw {
            _ = madvise(raw, bytes, MADV_HUGEPAGE)  // advice only: without it the buffer still works
            ptr = raw.bindMemory(to: Float.self, capacity: max(count, 1))
            huge = true
        } else {
            ptr = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: Self.alignment)
                .bindMemory(to: Float.self, capacity: max(count, 1))
            huge = false
        }
        if zeroed { ptr.initialize(repeating: 0, count: max(count, 1)) }
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count, zeroed: false)
        values.withUnsafeBufferPointer { if let b = $0.baseAddress { ptr.update(from: b, count: values.count) } }
    }

    deinit { if huge { free(ptr) } else { UnsafeMutableRawPointer(ptr).deallocate() } }

    public var array: [Float] { Array(UnsafeBufferPointer(start: ptr, count: count)) }
    public subscript(i: Int) -> Float {
        get { ptr[i] }
        set { ptr[i] = newValue }
    }
    public func zero() { ptr.update(repeating: 0, count: count) }
}

/// Scratch buffers that grow on demand and are reused across calls (one per thread of work).
public final class Scratch: @unchecked Sendable {
    private var buffers: [String: FloatBuffer] = [:]
    public init() {}
    /// A buffer of at least `count` floats under `name`; contents are unspecified.
    public func get(_ name: String, _ count: Int) -> UnsafeMutablePointer<Float> {
        if let b = buffers[name], b.count >= count { return b.ptr }
        let b = FloatBuffer(count: count, zeroed: false)
        buffers[name] = b
        return b.ptr
    }
}
