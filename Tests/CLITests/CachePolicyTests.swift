import Foundation
import Testing

/// Cache policy (issue 16): cheap, large per-frame results (Composite, Splat, posed Gaussians) are
/// never stored; their consumers compute the frames they read. A graph node can override it.
@Suite(.serialized) struct CachePolicyTests {
    static func graph(_ cache: String? = nil) -> String {
        let c = cache.map { ", \"cache\": \"\($0)\"" } ?? ""
        return """
        {"pgflow": 1, "nodes": {"src": {"type": "VideoSource", "params": {"path": "frames"}},
          "side": {"type": "Composite", "in": {"a": "src.frames", "b": "src.frames"}\(c)},
          "enc": {"type": "Encoder", "in": {"frames": "side.image"}, "params": {"path": "out/side", "codec": "png"}}},
         "outputs": ["enc.file"]}
        """
    }

    @Test func aRecomputedNodeIsNeverStoredAndItsConsumerStillGetsEveryFrame() throws {
        let ws = try Workspace(frames: 4)
        defer { ws.remove() }
        try ws.write("g.json", Self.graph())
        let first = try pgflow(["exec", "g.json", "--explain"], in: ws.root)
        #expect(first.status == 0, "\(first.err)")
        #expect(first.out.contains("side: not stored (cache policy recompute): computed inside what reads it"), "\(first.out)")
        #expect(try cacheEntries(of: "side", in: ws.root).isEmpty)
        #expect(try cacheEntries(of: "src", in: ws.root).count == 5, "4 frames and meta are kept")
        let pngs = try FileManager.default.contentsOfDirectory(atPath: ws.root.appendingPathComponent("out/side").path).filter { $0.hasSuffix(".png") }
        #expect(pngs.count == 4)
        // Nothing stored, yet the next run has nothing to do: what the user asked for is cached.
        let again = try pgflow(["exec", "g.json", "--explain"], in: ws.root)
        #expect(again.out.contains("all cached") && again.out.contains("side: not needed"), "\(again.out)")
        let status = try pgflow(["dot", "g.json", "--status"], in: ws.root)
        #expect(status.status == 0)

        // The graph's word wins over the type's.
        try ws.write("g.json", Self.graph("persist"))
        #expect(try pgflow(["exec", "g.json", "--force", "side"], in: ws.root).status == 0)
        #expect(try cacheEntries(of: "side", in: ws.root).count == 4)
    }

    @Test func onlyAMapNodeCanBeRecomputed() throws {
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        try ws.write("bad.json", """
        {"pgflow": 1, "nodes": {"src": {"type": "VideoSource", "params": {"path": "frames"}, "cache": "recompute"},
          "enc": {"type": "Encoder", "in": {"frames": "src.frames"}, "params": {"path": "o.mp4"}, "cache": "sometimes"}},
         "outputs": ["enc.file"]}
        """)
        let r = try pgflow(["validate", "bad.json"], in: ws.root)
        #expect(r.status == 2 && r.err.contains("nodes.src.cache: node \"src\" cannot be recomputed") && r.err.contains("nodes.enc.cache: cache must be"), "\(r.err)")
    }
}
