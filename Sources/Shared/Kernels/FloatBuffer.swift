// A fixed-size float32 buffer with a stable address: weights and activations live in these,
// so hot kernels take raw pointers without copy-on-write checks or per-call allocation.
import GGUF

public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let ptr: UnsafeMutablePointer<Float>

    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        ptr = .allocate(capacity: max(count, 1))
        if zeroed { ptr.initialize(repeating: 0, count: max(count, 1)) }
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count, zeroed: false)
        values.withUnsafeBufferPointer { if let b = $0.baseAddress { ptr.update(from: b, count: values.count) } }
    }

    deinit { ptr.deallocate() }

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
