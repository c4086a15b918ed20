// GGUF v3 reader (also accepts v2): header, metadata, tensor infos, aligned data section.
// The file is memory-mapped; every read is bounds-checked and a malformed file throws a GGUFError
// naming the field and offset. Tensor data is exposed as raw bytes and dequantized on demand.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// GGML order: `dims[0]` is the fastest-varying (the "in" size of a matrix).
    public let dims: [Int]
    public let type: GGMLType
    /// Offset relative to the start of the data section.
    public let offset: Int
    public var elementCount: Int { dims.reduce(1, *) }
    public var byteCount: Int { type.byteCount(elements: elementCount) ?? 0 }
    /// Row-major `out × in` view of a matrix (rows = product of dims[1...], cols = dims[0]).
    public var rows: Int { dims.dropFirst().reduce(1, *) }
    public var cols: Int { dims.first ?? 1 }
}

/// Owns the bytes of a GGUF file: a read-only memory map, or an in-memory copy.
final class GGUFStorage: @unchecked Sendable {
    let base: UnsafeRawPointer
    let count: Int
    private let mapped: Bool

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw GGUFError.cannotOpen(path: path, reason: "not a regular file") }
        count = Int(st.st_size)
        if count == 0 {
            base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64))
            mapped = false
            return
        }
        guard let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw GGUFError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
        mapped = true
    }

    init(bytes: [UInt8]) {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { if let src = $0.baseAddress { p.copyMemory(from: src, byteCount: bytes.count) } }
        base = UnsafeRawPointer(p)
        count = bytes.count
        mapped = false
    }

    deinit {
        if mapped { munmap(UnsafeMutableRawPointer(mutating: base), count) } else { base.deallocate() }
    }
}

public final class GGUFFile: @unchecked Sendable {
    /// "GGUF" as the file's first 4 bytes, read little-endian.
    public static let magic: UInt32 = 0x4655_4747

    public let path: String?
    public let version: UInt32
    public let alignment: Int
    /// Metadata in file order.
    public let metadataKeys: [String]
    public let metadata: [String: GGUFValue]
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    /// Absolute offset of the data section.
    public let dataOffset: Int
    public var fileSize: Int { storage.count }
    private let storage: GGUFStorage
    private let tensorIndex: [String: Int]

    public convenience init(path: String) throws {
        try self.init(storage: GGUFStorage(path: path), path: path)
    }

    /// Parses an in-memory image (tests, round trips).
    public convenience init(bytes: [UInt8]) throws {
        try self.init(storage: GGUFStorage(bytes: bytes), path: nil)
    }

