import Foundation
import PGMedia
import PGTensor
import Testing

/// The `pgflow` binary SwiftPM built next to this test bundle.
let pgflowBinary: URL = {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for dir in [here, here.deletingLastPathComponent()] {
        let candidate = dir.appendingPathComponent("pgflow")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent(".build/debug/pgflow")
}()
let repositoryNodes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Nodes")

struct Result { var status: Int32; var out: String; var err: String }

/// Runs pgflow the way a user does; stdin is closed, so it is never a terminal.
func pgflow(_ args: [String], in dir: URL, environment: [String: String] = [:]) throws -> Result {
    let p = Process()
    p.executableURL = pgflowBinary
    p.arguments = args
    p.currentDirectoryURL = dir
    var env = ProcessInfo.processInfo.environment
    env["PGFLOW_NODES"] = repositoryNodes.path
    env.merge(environment) { _, new in new }
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Drain both pipes while the process runs so a chatty run cannot block on a full pipe.
    let outData = Mutexed(Data()), errData = Mutexed(Data())
    let group = DispatchGroup()
    for (pipe, sink) in [(out, outData), (err, errData)] {
        group.enter()
        DispatchQueue.global().async { sink.set(pipe.fileHandleForReading.readDataToEndOfFile()); group.leave() }
    }
    p.waitUntilExit()
    group.wait()
    return Result(status: p.terminationStatus, out: String(decoding: outData.get(), as: UTF8.self),
                  err: String(decoding: errData.get(), as: UTF8.self))
}

/// The cache entries (`.pgflow/cache` under `root`) a node wrote, read from their JSON headers.
func cacheEntries(of node: String, in root: URL) throws -> [(url: URL, frame: Int?)] {
    let objects = root.appendingPathComponent(".pgflow/cache/objects")
    return try FileManager.default.enumerator(at: objects, includingPropertiesForKeys: nil)!.compactMap { $0 as? URL }
        .filter { !$0.hasDirectoryPath }
        .compactMap { url -> (URL, Int?)? in
            let head = try FileHandle(forReadingFrom: url).read(upToCount: 512) ?? Data()
            let text = String(decoding: head, as: UTF8.self)
            guard text.contains("\"node\":\"\(node)\"") else { return nil }
            let frame = text.range(of: #""frame":(\d+)"#, options: .regularExpression)
                .flatMap { Int(text[$0].dropFirst(8)) }
            return (url, frame)
        }
}

/// Flips one bit in the second half of a file (a cache entry's payload).
func flipABit(in url: URL) throws {
    var data = try Data(contentsOf: url)
    data[data.count * 3 / 4] ^= 0x10
    try data.write(to: url)
}

final class Mutexed<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ v: T) { value = v }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
    /// Read-modify-write under the lock (get then set would lose a concurrent update).
    func update(_ body: (inout T) -> Void) { lock.lock(); body(&value); lock.unlock() }
}

/// A scratch folder with 12 generated PNG frames and a graph that re-encodes them.
struct Workspace {
    let root: URL
    init(frames: Int = 12) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-cli-\(UUID().uuidString)")
        let frameDir = root.appendingPathComponent("frames")
        try FileManager.default.createDirectory(at: frameDir, withIntermediateDirectories: true)
        for t in 0..<frames {
            var img = Tensor(zeros: [3, 32, 48])
            for c in 0..<3 { for y in 0..<32 { for x in 0..<48 {
                img[c, y, x] = Float((x + y * 2 + t * 3 + c * 20) % 64) / 63
            } } }
            try PNGImage.write(img, to: frameDir.appendingPathComponent(String(format: "frame_%03d.png", t)))
        }
        try write("graph.json", """
        {
          "pgflow": 1,
          "name": "cli",
          "vars": {"crf": 18},
          "nodes": {
            "src": {"type": "VideoSource", "params": {"path": "frames", "size": [32, 32], "fit": "crop"}},
            "enc": {"type": "Encoder", "in": {"frames": "src.frames", "meta": "src.meta"},
                    "params": {"path": "out/clip.mp4", "crf": "$crf", "fps": 12}}
          },
          "outputs": ["enc.file"]
        }
        """)
    }
    func write(_ name: String, _ text: String) throws { try Data(text.utf8).write(to: root.appendingPathComponent(name)) }
    func remove() { try? FileManager.default.removeItem(at: root) }
}

