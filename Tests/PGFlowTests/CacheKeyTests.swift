import Foundation
import Testing
@testable import PGFlow
import PGTensor

@Suite struct CacheKeyTests {
    @Test func keysAreStableAcrossRunsAndVersions() {
        var h = KeyHasher("node")
        h.add("type", "Splat")
        h.add("version", 1)
        h.add("frame", 3)
        // A golden value: cache keys persist on disk, so the encoding must never drift silently.
        // If this changes on purpose, every cache is invalidated; bump CacheStore.formatVersion too.
        #expect(h.finalize().hex == "6fd94ce99c5d80dc3143ff1ea8379fe5fb04e7e2ee058cbe764cc878271b015b")
        var again = KeyHasher("node")
        again.add("type", "Splat")
        again.add("version", 1)
        again.add("frame", 3)
        #expect(again.finalize() == h.finalize())
    }

    @Test func componentsAreUnambiguous() {
        func key(_ build: (inout KeyHasher) -> Void, domain: String = "node") -> CacheKey {
            var h = KeyHasher(domain)
            build(&h)
            return h.finalize()
        }
        let keys: [CacheKey] = [
            key { $0.add("a", "bc") },
            key { $0.add("ab", "c") },
            key { $0.add("a", "b"); $0.add("c", "") },
            key { $0.add("frame", nil) },
            key { $0.add("frame", 0) },
            key { $0.add("frame", "0") },
            key { $0.add("frame", 0.0) },
            key { $0.add("frame", false) },
            key { $0.add("frame", bytes: Data([0])) },
            key { _ in },
            key({ $0.add("a", "bc") }, domain: "stage"),
            key { $0.add("v", Value.number(1)) },
            key { $0.add("v", Value.tensor(Tensor(scalar: 1))) },
        ]
        #expect(Set(keys).count == keys.count, "every component list gives its own key")
    }

    @Test func jsonParamsHashByCanonicalForm() {
        var a = KeyHasher("node")
        a.add("params", JSON.object([("b", .int(1)), ("a", .double(2))]))
        var b = KeyHasher("node")
        b.add("params", JSON.object([("a", .int(2)), ("b", .int(1))]))
        #expect(a.finalize() == b.finalize())
    }

    @Test func valuesHashByContent() {
        let r1 = Value.record(["x": .number(1), "y": .list([.string("s"), .tensor(Tensor(zeros: [2]))])])
        var members: [String: Value] = [:]
        members["y"] = .list([.string("s"), .tensor(Tensor(zeros: [2]))])
        members["x"] = .number(1)
        var a = KeyHasher("params"), b = KeyHasher("params")
        a.add("state", r1)
        b.add("state", Value.record(members))
        #expect(a.finalize() == b.finalize())
        var c = KeyHasher("params")
        c.add("state", Value.record(["x": .number(1), "y": .list([.string("s"), .tensor(Tensor(zeros: [1, 2]))])]))
        #expect(c.finalize() != a.finalize(), "shape is part of a tensor's content")
    }

    @Test func hexKeysValidate() throws {
        let hex = String(repeating: "ab", count: 32)
        #expect(CacheKey(hex: hex)?.hex == hex)
        #expect(CacheKey(hex: hex.uppercased())?.hex == hex)
        #expect(CacheKey(hex: String(hex.dropLast())) == nil)
        #expect(CacheKey(hex: String(repeating: "g", count: 64)) == nil)
        let key = try #require(CacheKey(hex: hex))
        #expect(key.short == "abababababab")
        let json = try JSONEncoder().encode([key])
        #expect(try JSONDecoder().decode([CacheKey].self, from: json) == [key])
    }

    @Test func sha256HelpersMatchKnownDigests() throws {
        #expect(sha256Hex(of: Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let dir = try makeCacheTestDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("abc.txt")
        try Data("abc".utf8).write(to: file)
        #expect(try sha256Hex(ofFile: file) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // Larger than one read chunk, to cover streaming.
        let big = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try big.write(to: file)
        #expect(try sha256Hex(ofFile: file) == sha256Hex(of: big))
        #expect(throws: CacheError.self) { try sha256Hex(ofFile: dir.appendingPathComponent("missing")) }
    }
}

/// A fresh temporary directory per test.
func makeCacheTestDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-cache-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
