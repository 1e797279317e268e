import Foundation
import Testing

/// No file that a run reads may be written by the same run, decided from this run's paths before
/// anything runs (issue 18.1: a cached VideoSource meta named an earlier path, so an Encoder
/// replaced the clip it was reading).
@Suite(.serialized) struct InputProtectionTests {
    /// A graph that re-encodes `$video` to `$out`, and the clip it starts from.
    func workspace() throws -> Workspace {
        let ws = try Workspace(frames: 4)
        try ws.write("copy.json", """
        {"pgflow": 1, "vars": {"video": "clips/face.mp4", "out": "o/x.mp4"},
         "nodes": {"src": {"type": "VideoSource", "params": {"path": "$video"}},
                   "enc": {"type": "Encoder", "in": {"frames": "src.frames", "meta": "src.meta"}, "params": {"path": "$out"}}},
         "outputs": ["enc.file"]}
        """)
        let r = try pgflow(["exec", "graph.json"], in: ws.root)   // writes out/clip.mp4 from the PNG frames
        #expect(r.status == 0, "\(r.err)")
        try FileManager.default.createDirectory(at: ws.root.appendingPathComponent("clips"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: ws.root.appendingPathComponent("out/clip.mp4"),
                                         to: ws.root.appendingPathComponent("clips/face.mp4"))
        return ws
    }

    @Test func anEncoderNeverWritesOverTheClipItReadsEvenWhenTheSourceIsCached() throws {
        let ws = try workspace()
        defer { ws.remove() }
        #expect(try pgflow(["exec", "copy.json"], in: ws.root).status == 0)
        // Same content under a new name: VideoSource comes from the cache, its meta names clips/face.mp4.
        let clip = ws.root.appendingPathComponent("o/clip.mp4")
        try FileManager.default.copyItem(at: ws.root.appendingPathComponent("clips/face.mp4"), to: clip)
        let before = try Data(contentsOf: clip)
        for command in ["exec", "validate"] {
            let r = try pgflow([command, "copy.json", "--set", "video=o/clip.mp4", "--set", "out=o/clip.mp4"], in: ws.root)
            #expect(r.status == 2, "\(command): \(r.err)")
            #expect(r.err.contains("nodes.enc.params.path: node \"enc\" (Encoder), param \"path\" writes \(clip.standardizedFileURL.path), which node \"src\" (VideoSource), param \"path\" reads"), "\(r.err)")
        }
        #expect(try Data(contentsOf: clip) == before)
    }

    @Test func linksToTheInputAndTwoWritersOfOnePathAreRefused() throws {
        let ws = try workspace()
        defer { ws.remove() }
        let fm = FileManager.default
        let face = ws.root.appendingPathComponent("clips/face.mp4")
        let before = try Data(contentsOf: face)
        try fm.createSymbolicLink(atPath: ws.root.appendingPathComponent("sym.mp4").path, withDestinationPath: face.path)
        try fm.linkItem(at: face, to: ws.root.appendingPathComponent("hard.mp4"))
        try fm.createSymbolicLink(atPath: ws.root.appendingPathComponent("clipdir").path,
                                  withDestinationPath: ws.root.appendingPathComponent("clips").path)
        for out in ["sym.mp4", "hard.mp4", "clipdir/face.mp4"] {
            let r = try pgflow(["exec", "copy.json", "--set", "out=\(out)"], in: ws.root)
            #expect(r.status == 2 && r.err.contains("the run would destroy its own input"), "\(out): \(r.err)")
        }
        #expect(try Data(contentsOf: face) == before)
        // A PNG folder written over the folder of frames being read, or around it.
        for (out, words) in [("frames", "would destroy its own input"), (".", "which holds")] {
            try ws.write("png.json", """
            {"pgflow": 1, "nodes": {"src": {"type": "VideoSource", "params": {"path": "frames"}},
              "enc": {"type": "Encoder", "in": {"frames": "src.frames"}, "params": {"path": "\(out)", "codec": "png"}}},
             "outputs": ["enc.file"]}
            """)
            let r = try pgflow(["validate", "png.json"], in: ws.root)
            #expect(r.status == 2 && r.err.contains(words), "\(out): \(r.err)")
        }
        // Two writers of one path.
        try ws.write("two.json", """
        {"pgflow": 1, "nodes": {"src": {"type": "VideoSource", "params": {"path": "frames"}},
          "a": {"type": "Encoder", "in": {"frames": "src.frames"}, "params": {"path": "o/same.mp4"}},
          "b": {"type": "Encoder", "in": {"frames": "src.frames"}, "params": {"path": "o/../o/same.mp4"}}},
         "outputs": ["a.file", "b.file"]}
        """)
        let two = try pgflow(["validate", "two.json"], in: ws.root)
        #expect(two.status == 2 && two.err.contains("nodes.b.params.path: node \"b\" (Encoder), param \"path\" and node \"a\" (Encoder), param \"path\" both write"), "\(two.err)")
    }
}