    private init(storage: GGUFStorage, path: String?) throws {
        self.storage = storage
        self.path = path
        var r = ByteCursor(base: storage.base, count: storage.count)
        let magic = try r.u32("magic")
        guard magic == Self.magic else { throw GGUFError.badMagic(found: magic) }
        let version = try r.u32("version")
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(version) }
        self.version = version
        let tensorCountOffset = r.offset
        let tensorCount = try r.u64("tensor_count")
        let kvCountOffset = r.offset
        let kvCount = try r.u64("metadata_kv_count")
        // Each tensor info takes at least 8+4+4+8 bytes, each kv at least 8+4+1: bound counts by the file.
        guard tensorCount <= UInt64(storage.count / 24) else {
            throw GGUFError.countBeyondFile(field: "tensor_count", value: tensorCount, offset: tensorCountOffset, fileSize: storage.count)
        }
        guard kvCount <= UInt64(storage.count / 13) else {
            throw GGUFError.countBeyondFile(field: "metadata_kv_count", value: kvCount, offset: kvCountOffset, fileSize: storage.count)
        }
        var keys: [String] = []
        var meta: [String: GGUFValue] = [:]
        for i in 0..<Int(kvCount) {
            let key = try r.string("metadata[\(i)].key")
            let typeOffset = r.offset
            let rawType = try r.u32("metadata \(key) type")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw GGUFError.unknownValueType(raw: rawType, key: key, offset: typeOffset)
            }
            let value = try r.value(type, key: key, depth: 0)
            guard meta[key] == nil else { throw GGUFError.duplicateKey(key) }
            meta[key] = value
            keys.append(key)
        }
        metadataKeys = keys
        metadata = meta

        var align = 32
        if let a = meta[GGUFNames.alignment] {
            guard let v = a.intValue, v > 0, v <= 65536, v & (v - 1) == 0 else {
                // Clamping: a negative int32 alignment must be reported, not trap the conversion.
                throw GGUFError.badAlignment(UInt64(clamping: a.intValue ?? 0))
            }
            align = v
        }
        alignment = align

        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        for i in 0..<Int(tensorCount) {
            let name = try r.string("tensor[\(i)].name")
            let ndOffset = r.offset
            let nDims = try r.u32("tensor \(name) n_dims")
            guard nDims >= 1, nDims <= 4 else {
                throw GGUFError.absurdCount(field: "tensor \(name) n_dims", value: UInt64(nDims), offset: ndOffset)
            }
            var dims: [Int] = []
            var total = 1
            for d in 0..<Int(nDims) {
                let o = r.offset
                let v = try r.u64("tensor \(name) dims[\(d)]")
                guard v >= 1, v <= UInt64(Int32.max) else {
                    throw GGUFError.absurdCount(field: "tensor \(name) dims[\(d)]", value: v, offset: o)
                }
                let (t, of) = total.multipliedReportingOverflow(by: Int(v))
                guard !of, t <= (1 << 40) else {
                    throw GGUFError.badShape(tensor: name, detail: "element count overflows")
                }
                total = t
                dims.append(Int(v))
            }
            let typeOffset = r.offset
            let rawType = try r.u32("tensor \(name) type")
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError.unknownTensorType(raw: rawType, tensor: name, offset: typeOffset)
            }
            guard dims[0] % type.blockSize == 0 else {
                throw GGUFError.badShape(tensor: name, detail: "row length \(dims[0]) is not a multiple of the \(type) block size \(type.blockSize)")
            }
            let offOffset = r.offset
            let off = try r.u64("tensor \(name) offset")
            guard off <= UInt64(storage.count) else {
                throw GGUFError.absurdCount(field: "tensor \(name) offset", value: off, offset: offOffset)
            }
            guard off % UInt64(align) == 0 else {
                throw GGUFError.misalignedTensor(tensor: name, offset: off, alignment: align)
            }
            guard index[name] == nil else { throw GGUFError.duplicateTensor(name) }
            index[name] = infos.count
            infos.append(GGUFTensorInfo(name: name, dims: dims, type: type, offset: Int(off)))
        }
        tensors = infos
        tensorIndex = index
        let data = (r.offset + align - 1) / align * align
        dataOffset = data
        for t in infos {
            let start = data + t.offset
            let end = start + t.byteCount
            guard end <= storage.count else {
                throw GGUFError.tensorOutOfBounds(tensor: t.name, start: start, end: end, fileSize: storage.count)
            }
        }
    }

    // MARK: - tensors

    public func tensorInfo(_ name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// Raw bytes of a tensor (valid while this file is alive).
    public func rawBytes(_ info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.base + dataOffset + info.offset, count: info.byteCount)
    }

    /// Dequantizes a tensor into a new float32 array (GGML order: row-major out × in).
    public func floats(_ name: String) throws -> [Float] {
        guard let info = tensorInfo(name) else { throw GGUFError.missingTensor(name) }
        return try floats(info)
    }

    public func floats(_ info: GGUFTensorInfo) throws -> [Float] {
        guard info.type.canDequantize else { throw GGUFError.unsupportedTensorType(tensor: info.name, type: info.type) }
        let n = info.elementCount
        return [Float](unsafeUninitializedCapacity: n) { buf, count in
            Dequantize.run(info.type, from: rawBytes(info), into: buf.baseAddress!, count: n)
            count = n
        }
    }

    // MARK: - typed metadata access

    public func value(_ key: String) throws -> GGUFValue {
        guard let v = metadata[key] else { throw GGUFError.missingKey(key) }
        return v
    }

    public func string(_ key: String) throws -> String {
        guard case .string(let s) = try value(key) else { throw mismatch(key, "string") }
        return s
    }

    public func int(_ key: String) throws -> Int {
        guard let v = try value(key).intValue else { throw mismatch(key, "integer") }
        return v
    }

    public func uint32(_ key: String) throws -> UInt32 {
        guard let v = try value(key).intValue, let u = UInt32(exactly: v) else { throw mismatch(key, "uint32") }
        return u
    }

    public func double(_ key: String) throws -> Double {
        guard let v = try value(key).doubleValue else { throw mismatch(key, "number") }
        return v
    }

    public func stringArray(_ key: String) throws -> [String] {
        guard case .array(.string, let a) = try value(key) else { throw mismatch(key, "array of string") }
        return a.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }

    public func int32Array(_ key: String) throws -> [Int32] {
        guard case .array(_, let a) = try value(key) else { throw mismatch(key, "array of integer") }
        var out: [Int32] = []
        out.reserveCapacity(a.count)
        for v in a {
            guard let i = v.intValue, let x = Int32(exactly: i) else { throw mismatch(key, "array of int32") }
            out.append(x)
        }
        return out
    }

    private func mismatch(_ key: String, _ expected: String) -> GGUFError {
        let found: String = metadata[key].map { v in
            if case .array(let t, _) = v { "array of \(t)" } else { "\(v.type)" }
        } ?? "nothing"
        return .wrongValueType(key: key, expected: expected, found: found)
    }
}

