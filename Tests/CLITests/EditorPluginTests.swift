import Foundation
import PGMedia
import PGTensor
import Testing

let repositoryRoot = repositoryNodes.deletingLastPathComponent()
let pluginPython = repositoryRoot.appendingPathComponent(".venv/bin/python3")
let pluginEnvironment = FileManager.default.isExecutableFile(atPath: pluginPython.path)
/// diffusers is in the full set (`setup-plugins.sh --full`), which CI installs.
let fullPluginEnvironment = pluginEnvironment && ((try? FileManager.default.contentsOfDirectory(
    atPath: repositoryRoot.appendingPathComponent(".venv/lib").path))?.contains { dir in
        FileManager.default.fileExists(atPath: repositoryRoot.appendingPathComponent(".venv/lib/\(dir)/site-packages/diffusers").path)
    } ?? false)
let sampleClip = repositoryRoot.appendingPathComponent("data/single_face.mp4")
let sampleClipPresent = FileManager.default.fileExists(atPath: sampleClip.path)

/// Each real editor edits frames of single_face.mp4: the output differs from the input, is the
/// same for the same seed, a second run is all cached, and a param change re-runs only the edit
/// and what follows it.
@Suite(.serialized) struct EditorPluginTests {
    /// 3 frames of the clip at 128² → EditorCall → 16-bit PNG folder.
    static func graph(_ plugin: String, _ params: String) -> String {
        """
        {"pgflow": 1, "vars": {"params": \(params)},
         "nodes": {"src": {"type": "VideoSource", "params": {"path": "\(sampleClip.path)", "size": [128, 128], "count": 3}},
                   "edit": {"type": "EditorCall", "in": {"image": "src.frames", "source": "src.frames"},
                            "params": {"plugin": "\(plugin)", "params": "$params", "seed": 7}},
                   "enc": {"type": "Encoder", "in": {"frames": "edit.image"}, "params": {"path": "out/edited", "codec": "png", "bits": 16}},
                   "src_enc": {"type": "Encoder", "in": {"frames": "src.frames"}, "params": {"path": "out/source", "codec": "png", "bits": 16}}},
         "outputs": ["enc.file", "src_enc.file"]}
        """
    }

