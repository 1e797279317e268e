import Foundation
import PGTensor

/// Somewhere encoded bytes go: a growing buffer, or a hasher (so keys over large values need
/// no intermediate copy).
protocol ByteSink {
    mutating func write(_ bytes: UnsafeRawBufferPointer)
}

extension ByteSink {
    mutating func writeByte(_ b: UInt8) { withUnsafeBytes(of: b) { write($0) } }
    mutating func writeUInt32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { write($0) } }
    mutating func writeUInt64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { write($0) } }
    mutating func writeString(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            writeUInt64(UInt64(utf8.count))
            write(UnsafeRawBufferPointer(utf8))
        }
    }
}

struct DataSink: ByteSink {
    var data = Data()
    mutating func write(_ bytes: UnsafeRawBufferPointer) { data.append(contentsOf: bytes) }
}

/// The binary encoding of `Value`s used for cache payloads and for hashing values into keys.
///
/// Layout (all integers little-endian), one tag byte per value:
/// - `1` tensor: rank `u32`, each dimension `u64`, then the Float32 scalars (LE bit patterns);
/// - `2` number: the Float64 bit pattern `u64`;
/// - `3` string: byte count `u64`, UTF-8 bytes;
/// - `4` list: element count `u64`, the elements;
/// - `5` record: member count `u64`, then per member (sorted by UTF-8 bytes of the key)
///   the key as a string body (count + bytes) and the value.
/// Sorting record keys makes the encoding canonical: equal values give equal bytes, which is
/// what lets a value's hash stand for its content.
public enum ValueCodec {
    // A layout change must bump `CacheStore.formatVersion`, so old entries read as misses.

    enum Tag: UInt8 { case tensor = 1, number, string, list, record }

    /// Deep nesting only comes from corrupt input; the limit keeps the decoder off the stack's end.
    static let maxDepth = 256

    public static func encode(_ value: Value) -> Data {
        var sink = DataSink()
        write(value, into: &sink)
        return sink.data
    }

    /// A node's outputs, encoded as a record of its ports.
    public static func encode(outputs: [String: Value]) -> Data {
        var sink = DataSink()
        sink.data.reserveCapacity(outputs.values.reduce(64) { $0 + estimatedSize($1) })
        writeRecord(outputs, into: &sink)
        return sink.data
    }

    public static func decode(_ data: Data) throws -> Value {
        try data.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            let v = try reader.value(depth: 0)
            guard reader.remaining == 0 else { throw reader.failure("\(reader.remaining) unexpected bytes after the value") }
            return v
        }
    }

    public static func decode(outputs data: Data) throws -> [String: Value] {
        try data.withUnsafeBytes { try decode(outputs: $0) }
    }

    static func decode(outputs raw: UnsafeRawBufferPointer) throws -> [String: Value] {
        var reader = ByteReader(raw)
        guard case .record(let r) = try reader.value(depth: 0) else {
            throw CacheError(.malformed, "The encoded outputs are not a record of ports.")
        }
        guard reader.remaining == 0 else { throw reader.failure("\(reader.remaining) unexpected bytes after the outputs") }
        return r
    }

    static func write<S: ByteSink>(_ value: Value, into sink: inout S) {
        switch value {
        case .tensor(let t):
            sink.writeByte(Tag.tensor.rawValue)
            sink.writeUInt32(UInt32(t.shape.count))
            for d in t.shape { sink.writeUInt64(UInt64(d)) }
            t.withUnsafeBufferPointer { buffer in
                #if _endian(little)
                sink.write(UnsafeRawBufferPointer(buffer))
                #else
                for x in buffer { sink.writeUInt32(x.bitPattern) }
                #endif
            }
        case .number(let d):
            sink.writeByte(Tag.number.rawValue)
            sink.writeUInt64(d.bitPattern)
        case .string(let s):
            sink.writeByte(Tag.string.rawValue)
            sink.writeString(s)
        case .list(let items):
            sink.writeByte(Tag.list.rawValue)
            sink.writeUInt64(UInt64(items.count))
            for item in items { write(item, into: &sink) }
        case .record(let members):
            writeRecord(members, into: &sink)
        }
    }

    static func writeRecord<S: ByteSink>(_ members: [String: Value], into sink: inout S) {
        sink.writeByte(Tag.record.rawValue)
        sink.writeUInt64(UInt64(members.count))
        // Byte order, not String's Unicode ordering, so the encoding is the same on every platform.
        for key in members.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            sink.writeString(key)
            write(members[key]!, into: &sink)
        }
    }

    private static func estimatedSize(_ v: Value) -> Int {
        switch v {
        case .tensor(let t): return 16 + 8 * t.rank + 4 * t.count
        case .number: return 9
        case .string(let s): return 9 + s.utf8.count
        case .list(let l): return l.reduce(9) { $0 + estimatedSize($1) }
        case .record(let r): return r.reduce(9) { $0 + 9 + $1.key.utf8.count + estimatedSize($1.value) }
        }
    }
}

