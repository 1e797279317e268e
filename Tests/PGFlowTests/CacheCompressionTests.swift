import Foundation
import Testing
@testable import PGFlow
import PGTensor

/// Large payloads are stored deflated when that pays (decoded video frames: about 8×), small
/// ones as they are; entries of the previous format (1) are still read.
@Suite struct CacheCompressionTests {
    @Test func aVideoLikeFrameIsStoredCompressedAndReadBackExactly() throws {
        let dir = try makeCacheTestDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try CacheStore(directory: dir)
        // 8-bit samples over a flat background, as VideoSource stores them.
        var frame = Tensor(repeating: 1, shape: [3, 128, 128])
        for y in 32..<96 { for x in 40..<88 { for c in 0..<3 { frame[c, y, x] = Float((x * 3 + y + c * 50) % 256) / 255 } } }
        var h = KeyHasher("test"); h.add("n", "frame")
        let k = h.finalize()
        try store.store(k, ["frames": .tensor(frame)], info: EntryInfo(nodeID: "src", nodeType: "VideoSource", frame: 0, graph: "g"))
        let size = try FileManager.default.attributesOfItem(atPath: store.path(for: k))[.size] as! Int
        #expect(size < frame.count, "stored \(size) bytes for \(frame.count * 4)")
        #expect(store.load(k)?["frames"] == .tensor(frame))
        #expect(store.verify().isClean)
        // Noise does not compress: stored as it is.
        var rng = SplitMix64(seed: 1)
        let noise = Tensor(shape: [3, 64, 64], scalars: (0..<(3 * 64 * 64)).map { _ in Float.random(in: 0...1, using: &rng) })
        var h2 = KeyHasher("test"); h2.add("n", "noise")
        try store.store(h2.finalize(), ["x": .tensor(noise)], info: EntryInfo(nodeID: "n", nodeType: "Noise", frame: 0, graph: "g"))
        #expect(store.load(h2.finalize())?["x"] == .tensor(noise))
    }

    /// Large payloads are judged by three 64 KB spans before the whole is deflated: trained floats
    /// (noise to zlib) are stored at once, a frame with flat regions still compresses.
    @Test func largePayloadsAreJudgedByASample() throws {
        var rng = SplitMix64(seed: 5)
        let noise = Tensor(shape: [1 << 18], scalars: (0..<(1 << 18)).map { _ in Float.random(in: -1...1, using: &rng) })
        let stored = CacheStore.storedPayload(ValueCodec.encode(outputs: ["x": .tensor(noise)]))
        #expect(stored.first == 0, "noise is stored as it is")
        var frame = Tensor(repeating: 0.5, shape: [3, 256, 256])
        for y in 64..<192 { for x in 64..<192 { for c in 0..<3 { frame[c, y, x] = Float((x + 2 * y + c) % 256) / 255 } } }
        let encoded = ValueCodec.encode(outputs: ["frames": .tensor(frame)])
        let packed = CacheStore.storedPayload(encoded)
        #expect(packed.first == 1 && packed.count < encoded.count / 4, "\(packed.count) bytes for \(encoded.count)")
    }

    @Test func anEntryOfFormatOneIsStillRead() throws {
        let dir = try makeCacheTestDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try CacheStore(directory: dir)
        var h = KeyHasher("test"); h.add("n", "old")
        let k = h.finalize()
        // Written as format 1 did: the encoding itself as the payload.
        let payload = ValueCodec.encode(outputs: ["n": .number(42)])
        let header = try CacheStore.encodeHeader(key: k, info: EntryInfo(nodeID: "a", nodeType: "T", frame: nil, graph: "g"))
        var d = Data("PGFC".utf8)
        withUnsafeBytes(of: UInt32(1).littleEndian) { d.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(header.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(header)
        withUnsafeBytes(of: UInt64(payload.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(CacheStore.checksum(header, payload))
        d.append(payload)
        let path = store.path(for: k)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try d.write(to: URL(fileURLWithPath: path))
        #expect(store.load(k)?["n"] == .number(42))
    }
}