    /// Runs the editor; checks what every editor must do. `changed` is a params text that must
    /// re-run only the edit.
    func check(_ plugin: String, _ params: String, changed: String, minimumChange: Float = 0.02,
               prepare: (Workspace) throws -> Void = { _ in }) throws {
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        try prepare(ws)
        try ws.write("e.json", Self.graph(plugin, params))
        let r = try pgflow(["exec", "e.json"], in: ws.root)
        #expect(r.status == 0, "\(plugin): \(r.err)")
        guard r.status == 0 else { return }
        let edited = try PNGImage.read(ws.root.appendingPathComponent("out/edited/frame_000001.png")).pixels
        let source = try PNGImage.read(ws.root.appendingPathComponent("out/source/frame_000001.png")).pixels
        #expect(edited.shape == source.shape)
        let change = zip(edited.scalars, source.scalars).map { abs($0 - $1) }.reduce(0, +) / Float(edited.count)
        #expect(change > minimumChange, "\(plugin): mean change \(change)")
        let last = ws.root.appendingPathComponent("out/edited/frame_000002.png")
        let bytes = try Data(contentsOf: last)

        // The same seed gives the same frames: recompute everything in a second cache.
        let again = try pgflow(["exec", "e.json", "--cache-dir", "cache2"], in: ws.root)
        #expect(again.status == 0, "\(again.err)")
        #expect(try Data(contentsOf: last) == bytes, "\(plugin) is deterministic for a fixed seed")

        let cached = try pgflow(["exec", "e.json", "--explain"], in: ws.root)
        #expect(cached.out.contains("all cached"), "\(plugin): \(cached.out)")

        let edit = try pgflow(["exec", "e.json", "--explain", "--set", "params=\(changed)"], in: ws.root)
        #expect(edit.status == 0, "\(edit.err)")
        #expect(edit.out.contains("edit: ran because param params changed") && edit.out.contains("enc: ran because")
                && edit.out.contains("src_enc: cached") && !edit.out.contains("src: ran"), "\(plugin): \(edit.out)")
    }

    @Test(.enabled(if: sampleClipPresent, "needs data/single_face.mp4: bash Scripts/fetch-sample.sh"))
    func theBuiltInLUTGradesWithoutPython() throws {
        // A warm grade: red up, blue down, written as a .cube file with red fastest.
        var lines = ["TITLE \"warm\"", "LUT_3D_SIZE 5"]
        for b in 0..<5 { for g in 0..<5 { for r in 0..<5 {
            lines.append("\(min(1, Double(r) / 4 * 1.25)) \(Double(g) / 4) \(Double(b) / 4 * 0.6)")
        } } }
        try check("lut", #"{"lut": "warm.cube"}"#, changed: #"{"lut": "warm.cube", "strength": 0.5}"#) { ws in
            try ws.write("warm.cube", lines.joined(separator: "\n"))
        }
        // A damaged file is named with its line.
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        try ws.write("bad.cube", "LUT_3D_SIZE 2\n0 0 0\n1 0 zero\n")
        try ws.write("b.json", Self.graph("lut", #"{"lut": "bad.cube"}"#).replacingOccurrences(of: "out/", with: "bad/"))
        let b = try pgflow(["exec", "b.json"], in: ws.root)
        #expect(b.status == 1 && b.err.contains("bad.cube:3: expected three finite numbers, got \"1 0 zero\""), "\(b.err)")
    }

    @Test(.enabled(if: pluginEnvironment && sampleClipPresent, "needs the plugin environment (bash Scripts/setup-plugins.sh) and data/single_face.mp4"))
    func styleTransfersABuiltInStyle() throws {
        try check("style", #"{"style": "19"}"#, changed: #"{"style": "3"}"#)
    }

    @Test(.enabled(if: pluginEnvironment && sampleClipPresent, "needs the plugin environment (bash Scripts/setup-plugins.sh) and data/single_face.mp4"))
    func openCVStylises() throws {
        try check("opencv", #"{"filter": "stylization"}"#, changed: #"{"filter": "pencilSketch"}"#)
    }

    @Test(.enabled(if: pluginEnvironment && sampleClipPresent, "needs the plugin environment (bash Scripts/setup-plugins.sh) and data/single_face.mp4"))
    func aStyleReferenceImageIsPartOfTheKeyByContent() throws {
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        // Two different pictures as the style: one of the workspace frames, then a colour field.
        try FileManager.default.copyItem(at: ws.root.appendingPathComponent("frames/frame_000.png"), to: ws.root.appendingPathComponent("ref.png"))
        try ws.write("e.json", Self.graph("style", #"{"reference": "ref.png"}"#))
        let r = try pgflow(["exec", "e.json"], in: ws.root)
        #expect(r.status == 0, "\(r.err)")
        var other = Tensor(zeros: [3, 64, 64])
        for y in 0..<64 { for x in 0..<64 { other[0, y, x] = Float((x / 8 + y / 8) % 2); other[2, y, x] = 0.8 } }
        try PNGImage.write(other, to: ws.root.appendingPathComponent("ref.png"))
        let again = try pgflow(["exec", "e.json", "--explain"], in: ws.root)
        #expect(again.status == 0 && again.out.contains("edit: ran because"), "new reference content re-runs the edit: \(again.out)")
    }

    @Test(.enabled(if: fullPluginEnvironment && sampleClipPresent, "needs the full plugin environment (bash Scripts/setup-plugins.sh --full) and data/single_face.mp4"))
    func instructPix2PixRunsTheRealDiffusersPathOnATinyPipeline() throws {
        let model = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-tiny-ip2p-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: model) }
        let p = Process()
        p.executableURL = pluginPython
        p.arguments = [testPlugins.appendingPathComponent("make_tiny_ip2p.py").path, model.path]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "make_tiny_ip2p.py failed")
        try check("ip2p", #"{"model": "\#(model.path)", "prompt": "turn him into a statue", "size": 64, "steps": 3}"#,
                  changed: #"{"model": "\#(model.path)", "prompt": "make it snow", "size": 64, "steps": 3}"#)
    }
}
