import Foundation
import Testing

/// What a new user's trial found (issue 18, items 4–8): each test failed before its fix.
@Suite(.serialized) struct NewUserDefectTests {
    // 5. Exit statuses agree with the README: 2 for a bad command line, 130 when interrupted.
    @Test func aCommandLineThatDoesNotParseExits2AndVersionPrints() throws {
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        for args in [["exec"], ["exec", "graph.json", "--bogus"], ["exec", "graph.json", "--set", "novalue"], ["frobnicate"]] {
            let r = try pgflow(args, in: ws.root)
            #expect(r.status == 2, "\(args): \(r.status) \(r.err)")
        }
        let v = try pgflow(["--version"], in: ws.root)
        #expect(v.status == 0 && v.out.hasPrefix("pgflow "), "\(v.out)")
    }

    /// Starts `pgflow exec` on a long encode and interrupts it `times` times once its output is
    /// being written; returns the exit status and the out/ folder's contents afterwards.
    func interrupted(times: Int) throws -> (status: Int32, left: [String]) {
        let ws = try Workspace(frames: 40)
        defer { ws.remove() }
        try ws.write("slow.json", """
        {"pgflow": 1, "nodes": {"src": {"type": "VideoSource", "params": {"path": "frames", "size": [640, 480], "fit": "stretch"}},
          "enc": {"type": "Encoder", "in": {"frames": "src.frames"}, "params": {"path": "out/slow.mp4", "preset": "veryslow", "crf": 0}}},
         "outputs": ["enc.file"]}
        """)
        let p = Process()
        p.executableURL = pgflowBinary
        p.arguments = ["exec", "slow.json", "--threads", "1"]
        p.currentDirectoryURL = ws.root
        var env = ProcessInfo.processInfo.environment
        env["PGFLOW_NODES"] = repositoryNodes.path
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let out = ws.root.appendingPathComponent("out")
        let deadline = Date().addingTimeInterval(60)
        // Wait until the encoder has opened its staging file.
        while Date() < deadline && p.isRunning
                && !((try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []).contains(where: { $0.contains(".partial-") }) {
            usleep(20_000)
        }
        for _ in 0..<times { kill(p.processIdentifier, SIGINT); usleep(50_000) }
        p.waitUntilExit()
        return (p.terminationStatus, ((try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []).sorted())
    }

    @Test func anInterruptedRunExits130AndLeavesNoPartialFile() throws {
        let once = try interrupted(times: 1)
        #expect(once.status == 130 && once.left.isEmpty, "\(once)")
        let twice = try interrupted(times: 2)
        #expect(twice.status == 130 && twice.left.isEmpty, "\(twice)")
    }

    // 4. --json ends with one event a script can read: what was written, with SHA-256, or the error.
    @Test func jsonEndsWithADoneEventForSuccessAndForEveryKindOfError() throws {
        let ws = try Workspace(frames: 2)
        defer { ws.remove() }
        func last(_ r: Result) throws -> [String: Any] {
            let line = r.out.split(separator: "\n").last.map(String.init) ?? ""
            return try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
        }
        let ok = try pgflow(["exec", "graph.json", "--json"], in: ws.root)
        let done = try last(ok)
        #expect(ok.status == 0 && done["event"] as? String == "done" && done["status"] as? String == "ok", "\(ok.out)")
        let files = done["files"] as? [[String: Any]] ?? []
        #expect(files.first?["path"] as? String == ws.root.appendingPathComponent("out/clip.mp4").path)
        #expect((files.first?["sha256"] as? String)?.count == 64)

        try ws.write("bad.json", #"{"pgflow": 1, "nodes": {"src": {"type": "VideoSourse"}}, "outputs": ["src.frames"]}"#)
        let bad = try pgflow(["exec", "bad.json", "--json"], in: ws.root)
        let failed = try last(bad)
        #expect(bad.status == 2 && failed["status"] as? String == "error" && failed["kind"] as? String == "invalid" && failed["exit"] as? Int == 2, "\(bad.out)")
        let problem = (failed["problems"] as? [[String: Any]])?.first
        #expect(problem?["path"] as? String == "nodes.src.type" && problem?["line"] as? Int == 1, "\(failed)")
    }

    // 6. Files a stage cannot write are named with the stage and setting; a cache folder that
    // cannot be made suggests --cache-dir; looking at a cache never creates one.
    @Test func unwritablePlacesAreNamedAndLookingCreatesNothing() throws {
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        try ws.write("blocker", "a file where a folder would go")
        let r = try pgflow(["exec", "graph.json", "--cache-dir", "blocker/cache"], in: ws.root)
        #expect(r.status == 1 && r.err.contains("blocker is a file, not a folder") && r.err.contains("--cache-dir"), "\(r.err)")
        #expect(!r.err.contains("NSCocoaErrorDomain"))
        let ls = try pgflow(["cache", "ls", "--cache-dir", "nowhere/cache"], in: ws.root)
        #expect(ls.status == 0, "\(ls.err)")
        #expect(!FileManager.default.fileExists(atPath: ws.root.appendingPathComponent("nowhere").path))

        try ws.write("train.json", """
        {"pgflow": 1, "nodes": {
           "noise": {"type": "Noise", "params": {"channels": 4, "width": 8, "height": 8}},
           "render": {"type": "NeuralRenderer", "in": {"features": "noise.image"}, "params": {"channels": 4, "hidden": [4]}},
           "photo": {"type": "VideoSource", "params": {"path": "frames", "size": [8, 8]}},
           "loss": {"type": "Loss", "in": {"image": "render.rgb", "target": "photo.frames"}, "params": {"w_l1": 1}}},
         "stages": [{"name": "fit", "optimize": {"loss": "loss.loss", "train": ["render"], "steps": 2, "history": "blocker/h.csv"}}]}
        """)
        let h = try pgflow(["exec", "train.json"], in: ws.root)
        #expect(h.status == 1 && h.err.contains("stage \"fit\", history (stages[0].optimize.history)") && h.err.contains("blocker is a file, not a folder"), "\(h.err)")
        #expect(!h.err.contains("NSCocoaErrorDomain"))
    }

    // 7. --set paths are relative to the current folder; --set x=null drops an optional param;
    // --force reruns the node and what it feeds.
    @Test func setAndForceDoWhatTheySay() throws {
        let ws = try Workspace(frames: 2)
        defer { ws.remove() }
        try ws.write("v.json", """
        {"pgflow": 1, "vars": {"video": "frames", "matte": "frames", "out": "out/v.mp4"},
         "nodes": {"src": {"type": "VideoSource", "params": {"path": "$video", "matte": "$matte"}},
                   "enc": {"type": "Encoder", "in": {"frames": "src.frames"}, "params": {"path": "$out", "codec": "png"}}},
         "outputs": ["enc.file"]}
        """)
        let sub = ws.root.appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        let r = try pgflow(["exec", "../v.json", "--set", "video=../frames", "--set", "matte=null", "--set", "out=here"], in: sub)
        #expect(r.status == 0, "\(r.err)")
        #expect(FileManager.default.fileExists(atPath: sub.appendingPathComponent("here/frame_000000.png").path), "written relative to the shell's folder")
        #expect(!r.err.contains("null"))

        #expect(try pgflow(["exec", "graph.json"], in: ws.root).status == 0)
        let f = try pgflow(["exec", "graph.json", "--force", "src", "--explain"], in: ws.root)
        #expect(f.out.contains("src: ran because forced (--force src)") && f.out.contains("enc: ran because forced: downstream of --force src"), "\(f.out)")
    }

    // 8. Small things: a size needs a unit, static outputs print, node names get a "did you mean".
    @Test func sizesNeedUnitsStaticOutputsPrintAndNodeNamesAreSuggested() throws {
        let ws = try Workspace(frames: 2)
        defer { ws.remove() }
        #expect(try pgflow(["exec", "graph.json"], in: ws.root).status == 0)
        let gc = try pgflow(["cache", "gc", "--max-size", "100", "--graph", "graph.json"], in: ws.root)
        #expect(gc.status == 2 && gc.err.contains("with its unit"), "\(gc.err)")
        // exec keeps the store under a limit (default 20G): a tiny one empties it after the run.
        let tight = try pgflow(["exec", "graph.json", "--cache-limit", "1K"], in: ws.root)
        #expect(tight.status == 0 && tight.err.contains("least recently used") && tight.err.contains("--cache-limit"), "\(tight.err)")
        #expect(try pgflow(["exec", "graph.json", "--cache-limit", "100"], in: ws.root).status == 2)
        #expect(try pgflow(["exec", "graph.json", "--cache-limit", "none"], in: ws.root).status == 0)
        #expect(try pgflow(["exec", "graph.json", "--explain"], in: ws.root).out.contains("all cached"))
        try ws.write("meta.json", """
        {"pgflow": 1, "nodes": {"src": {"type": "VideoSource", "params": {"path": "frames"}}}, "outputs": ["src.meta"]}
        """)
        let m = try pgflow(["exec", "meta.json"], in: ws.root)
        #expect(m.status == 0 && m.out.contains("src.meta = {") && m.out.contains("\"frame_count\": 2"), "\(m.out)")
        let n = try pgflow(["nodes", "Splt"], in: ws.root)
        #expect(n.status == 2 && n.err.contains("did you mean \"Splat\""), "\(n.err)")
        #expect(try pgflow(["nodes", "splat"], in: ws.root).out.hasPrefix("Splat"))
    }
}

/// `pgflow report` after `pgflow exec`: one page with the exact command, and the JSON beside it.
@Suite struct ReportCLITests {
    @Test func reportAfterExecShowsTheCommandAndWritesTheJSON() throws {
        let ws = try Workspace(frames: 3)
        defer { ws.remove() }
        #expect(try pgflow(["exec", "graph.json", "--set", "crf=20"], in: ws.root).status == 0)
        let r = try pgflow(["report", "graph.json", "-o", "r/page.html"], in: ws.root)
        #expect(r.status == 0 && r.out.contains("wrote") && r.out.contains("page.json"), "\(r.out) \(r.err)")
        let page = try String(contentsOf: ws.root.appendingPathComponent("r/page.html"), encoding: .utf8)
        #expect(page.contains("pgflow exec graph.json --set crf=20") && page.contains("<svg"), "the command and the graph")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: ws.root.appendingPathComponent("r/page.json"))) as? [String: Any]
        #expect(json?["command"] as? String == "pgflow exec graph.json --set crf=20")
        #expect((json?["nodes"] as? [[String: Any]])?.count == 2)
    }
}

/// Issue 16: an Encoder writing a PNG folder re-ran on every exec ("output file was changed"),
/// because it and the cache hashed folders two different ways.
@Test func anEncodersPNGFolderIsReusedOnTheNextRun() throws {
    let ws = try Workspace(frames: 3)
    defer { ws.remove() }
    try ws.write("png.json", """
    {"pgflow": 1, "nodes": {"src": {"type": "VideoSource", "params": {"path": "frames"}},
      "enc": {"type": "Encoder", "in": {"frames": "src.frames"}, "params": {"path": "out/pngs", "codec": "png"}}},
     "outputs": ["enc.file"]}
    """)
    #expect(try pgflow(["exec", "png.json"], in: ws.root).status == 0)
    let again = try pgflow(["exec", "png.json", "--explain"], in: ws.root)
    #expect(again.out.contains("all cached") && again.out.contains("enc: cached"), "\(again.out)")
}
