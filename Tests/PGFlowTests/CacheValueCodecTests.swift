import Foundation
import Testing
@testable import PGFlow
import PGTensor

/// One value of every case, nested, with awkward contents (NaN, empty tensor, unicode).
func everyValueCase() -> [String: Value] {
    [
        "tensor": .tensor(Tensor(shape: [2, 3], scalars: [1, -2, 3.5, .infinity, -0.0, 1e-30])),
        "scalar": .tensor(Tensor(scalar: 7)),
        "empty": .tensor(Tensor(zeros: [0, 4])),
        "number": .number(-123.456e7),
        "nan": .number(.nan),
        "string": .string("héllo, 世界 \u{0}\n"),
        "emptyString": .string(""),
        "list": .list([.number(1), .string("two"), .list([]), .tensor(Tensor(zeros: [1]))]),
        "record": .record([
            "fx": .number(500), "world_to_camera": .tensor(Tensor(repeating: 0.5, shape: [4, 4])),
            "nested": .record(["deeper": .list([.record([:])])]),
        ]),
    ]
}

/// Value equality that treats NaN as equal to NaN with the same bits.
func sameValue(_ a: Value, _ b: Value) -> Bool {
    switch (a, b) {
    case let (.tensor(x), .tensor(y)):
        return x.shape == y.shape && zip(x.scalars, y.scalars).allSatisfy { $0.bitPattern == $1.bitPattern }
    case let (.number(x), .number(y)): return x.bitPattern == y.bitPattern
    case let (.string(x), .string(y)): return x == y
    case let (.list(x), .list(y)): return x.count == y.count && zip(x, y).allSatisfy { sameValue($0, $1) }
    case let (.record(x), .record(y)):
        return x.keys.sorted() == y.keys.sorted() && x.allSatisfy { k, v in y[k].map { sameValue(v, $0) } ?? false }
    default: return false
    }
}

@Suite struct CacheValueCodecTests {
    @Test func roundTripsEveryCase() throws {
        let outputs = everyValueCase()
        let decoded = try ValueCodec.decode(outputs: ValueCodec.encode(outputs: outputs))
        #expect(sameValue(.record(decoded), .record(outputs)))
        for (name, value) in outputs {
            #expect(sameValue(try ValueCodec.decode(ValueCodec.encode(value)), value), "\(name)")
        }
    }

    @Test func encodingIsCanonical() {
        var a: [String: Value] = [:], b: [String: Value] = [:]
        for i in 0..<50 { a["k\(i)"] = .number(Double(i)) }
        for i in (0..<50).reversed() { b["k\(i)"] = .number(Double(i)) }
        #expect(ValueCodec.encode(outputs: a) == ValueCodec.encode(outputs: b))
        #expect(ValueCodec.encode(.record(a)) == ValueCodec.encode(outputs: a))
    }

    @Test func malformedBytesThrowInsteadOfCrashing() {
        let bytes = ValueCodec.encode(outputs: everyValueCase())
        // Every strict prefix is malformed.
        for n in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 300)) {
            #expect(throws: CacheError.self) { try ValueCodec.decode(outputs: bytes.prefix(n)) }
        }
        // Huge counts and ranks must not allocate or trap.
        var huge = Data([4])  // list
        huge.append(contentsOf: [UInt8](repeating: 0xFF, count: 8))
        #expect(throws: CacheError.self) { try ValueCodec.decode(huge) }
        var tensor = Data([1, 0xFF, 0xFF, 0xFF, 0x7F])  // rank 2^31-1
        tensor.append(contentsOf: [UInt8](repeating: 0, count: 16))
        #expect(throws: CacheError.self) { try ValueCodec.decode(tensor) }
        var overflow = Data([1, 2, 0, 0, 0])  // two dimensions whose product overflows
        overflow.append(contentsOf: [UInt8](repeating: 0xFF, count: 7) + [0x3F])
        overflow.append(contentsOf: [UInt8](repeating: 0xFF, count: 7) + [0x3F])
        #expect(throws: CacheError.self) { try ValueCodec.decode(overflow) }
        #expect(throws: CacheError.self) { try ValueCodec.decode(Data([9])) }
        #expect(throws: CacheError.self) { try ValueCodec.decode(Data(repeating: 4, count: 10_000)) }
        #expect(throws: CacheError.self) { try ValueCodec.decode(outputs: ValueCodec.encode(.number(1))) }
        // Random garbage: whatever happens, no trap.
        var rng = SplitMix64(seed: 3)   // seeded: a trap reproduces
        for _ in 0..<200 {
            let garbage = Data((0..<Int.random(in: 1...64, using: &rng)).map { _ in UInt8.random(in: 0...5, using: &rng) })
            _ = try? ValueCodec.decode(garbage)
        }
    }
}