/// Bounds-checked reading; every failure is a `CacheError(.malformed)`, never a trap.
private struct ByteReader {
    let raw: UnsafeRawBufferPointer
    var at = 0
    init(_ raw: UnsafeRawBufferPointer) { self.raw = raw }

    var remaining: Int { raw.count - at }

    func failure(_ what: String) -> CacheError {
        CacheError(.malformed, "The encoded value is malformed at byte \(at): \(what).")
    }

    mutating func bytes(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else { throw failure("needs \(n) bytes, \(remaining) left") }
        defer { at += n }
        return UnsafeRawBufferPointer(rebasing: raw[at..<(at + n)])
    }
    mutating func byte() throws -> UInt8 { try bytes(1)[0] }
    mutating func u32() throws -> UInt32 { UInt32(littleEndian: try bytes(4).loadUnaligned(as: UInt32.self)) }
    mutating func u64() throws -> UInt64 { UInt64(littleEndian: try bytes(8).loadUnaligned(as: UInt64.self)) }

    /// A count that must fit in what is left (each counted thing takes at least `unit` bytes),
    /// so corrupt counts cannot trigger huge allocations.
    mutating func count(unit: Int) throws -> Int {
        let n = try u64()
        guard n <= UInt64(remaining / max(unit, 1)) else { throw failure("a count of \(n) exceeds the remaining data") }
        return Int(n)
    }

    mutating func string() throws -> String {
        let n = try count(unit: 1)
        return String(decoding: try bytes(n), as: UTF8.self)
    }

    mutating func value(depth: Int) throws -> Value {
        guard depth < ValueCodec.maxDepth else { throw failure("values nest deeper than \(ValueCodec.maxDepth)") }
        let tagByte = try byte()
        guard let tag = ValueCodec.Tag(rawValue: tagByte) else { throw failure("unknown value tag \(tagByte)") }
        switch tag {
        case .tensor:
            let rank = Int(try u32())
            guard rank <= remaining / 8 else { throw failure("a tensor rank of \(rank) exceeds the remaining data") }
            var shape: [Int] = []
            var n = 1
            for _ in 0..<rank {
                let d = try u64()
                guard d <= UInt64(Int.max) else { throw failure("a tensor dimension of \(d) is out of range") }
                shape.append(Int(d))
                let (p, overflow) = n.multipliedReportingOverflow(by: Int(d))
                guard !overflow else { throw failure("tensor shape \(shape) overflows") }
                n = p
            }
            guard n <= remaining / 4 else { throw failure("tensor \(shape) needs \(n * 4) bytes, \(remaining) left") }
            let src = try bytes(n * 4)
            let scalars = [Float](unsafeUninitializedCapacity: n) { out, initialized in
                #if _endian(little)
                if n > 0 { UnsafeMutableRawBufferPointer(out).copyMemory(from: src) }
                #else
                for i in 0..<n {
                    out[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                }
                #endif
                initialized = n
            }
            return .tensor(Tensor(shape: shape, scalars: scalars))
        case .number:
            return .number(Double(bitPattern: try u64()))
        case .string:
            return .string(try string())
        case .list:
            let n = try count(unit: 1)
            var items: [Value] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(depth: depth + 1)) }
            return .list(items)
        case .record:
            let n = try count(unit: 9)
            var members: [String: Value] = [:]
            members.reserveCapacity(n)
            for _ in 0..<n {
                let key = try string()
                guard members[key] == nil else { throw failure("record key '\(key)' appears twice") }
                members[key] = try value(depth: depth + 1)
            }
            return .record(members)
        }
    }
}