@Suite(.serialized) struct CLITests {
    @Test func helpTeachesTheCommands() throws {
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        let r = try pgflow(["--help"], in: ws.root)
        #expect(r.status == 0)
        for word in ["exec", "validate", "grad", "nodes", "dot", "cache", "Exit status"] { #expect(r.out.contains(word), "help lacks \(word)") }
        let nodes = try pgflow(["nodes", "Encoder"], in: ws.root)
        #expect(nodes.status == 0 && nodes.out.contains("Params:") && nodes.out.contains("crf"))
    }

    @Test func validateReportsEveryPlantedErrorAndExits2() throws {
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        try ws.write("bad.json", """
        {
          "pgflow": 1,
          "nodes": {
            "src": {"type": "VideoSource", "params": {"path": "frames", "fit": "squash", "step": 0}},
            "enc": {"type": "Encodr", "in": {"frames": "src.frames"}},
            "enc2": {"type": "Encoder", "in": {"frames": "src.meta", "meta": "ghost.meta"}, "params": {"path": "a.mp4", "crf": 99}}
          },
          "outputs": ["enc2.file"]
        }
        """)
        let r = try pgflow(["validate", "bad.json"], in: ws.root)
        #expect(r.status == 2)
        let expected = [
            "bad.json:4:72: nodes.src.params.fit:",          // enum value
            "bad.json:4:90: nodes.src.params.step:",         // out of range
            "bad.json:5:21: nodes.enc.type: unknown node type \"Encodr\"",
            "bad.json:6:50: nodes.enc2.in.frames: input \"frames\" of node \"enc2\" expects Image, got Meta from src.meta",
            "bad.json:6:70: nodes.enc2.in.meta: link \"ghost.meta\" names no node \"ghost\"",
            "bad.json:6:120: nodes.enc2.params.crf:",        // above the maximum
        ]
        for e in expected { #expect(r.err.contains(e), "missing \(e) in:\n\(r.err)") }
        #expect(r.err.contains("problems found."))
    }

    @Test func secondRunIsAllCachedAndAParamChangeRerunsExactlyItsNode() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let first = try pgflow(["exec", "graph.json", "--explain"], in: ws.root)
        #expect(first.status == 0, "\(first.err)")
        #expect(first.out.contains("src: ran because new") && first.out.contains("enc: ran because new"))
        #expect(FileManager.default.fileExists(atPath: ws.root.appendingPathComponent("out/clip.mp4").path))

        let second = try pgflow(["exec", "graph.json", "--explain"], in: ws.root)
        #expect(second.status == 0)
        #expect(second.out.contains("all cached: nothing to run"), "\(second.out)")
        // The encoder's result is reused, so the decoded frames are not even read.
        #expect(second.out.contains("enc: cached") && second.out.contains("src: not needed (what it feeds is cached)"), "\(second.out)")

        let third = try pgflow(["exec", "graph.json", "--explain", "--set", "crf=23"], in: ws.root)
        #expect(third.out.contains("src: cached"))
        #expect(third.out.contains("enc: ran because param crf changed (18 → 23)"), "\(third.out)")

        // Deleting the output re-runs the encoder, and only it.
        try FileManager.default.removeItem(at: ws.root.appendingPathComponent("out/clip.mp4"))
        let fourth = try pgflow(["exec", "graph.json", "--explain", "--set", "crf=23"], in: ws.root)
        #expect(fourth.out.contains("enc: ran because output file (") && fourth.out.contains("was removed"), "\(fourth.out)")
        #expect(fourth.out.contains("src: cached"))
    }

    @Test func jsonEventsAreOneObjectPerLine() throws {
        let ws = try Workspace(frames: 4)
        defer { ws.remove() }
        let r = try pgflow(["exec", "graph.json", "--json"], in: ws.root)
        #expect(r.status == 0)
        let events = r.out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(events.count == r.out.split(separator: "\n").count)
        let kinds = events.compactMap { $0["event"] as? String }
        #expect(kinds.contains("started") && kinds.contains("finished") && kinds.contains("progress"))
    }

    @Test func twoConcurrentRunsOnOneCacheBothSucceedAndTheCacheVerifiesClean() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("graph2.json", try String(contentsOf: ws.root.appendingPathComponent("graph.json"), encoding: .utf8)
            .replacingOccurrences(of: "out/clip.mp4", with: "out/clip2.mp4"))
        let results = Mutexed([Int32]())
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let r = try? pgflow(["exec", i == 0 ? "graph.json" : "graph2.json", "--cache-dir", "shared-cache"], in: ws.root)
            results.update { $0.append(r?.status ?? -1) }
        }
        #expect(results.get() == [0, 0])
        let verify = try pgflow(["cache", "verify", "--cache-dir", "shared-cache"], in: ws.root)
        #expect(verify.status == 0 && verify.out.contains("clean:"), "\(verify.out)")
        let ls = try pgflow(["cache", "ls", "--cache-dir", "shared-cache"], in: ws.root)
        #expect(ls.out.contains("src") && ls.out.contains("12 frames"))
    }

    @Test func damagedEntriesAreRecomputedWithAWarning() throws {
        let ws = try Workspace(frames: 6)
        defer { ws.remove() }
        #expect(try pgflow(["exec", "graph.json"], in: ws.root).status == 0)
        let before = try Data(contentsOf: ws.root.appendingPathComponent("out/clip.mp4"))
        let objects = ws.root.appendingPathComponent(".pgflow/cache/objects")
        let files = FileManager.default.enumerator(at: objects, includingPropertiesForKeys: [.fileSizeKey])!
            .compactMap { $0 as? URL }.filter { !$0.hasDirectoryPath }
            .sorted { ((try? $0.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0) > ((try? $1.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0) }
        // The two largest entries are decoded frames: truncate one, flip a bit in the other.
        let a = try Data(contentsOf: files[0])
        try a.prefix(a.count / 3).write(to: files[0])
        var b = try Data(contentsOf: files[1])
        b[b.count / 2] ^= 0x01
        try b.write(to: files[1])
        let r = try pgflow(["exec", "graph.json", "--explain", "--force", "enc"], in: ws.root)
        #expect(r.status == 0)
        #expect(r.err.components(separatedBy: "warning").count - 1 >= 2, "\(r.err)")
        // Each damaged frame is found when read, dropped and recomputed, and --explain counts both.
        #expect(r.out.contains("src: ran because 2 of 6 frames not in the cache"), "\(r.out)")
        #expect(try Data(contentsOf: ws.root.appendingPathComponent("out/clip.mp4")) == before)
        #expect(try pgflow(["cache", "verify"], in: ws.root).status == 0)
    }

    @Test func everyDamagedEntryIsRecomputedHoweverMany() throws {
        let ws = try Workspace(frames: 6)
        defer { ws.remove() }
        #expect(try pgflow(["exec", "graph.json"], in: ws.root).status == 0)
        let before = try Data(contentsOf: ws.root.appendingPathComponent("out/clip.mp4"))
        let frames = try cacheEntries(of: "src", in: ws.root).filter { $0.frame != nil }
        #expect(frames.count == 6)
        for entry in frames.prefix(5) { try flipABit(in: entry.url) }
        let r = try pgflow(["exec", "graph.json", "--explain", "--force", "enc"], in: ws.root)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.components(separatedBy: "cached value unreadable; recomputing").count - 1 == 5, "\(r.err)")
        #expect(r.out.contains("src: ran because 5 of 6 frames not in the cache"), "\(r.out)")
        #expect(try Data(contentsOf: ws.root.appendingPathComponent("out/clip.mp4")) == before)
        #expect(try pgflow(["cache", "verify"], in: ws.root).status == 0)
    }

    @Test func modelExportWritesBuiltinHeadInTheSMPLXLayoutAndInfoReadsItBack() throws {
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        let export = try pgflow(["model", "export", "builtin:head", "head.npz"], in: ws.root)
        #expect(export.status == 0, "\(export.err)")
        let arrays = try NPZ.read(ws.root.appendingPathComponent("head.npz"))
        for key in ["v_template", "shapedirs", "J_regressor", "weights", "kintree_table", "f", "vt", "ft", "lmk_faces_idx", "lmk_bary_coords"] {
            #expect(arrays[key] != nil, "head.npz lacks \(key)")
        }
        let vertices = try #require(arrays["v_template"]?.shape.first)
        #expect(arrays["lmk_bary_coords"]?.shape == [68, 3])
        let info = try pgflow(["model", "info", "head.npz"], in: ws.root)
        let builtin = try pgflow(["model", "info", "builtin:head"], in: ws.root)
        #expect(info.status == 0 && info.out.contains("\(vertices) vertices"), "\(info.out)")
        // The file describes the same model as the built-in one it came from.
        let summary = { (text: String) in text.split(separator: "\n").first?.components(separatedBy: ": ").last }
        #expect(summary(info.out) == summary(builtin.out), "\(info.out)\n\(builtin.out)")
        #expect(try pgflow(["model", "info", "nope.npz"], in: ws.root).status != 0)
    }

    /// cache ls shows older versions of a node as ×N with when each group was last used; gc keeps
    /// the cache under its size (the entries a run just read are the last to go); clear empties it.
    @Test func cacheListGcAndClear() throws {
        let ws = try Workspace(frames: 4)
        defer { ws.remove() }
        #expect(try pgflow(["exec", "graph.json"], in: ws.root).status == 0)
        #expect(try pgflow(["exec", "graph.json", "--set", "crf=30"], in: ws.root).status == 0)
        let ls = try pgflow(["cache", "ls"], in: ws.root)
        #expect(ls.status == 0 && ls.out.contains("LAST USED"), "\(ls.out)")
        let enc = ls.out.split(separator: "\n").first { $0.contains(" enc ") }
        #expect(enc?.contains("static ×2") == true, "two Encoder results (crf 18 and 30): \(ls.out)")
        let src = ls.out.split(separator: "\n").first { $0.contains(" src ") && $0.contains("frames") }
        #expect(src?.contains("4 frames") == true && src?.contains("×") == false, "\(ls.out)")

        let gc = try pgflow(["cache", "gc", "--max-size", "20K"], in: ws.root)
        #expect(gc.status == 0, "\(gc.err)")
        let size = try FileManager.default.subpathsOfDirectory(atPath: ws.root.appendingPathComponent(".pgflow/cache/objects").path)
            .compactMap { try? FileManager.default.attributesOfItem(atPath: ws.root.appendingPathComponent(".pgflow/cache/objects/" + $0).path) }
            .filter { $0[.type] as? FileAttributeType == .typeRegular }
            .reduce(0) { $0 + (($1[.size] as? Int) ?? 0) }
        #expect(size <= 20 * 1024, "gc left \(size) bytes")
        #expect(try pgflow(["cache", "verify"], in: ws.root).status == 0)

        #expect(try pgflow(["cache", "clear"], in: ws.root).status == 0)
        let empty = try pgflow(["cache", "ls"], in: ws.root)
        #expect(empty.out.contains("0 entries"), "\(empty.out)")
        let again = try pgflow(["exec", "graph.json", "--explain"], in: ws.root)
        #expect(again.out.contains("src: ran because new") || again.out.contains("src: ran because not in the cache"), "\(again.out)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/dot"), "needs Graphviz: bash Scripts/setup.sh installs it"))
    func dotIsAcceptedByGraphviz() throws {
        let ws = try Workspace(frames: 2)
        defer { ws.remove() }
        let r = try pgflow(["dot", "graph.json", "--status"], in: ws.root)
        #expect(r.status == 0 && r.out.hasPrefix("digraph"))
        let svg = try pgflow(["dot", "graph.json", "-o", "g.svg"], in: ws.root)
        #expect(svg.status == 0, "\(svg.err)")
        let text = try String(contentsOf: ws.root.appendingPathComponent("g.svg"), encoding: .utf8)
        #expect(text.contains("<svg") && text.contains("VideoSource"))
    }

    @Test func aMissingInputFileFailsValidationNamingIt() throws {
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        let r = try pgflow(["exec", "graph.json", "--set", "crf=20"], in: ws.root)
        #expect(r.status == 0)
        try ws.write("missing.json", """
        {"pgflow": 1, "nodes": {"src": {"type": "VideoSource", "params": {"path": "nope.mp4"}},
          "enc": {"type": "Encoder", "in": {"frames": "src.frames"}, "params": {"path": "o.mp4"}}}, "outputs": ["enc.file"]}
        """)
        let m = try pgflow(["exec", "missing.json"], in: ws.root)
        #expect(m.status == 2)
        #expect(m.err.contains("missing.json:1:75: nodes.src.params.path: node \"src\" (VideoSource), param \"path\": no such file or folder:") && m.err.contains("nope.mp4"), "\(m.err)")
        // Named by a var, the message says which var and how to point it elsewhere.
        try ws.write("byvar.json", """
        {"pgflow": 1, "vars": {"clip": "gone.mp4"}, "nodes": {"src": {"type": "VideoSource", "params": {"path": "$clip"}},
          "enc": {"type": "Encoder", "in": {"frames": "src.frames"}, "params": {"path": "o.mp4"}}}, "outputs": ["enc.file"]}
        """)
        let v = try pgflow(["validate", "byvar.json"], in: ws.root)
        #expect(v.status == 2 && v.err.contains("gone.mp4 (from var \"clip\"; --set clip=PATH names another, relative to the current folder)"), "\(v.err)")
    }
}
