import Foundation
import PGMedia
import PGTensor
import Testing

/// The plugin folder the tests add: misbehave (fails as asked), identity, bad_hello.
let testPlugins = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/plugins")

/// Every way a plugin can fail gives exit 1 and an error naming plugin, node and frame and what
/// was expected; frames finished before stay cached; a crashed worker is restarted once.
@Suite(.serialized) struct PluginFailureTests {
    static let env = ["PGFLOW_PLUGIN_PATH": testPlugins.path]

    /// 4 frames → EditorCall(misbehave, mode) → PNG folder. `failFrom`: frames before it run
    /// with mode ok, so that they are cached before the failure.
    static func graph(mode: String, plugin: String = "misbehave") -> String {
        """
        {"pgflow": 1, "vars": {"mode": "\(mode)"},
         "nodes": {"src": {"type": "VideoSource", "params": {"path": "frames", "count": 4}},
                   "edit": {"type": "EditorCall", "in": {"image": "src.frames"}, "params": {"plugin": "\(plugin)", "params": {"mode": "$mode"}}},
                   "enc": {"type": "Encoder", "in": {"frames": "edit.image"}, "params": {"path": "out/edited", "codec": "png", "bits": 16}}},
         "outputs": ["enc.file"]}
        """
    }

    @Test func aWorkingPluginEditsEveryFrameThroughOneWorkerAndIsCachedAfter() throws {
        let ws = try Workspace(frames: 4)
        defer { ws.remove() }
        try ws.write("p.json", Self.graph(mode: "ok"))
        let r = try pgflow(["exec", "p.json", "--threads", "2"], in: ws.root, environment: Self.env)
        #expect(r.status == 0, "\(r.err)")
        // The edit inverts: frame 0 of the output is 1 − frame 0 of the input (16-bit PNG: lossless enough).
        let src = try PNGImage.read(ws.root.appendingPathComponent("frames/frame_000.png")).pixels
        let out = try PNGImage.read(ws.root.appendingPathComponent("out/edited/frame_000000.png")).pixels
        let worst = zip(src.scalars, out.scalars).map { abs(1 - $0 - $1) }.max() ?? 1
        #expect(worst < 1e-4, "worst \(worst)")
        // One worker served all frames: its log has one start line.
        let log = try String(contentsOf: ws.root.appendingPathComponent(".pgflow/cache/logs/plugin-misbehave.log"), encoding: .utf8)
        #expect(log.components(separatedBy: "pgflow: worker started").count - 1 == 1, "\(log)")
        let again = try pgflow(["exec", "p.json", "--explain"], in: ws.root, environment: Self.env)
        #expect(again.out.contains("all cached"), "\(again.out)")
    }

