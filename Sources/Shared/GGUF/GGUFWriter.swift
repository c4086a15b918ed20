// GGUF v3 writer: header, metadata in insertion order, tensor infos, then the data section.
// Layout choices follow llama.cpp's gguf.cpp and the `gguf` Python writer, so a file copied unchanged
// comes out byte-identical: the data section starts at the next multiple of the alignment, every
// tensor's offset is aligned, and every tensor (the last included) is zero-padded to the alignment.
// Everything is validated when added, so `bytes()` and `write(to:)` cannot produce a file the
// reader would reject.
import Support

public struct GGUFWriter {
    /// Where a tensor's encoded bytes come from. Tensors copied from a file keep that file (and its
    /// memory map) alive instead of duplicating its bytes.
    enum Payload {
        case bytes([UInt8])
        case file(GGUFFile, GGUFTensorInfo)

        func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            switch self {
            case .bytes(let b): return try b.withUnsafeBytes(body)
            case .file(let f, let info): return try body(f.rawBytes(info))
            }
        }
    }

    struct Tensor {
        let name: String
        let dims: [Int]
        let type: GGMLType
        let payload: Payload
        var byteCount: Int { type.byteCount(elements: dims.reduce(1, *)) ?? 0 }
    }

    public private(set) var metadataKeys: [String] = []
    public private(set) var metadata: [String: GGUFValue] = [:]
    private var tensors: [Tensor] = []
    private var tensorNames: Set<String> = []

    public init() {}

    public var tensorNamesInOrder: [String] { tensors.map(\.name) }

    /// Data alignment: `general.alignment` when set (validated by `set`), else the GGUF default 32.
    public var alignment: Int { metadata[GGUFNames.alignment]?.intValue ?? 32 }

    // MARK: - metadata

    /// Sets a metadata value. A new key is appended; an existing key keeps its position.
    /// Throws when an array's elements do not all have its declared element type, or when
    /// `general.alignment` is not a power of two in 1...65536.
    public mutating func set(_ key: String, _ value: GGUFValue) throws {
        try Self.checkHomogeneous(value, key: key)
        if key == GGUFNames.alignment {
            guard let v = value.intValue, v > 0, v <= 65536, v & (v - 1) == 0 else {
                throw GGUFError.badAlignment(UInt64(clamping: value.intValue ?? 0))
            }
        }
        if metadata.updateValue(value, forKey: key) == nil { metadataKeys.append(key) }
    }

    /// Removes a metadata key (nothing when absent).
    public mutating func remove(_ key: String) {
        guard metadata.removeValue(forKey: key) != nil else { return }
        metadataKeys.removeAll { $0 == key }
    }

    private static func checkHomogeneous(_ value: GGUFValue, key: String) throws {
        guard case .array(let elem, let items) = value else { return }
        for item in items {
            guard item.type == elem else {
                throw GGUFError.wrongValueType(key: key, expected: "array of \(elem)", found: "element of \(item.type)")
            }
            try checkHomogeneous(item, key: key)
        }
    }

    // MARK: - tensors

    /// Adds a tensor from float32 values in GGML order (`dims[0]` fastest), encoded as `encoding`.
    public mutating func add(tensor name: String, dims: [Int], floats: [Float], as encoding: TensorEncoding = .f32) throws {
        let count = try checkShape(name, dims, encoding.ggmlType)
        guard floats.count == count else {
            throw GGUFError.badShape(tensor: name, detail: "\(floats.count) values given for dims \(dims) (\(count) elements)")
        }
        guard let bytes = Quantize.run(floats, as: encoding) else {
            throw GGUFError.badShape(tensor: name, detail: "\(count) elements are not whole \(encoding) blocks")
        }
        append(Tensor(name: name, dims: dims, type: encoding.ggmlType, payload: .bytes(bytes)))
    }

    /// Adds a tensor of any type from its already-encoded bytes (copying a tensor unchanged).
    public mutating func add(tensor name: String, dims: [Int], type: GGMLType, raw: [UInt8]) throws {
        let count = try checkShape(name, dims, type)
        let expected = type.byteCount(elements: count) ?? -1
        guard raw.count == expected else {
            throw GGUFError.badShape(tensor: name, detail: "\(raw.count) bytes given, \(type) dims \(dims) need \(expected)")
        }
        append(Tensor(name: name, dims: dims, type: type, payload: .bytes(raw)))
    }

    /// Adds a tensor of `file` unchanged, without copying its bytes until the output is produced.
    public mutating func add(tensor info: GGUFTensorInfo, from file: GGUFFile) throws {
        _ = try checkShape(info.name, info.dims, info.type)
        append(Tensor(name: info.name, dims: info.dims, type: info.type, payload: .file(file, info)))
    }

    private mutating func append(_ t: Tensor) {
        tensorNames.insert(t.name)
        tensors.append(t)
    }

    /// The reader's shape rules, so that whatever is written can be read back; returns the element count.
    private func checkShape(_ name: String, _ dims: [Int], _ type: GGMLType) throws -> Int {
        guard !tensorNames.contains(name) else { throw GGUFError.duplicateTensor(name) }
        guard (1...4).contains(dims.count) else {
            throw GGUFError.badShape(tensor: name, detail: "\(dims.count) dimensions (1 to 4 allowed)")
        }
        var total = 1
        for d in dims {
            guard d >= 1, d <= Int(Int32.max) else { throw GGUFError.badShape(tensor: name, detail: "dimension \(d) in \(dims)") }
            let (t, o) = total.multipliedReportingOverflow(by: d)
            guard !o, t <= (1 << 40) else { throw GGUFError.badShape(tensor: name, detail: "element count overflows") }
            total = t
        }
        guard dims[0] % type.blockSize == 0 else {
            throw GGUFError.badShape(tensor: name, detail: "row length \(dims[0]) is not a multiple of the \(type) block size \(type.blockSize)")
        }
        return total
    }

    // MARK: - output

    /// Header, metadata and tensor infos, padded to the alignment: everything before the data section.
    func headerBytes() -> [UInt8] {
        var w = ByteSink()
        w.u32(GGUFFile.magic)
        w.u32(3)
        w.u64(UInt64(tensors.count))
        w.u64(UInt64(metadataKeys.count))
        for key in metadataKeys {
            guard let v = metadata[key] else { continue }
            w.string(key)
            w.u32(v.type.rawValue)
            w.value(v)
        }
        var offset = 0
        for t in tensors {
            w.string(t.name)
            w.u32(UInt32(t.dims.count))
            for d in t.dims { w.u64(UInt64(d)) }
            w.u32(t.type.rawValue)
            w.u64(UInt64(offset))
            offset += Self.padded(t.byteCount, alignment)
        }
        w.pad(to: alignment)
        return w.bytes
    }

    static func padded(_ n: Int, _ a: Int) -> Int { (n + a - 1) / a * a }

    /// The whole file in memory.
    public func bytes() -> [UInt8] {
        var out = headerBytes()
        for t in tensors {
            t.payload.withBytes { out.append(contentsOf: $0) }
            out.append(contentsOf: repeatElement(0, count: Self.padded(t.byteCount, alignment) - t.byteCount))
        }
        return out
    }

    /// Writes the file to `path + ".tmp"` and renames it over `path`, so a reader never sees half a file.
    /// Tensor data is streamed from its source rather than assembled in memory. Refused, before anything
    /// is written: a directory; an existing file that is not a GGUF (a state's database, an artifact: a
    /// mistyped `export --out` would destroy it); and a file this one copies tensors from (`export --out`
    /// naming the model it read would replace the original with the edited copy).
    public func write(to path: String) throws {
        guard !path.isEmpty else { throw GGUFError.writeFailed(path: path, reason: "the path is empty") }
        if FileIO.isDirectory(path) { throw GGUFError.writeFailed(path: path, reason: "it is a directory") }
        // Only a regular file (or nothing) is written over, and only a regular file is opened to read its
        // magic: reading a FIFO or `/dev/stdout` on a pipe blocked forever, and the rename replaced a
        // symbolic link or a device node (as root, /dev/null) with the GGUF.
        if let kind = FileIO.nonRegularKind(path) {
            throw GGUFError.writeFailed(path: path, reason: "it is \(kind), not a regular file: the GGUF is written beside it and renamed "
                                        + "over it, so name a regular file's path (to pipe a model, write a file first)")
        }
        if let head = FileIO.prefix(path, bytes: 4), !head.isEmpty,
           head != withUnsafeBytes(of: GGUFFile.magic.littleEndian, Array.init) {
            throw GGUFError.writeFailed(path: path, reason: "it exists and is not a GGUF file: remove it first, or choose another path")
        }
        let sources = Set(tensors.compactMap { t -> String? in
            if case .file(let f, _) = t.payload { return f.path }
            return nil
        })
        for source in sources.sorted() where FileIO.sameFile(source, path) {
            throw GGUFError.writeFailed(path: path, reason:
                "it is \(source == path ? "" : "the same file as \(source), ")the file this one copies its tensors from: writing would replace the original; choose another path")
        }
        do {
            var out = try AtomicFileWriter(path: path)
            do {
                try out.write(headerBytes())
                let zeros = [UInt8](repeating: 0, count: alignment)
                for t in tensors {
                    try t.payload.withBytes { try out.write($0) }
                    try zeros.withUnsafeBytes { z in
                        try out.write(UnsafeRawBufferPointer(rebasing: z[0..<(Self.padded(t.byteCount, alignment) - t.byteCount)]))
                    }
                }
                try out.commit()
            } catch {
                out.abandon()
                throw error
            }
        } catch let e as FileIOError {
            throw GGUFError.writeFailed(path: path, reason: e.reason)
        }
    }

    // MARK: - copying a file

    /// Every metadata entry and tensor of `file`, in file order; tensors named in `replacing` are
    /// stored as F32 with their original dims, all others unchanged. Throws when a replacement names
    /// no tensor of the file or has the wrong number of values.
    public static func copy(from file: GGUFFile, replacing: [String: [Float]] = [:]) throws -> GGUFWriter {
        var w = GGUFWriter()
        for key in file.metadataKeys {
            guard let v = file.metadata[key] else { continue }
            try w.set(key, v)
        }
        for name in replacing.keys where file.tensorInfo(name) == nil { throw GGUFError.missingTensor(name) }
        for info in file.tensors {
            if let values = replacing[info.name] {
                try w.add(tensor: info.name, dims: info.dims, floats: values, as: .f32)
            } else {
                try w.add(tensor: info, from: file)
            }
        }
        return w
    }
}

/// Little-endian serialization of GGUF's primitive fields (the inverse of `ByteCursor`).
struct ByteSink {
    var bytes: [UInt8] = []

    mutating func int<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func u32(_ v: UInt32) { int(v) }
    mutating func u64(_ v: UInt64) { int(v) }

    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u64(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    mutating func pad(to alignment: Int) {
        bytes.append(contentsOf: repeatElement(0, count: GGUFWriter.padded(bytes.count, alignment) - bytes.count))
    }

    /// The value alone; its type id is written by the caller (arrays write their element type here).
    mutating func value(_ v: GGUFValue) {
        switch v {
        case .uint8(let x): int(x)
        case .int8(let x): int(x)
        case .uint16(let x): int(x)
        case .int16(let x): int(x)
        case .uint32(let x): int(x)
        case .int32(let x): int(x)
        case .uint64(let x): int(x)
        case .int64(let x): int(x)
        case .float32(let x): int(x.bitPattern)
        case .float64(let x): int(x.bitPattern)
        case .bool(let b): int(UInt8(b ? 1 : 0))
        case .string(let s): string(s)
        case .array(let elem, let items):
            u32(elem.rawValue)
            u64(UInt64(items.count))
            for item in items { value(item) }
        }
    }
}
