// Metadata values of a GGUF file (spec v3 `gguf_metadata_value_type`).
import Support

public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6
    case bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Fewest bytes one value of this type takes in a file (a string or array: its empty encoding).
    var minimumEncodedSize: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }
}

// Not `indirect`: the recursion goes through Array's heap buffer already, and boxing every element
// would cost one allocation per value of a 49k-entry token array.
public enum GGUFValue: Equatable, Sendable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    /// Arrays are homogeneous: the element type is stored once.
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8; case .int8: .int8; case .uint16: .uint16; case .int16: .int16
        case .uint32: .uint32; case .int32: .int32; case .float32: .float32; case .bool: .bool
        case .string: .string; case .uint64: .uint64; case .int64: .int64; case .float64: .float64
        case .array: .array
        }
    }

    /// Integer value of any integer type (nil for others or when it does not fit an Int).
    public var intValue: Int? {
        switch self {
        case .uint8(let v): Int(v); case .int8(let v): Int(v); case .uint16(let v): Int(v)
        case .int16(let v): Int(v); case .uint32(let v): Int(v); case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v); case .int64(let v): Int(v)
        default: nil
        }
    }

    /// Floating value of a float or integer type.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): Double(v); case .float64(let v): v
        default: intValue.map(Double.init)
        }
    }

    public var description: String {
        switch self {
        case .string(let s): return "\"\(s.count > 60 ? String(s.prefix(57)) + "..." : s)\""
        case .array(let t, let a):
            let head = a.prefix(4).map(\.description).joined(separator: ", ")
            return "[\(t)] × \(a.count)" + (a.isEmpty ? "" : ": [\(head)\(a.count > 4 ? ", …" : "")]")
        case .bool(let b): return String(b)
        case .float32(let v): return String(v)
        case .float64(let v): return String(v)
        default: return intValue.map(String.init) ?? "?"
        }
    }
}