    @Test(arguments: [
        ("crash", "the worker exited with status 3"),
        ("hang", "no answer to the edit of frame 0 within its timeout of 3 s; the worker was killed"),
        ("garbage", "with a line that is not a JSON object"),
        ("wrong_shape", "its output has shape [32, 48, 4], expected [32, 48, 3]"),
        ("wrong_size", "its output has shape [16, 24, 3], expected [32, 48, 3]"),
        ("nan", "NaN or infinite values"),
        ("no_file", "wrote no output file"),
        ("error", "failed the edit of frame 0: RuntimeError: misbehave was asked to fail (mode error)"),
    ])
    func eachFailureIsNamedAndExits1(mode: String, words: String) throws {
        let ws = try Workspace(frames: 4)
        defer { ws.remove() }
        try ws.write("p.json", Self.graph(mode: mode))
        let r = try pgflow(["exec", "p.json", "--threads", "1"], in: ws.root, environment: Self.env)
        #expect(r.status == 1, "\(mode): exit \(r.status) \(r.err)")
        #expect(r.err.contains("node \"edit\" (EditorCall) failed at frame 0: plugin \"misbehave\""), "\(mode): \(r.err)")
        #expect(r.err.contains(words), "\(mode): \(r.err)")
        #expect(!r.err.contains("Fatal error"), "\(mode): a trap")
        if mode == "crash" { #expect(r.err.contains("crashing on frame 0 as asked"), "stderr is quoted: \(r.err)") }
    }

    @Test func framesEditedBeforeAFailureStayCached() throws {
        let ws = try Workspace(frames: 4)
        defer { ws.remove() }
        try ws.write("p.json", """
        {"pgflow": 1, "vars": {"mode": "ok"},
         "nodes": {"src": {"type": "VideoSource", "params": {"path": "frames", "count": 2}},
                   "edit": {"type": "EditorCall", "in": {"image": "src.frames"}, "params": {"plugin": "misbehave", "params": {"mode": "$mode"}}}},
         "outputs": ["edit.image"]}
        """)
        // Edit frames 0–1 first; then ask for 4 frames where the new ones crash.
        #expect(try pgflow(["exec", "p.json", "--until", "edit"], in: ws.root, environment: Self.env).status == 0)
        let text = try String(contentsOf: ws.root.appendingPathComponent("p.json"), encoding: .utf8)
        try ws.write("p.json", text.replacingOccurrences(of: "\"count\": 2", with: "\"count\": 4"))
        let count = try cacheEntries(of: "edit", in: ws.root).count
        // Frames 0–1 are keyed by their source frames, which do not change with count.
        let r = try pgflow(["exec", "p.json", "--until", "edit", "--set", "mode=crash", "--explain"], in: ws.root, environment: Self.env)
        #expect(r.status == 1)
        #expect(try cacheEntries(of: "edit", in: ws.root).count >= count, "finished frames are kept")
    }

    @Test func aWorkerThatCrashesOnceIsRestartedAndTheRunSucceeds() throws {
        let ws = try Workspace(frames: 4)
        defer { ws.remove() }
        try ws.write("p.json", Self.graph(mode: "crash_once"))
        let r = try pgflow(["exec", "p.json", "--threads", "1"], in: ws.root, environment: Self.env)
        #expect(r.status == 0, "\(r.err)")
        let log = try String(contentsOf: ws.root.appendingPathComponent(".pgflow/cache/logs/plugin-misbehave.log"), encoding: .utf8)
        #expect(log.contains("restarting it once"), "\(log)")
    }

    @Test func aBadHandshakeAMissingEnvironmentAndBadParamsAreClear() throws {
        let ws = try Workspace(frames: 4)
        defer { ws.remove() }
        try ws.write("h.json", Self.graph(mode: "ok", plugin: "bad_hello"))
        let h = try pgflow(["exec", "h.json"], in: ws.root, environment: Self.env)
        #expect(h.status == 1 && h.err.contains("its handshake reports protocol 1, name \"bad_hello\", version \"9.9.9\", but the manifest"), "\(h.err)")

        // A Python plugin without its environment says how to make it.
        try ws.write("s.json", """
        {"pgflow": 1, "nodes": {"src": {"type": "VideoSource", "params": {"path": "frames"}},
          "edit": {"type": "EditorCall", "in": {"image": "src.frames"}, "params": {"plugin": "opencv"}}}, "outputs": ["edit.image"]}
        """)
        let s = try pgflow(["exec", "s.json"], in: ws.root, environment: ["PGFLOW_PYTHON": "/nonexistent/python3"])
        #expect(s.status == 1 && s.err.contains("plugin \"opencv\": needs the plugin environment") && s.err.contains("Scripts/setup-plugins.sh"), "\(s.err)")

        // Unknown plugins and params are validation errors with their place in the file.
        try ws.write("v.json", """
        {"pgflow": 1, "nodes": {"src": {"type": "VideoSource", "params": {"path": "frames"}},
          "a": {"type": "EditorCall", "in": {"image": "src.frames"}, "params": {"plugin": "stlye"}},
          "b": {"type": "EditorCall", "in": {"image": "src.frames"}, "params": {"plugin": "misbehave", "params": {"mood": "ok"}}},
          "c": {"type": "EditorCall", "in": {"image": "src.frames"}, "params": {"plugin": "misbehave", "params": {"mode": "sulk"}}}},
         "outputs": ["a.image", "b.image", "c.image"]}
        """)
        let v = try pgflow(["validate", "v.json"], in: ws.root, environment: Self.env)
        #expect(v.status == 2, "\(v.err)")
        #expect(v.err.contains("v.json:2:83: nodes.a.params.plugin: node \"a\" (EditorCall): no plugin \"stlye\" in the catalog; did you mean \"style\"?"), "\(v.err)")
        #expect(v.err.contains("nodes.b.params.params.mood: plugin \"misbehave\" has no param \"mood\"; did you mean \"mode\"?"), "\(v.err)")
        #expect(v.err.contains("nodes.c.params.params.mode: param \"mode\" of plugin \"misbehave\" (node \"c\") should be one of"), "\(v.err)")
    }
}
