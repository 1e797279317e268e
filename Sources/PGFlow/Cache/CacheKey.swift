import Crypto
import Foundation

/// The content address of a cached result: a SHA-256 digest, written as 64 lowercase hex digits.
///
/// Keys are built with `KeyHasher` from everything that determines a node's outputs (docs/DESIGN.md §3),
/// so equal keys mean "same computation" across runs, processes and machines.
public struct CacheKey: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let hex: String

    /// Accepts exactly 64 hex digits (either case; stored lowercase), nil otherwise.
    public init?(hex: String) {
        let lower = hex.lowercased()
        guard lower.utf8.count == 64, lower.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            return nil
        }
        self.hex = lower
    }

    init(digest: SHA256.Digest) { hex = hexString(digest) }

    /// The first 12 hex digits, enough to tell entries apart in listings and messages.
    public var short: String { String(hex.prefix(12)) }
    public var description: String { hex }

    public static func < (a: CacheKey, b: CacheKey) -> Bool { a.hex < b.hex }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let key = CacheKey(hex: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "'\(text)' is not a SHA-256 hex key"))
        }
        self = key
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(hex)
    }
}

func hexString<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(64)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// Builds a `CacheKey` from labelled components.
///
/// Every component is written as a type tag, its length-prefixed label and its length-prefixed
/// (or fixed-width) value, so no two different component lists produce the same byte stream:
/// `("ab", "c")` and `("a", "bc")` differ, an absent frame differs from frame 0, and a string
/// "1" differs from the integer 1. The order of `add` calls matters; callers add components in
/// a fixed order (sorting names themselves where the source is unordered, e.g. input ports).
///
/// ```swift
/// var h = KeyHasher("node")
/// h.add("type", "Splat"); h.add("version", 2); h.add("params", params.canonical)
/// h.add("in.camera", cameraKey); h.add("frame", frame)
/// let key = h.finalize()
/// ```
public struct KeyHasher {
    private var sink: SHA256Sink

    /// `domain` separates kinds of keys (node results, stage checkpoints, …) so they can never
    /// collide even when their components happen to coincide.
    public init(_ domain: String) {
        sink = SHA256Sink()
        sink.writeString("pgflow-key-v1")
        sink.writeString(domain)
    }

    private enum Tag: UInt8 {
        case string = 1, int, absent, double, bool, key, bytes, value, json
    }

    private mutating func begin(_ tag: Tag, _ label: String) {
        sink.writeByte(tag.rawValue)
        sink.writeString(label)
    }

    public mutating func add(_ label: String, _ value: String) {
        begin(.string, label)
        sink.writeString(value)
    }

    public mutating func add(_ label: String, _ value: Int) {
        begin(.int, label)
        sink.writeUInt64(UInt64(bitPattern: Int64(value)))
    }

    /// An optional integer, e.g. the frame index (nil for static nodes), distinct from every value.
    public mutating func add(_ label: String, _ value: Int?) {
        if let value { add(label, value) } else { begin(.absent, label) }
    }

    /// Numbers by their exact bits: 0.1 and 0.1000000001 are different computations.
    public mutating func add(_ label: String, _ value: Double) {
        begin(.double, label)
        sink.writeUInt64(value.bitPattern)
    }

    public mutating func add(_ label: String, _ value: Bool) {
        begin(.bool, label)
        sink.writeByte(value ? 1 : 0)
    }

    /// Another key, e.g. the key of the node an input comes from, or the previous stage's key.
    public mutating func add(_ label: String, _ key: CacheKey) {
        begin(.key, label)
        sink.writeString(key.hex)
    }

    /// Raw bytes, length-prefixed.
    public mutating func add(_ label: String, bytes: Data) {
        begin(.bytes, label)
        sink.writeUInt64(UInt64(bytes.count))
        bytes.withUnsafeBytes { sink.write($0) }
    }

    /// A whole value (e.g. trainable parameter state), streamed through `ValueCodec` without
    /// building the encoded bytes in memory.
    public mutating func add(_ label: String, _ value: Value) {
        begin(.value, label)
        ValueCodec.write(value, into: &sink)
    }

    /// A JSON value by its canonical text (sorted keys), so key order in the graph file does not matter.
    public mutating func add(_ label: String, _ json: JSON) {
        begin(.json, label)
        sink.writeString(json.canonical)
    }

    /// The key for everything added so far (the hasher can keep going afterwards).
    public func finalize() -> CacheKey {
        CacheKey(digest: sink.hasher.finalize())
    }
}

/// Feeds bytes straight into SHA-256.
struct SHA256Sink: ByteSink {
    var hasher = SHA256()
    mutating func write(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }
}