/// Bounds-checked little-endian reader over the file bytes.
struct ByteCursor {
    let base: UnsafeRawPointer
    let count: Int
    var offset = 0

    private func need(_ n: Int, _ field: String) throws {
        guard n >= 0, offset <= count - n else {
            throw GGUFError.truncated(field: field, offset: offset, needed: n, fileSize: count)
        }
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ field: String) throws -> T {
        try need(MemoryLayout<T>.size, field)
        let v = base.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func u32(_ field: String) throws -> UInt32 { try load(UInt32.self, field) }
    mutating func u64(_ field: String) throws -> UInt64 { try load(UInt64.self, field) }

    mutating func string(_ field: String) throws -> String {
        let len = try u64("\(field) length")
        guard len <= UInt64(count - offset) else {
            throw GGUFError.truncated(field: field, offset: offset, needed: Int(clamping: len), fileSize: count)
        }
        let n = Int(len)
        let bytes = UnsafeBufferPointer(start: (base + offset).assumingMemoryBound(to: UInt8.self), count: n)
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw GGUFError.invalidUTF8(field: field, offset: offset)
        }
        offset += n
        return s
    }

    mutating func value(_ type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        let f = "metadata \(key)"
        switch type {
        case .uint8: return .uint8(try load(UInt8.self, f))
        case .int8: return .int8(try load(Int8.self, f))
        case .uint16: return .uint16(try load(UInt16.self, f))
        case .int16: return .int16(try load(Int16.self, f))
        case .uint32: return .uint32(try load(UInt32.self, f))
        case .int32: return .int32(try load(Int32.self, f))
        case .uint64: return .uint64(try load(UInt64.self, f))
        case .int64: return .int64(try load(Int64.self, f))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self, f)))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self, f)))
        case .bool:
            let o = offset
            let b = try load(UInt8.self, f)
            guard b <= 1 else { throw GGUFError.absurdCount(field: "\(f) bool", value: UInt64(b), offset: o) }
            return .bool(b == 1)
        case .string: return .string(try string(f))
        case .array:
            let to = offset
            let rawElem = try u32("\(f) array type")
            guard let elem = GGUFValueType(rawValue: rawElem) else {
                throw GGUFError.unknownValueType(raw: rawElem, key: key, offset: to)
            }
            guard depth < 4 else { throw GGUFError.absurdCount(field: "\(f) array nesting", value: UInt64(depth), offset: to) }
            let co = offset
            let n = try u64("\(f) array count")
            // Bounding the count by the bytes left keeps a hostile count from reserving gigabytes.
            guard n <= UInt64((count - offset) / elem.minimumEncodedSize) else {
                throw GGUFError.countBeyondFile(field: "\(f) array count", value: n, offset: co, fileSize: count)
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(n))
            for _ in 0..<Int(n) { items.append(try value(elem, key: key, depth: depth + 1)) }
            return .array(elem, items)
        }
    }
}
