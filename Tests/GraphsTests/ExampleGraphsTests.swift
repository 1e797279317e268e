import Foundation
import PGFlow
import PGMedia
import PGNodes
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let exampleGraphs: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent("Graphs").path)) ?? [])
    .filter { $0.hasSuffix(".json") }.sorted()
/// The sample clip `Scripts/fetch-sample.sh` downloads; graphs reading it are run only when present.
let sampleClip = repositoryRoot.appendingPathComponent("data/single_face.mp4")
let sampleClipPresent = FileManager.default.fileExists(atPath: sampleClip.path)

func shippedCatalog() throws -> Catalog { try Catalog.load(repositoryRoot.appendingPathComponent("Nodes")) }

@Test(arguments: exampleGraphs)
func exampleGraphValidates(_ name: String) throws {
    let url = repositoryRoot.appendingPathComponent("Graphs").appendingPathComponent(name)
    let graph = try Graph.load(url, catalog: try shippedCatalog())
    #expect(!graph.nodes.isEmpty)
    #expect(graph.vars.contains { $0.name == "out" }, "example graphs write under the var \"out\" so tests can redirect them")
}

/// How the tests run each example graph: small sizes so the suite stays fast, and the graphs
/// whose default input another graph writes (the synthetic sample) run after it into the same
/// `out` folder, as Scripts/demo.sh does.
struct ExampleRun {
    var vars: [(String, String)] = []
    var before: [String] = []
    /// Whether it reads data/single_face.mp4.
    var needsClip = false
    /// Run by a test of its own (which checks more than that it runs).
    var dedicated = false

    static let table: [String: ExampleRun] = [
        "transcode.json": ExampleRun(needsClip: true),
        "edit-frames.json": ExampleRun(vars: [("size", "128"), ("frames", "4")], needsClip: true, dedicated: true),
        "make-sample.json": ExampleRun(vars: [("size", "64"), ("frames", "10")]),
        "reconstruct.json": ExampleRun(vars: [("size", "64"), ("uv", "32"), ("steps", "6")], before: ["make-sample.json"],
                                       dedicated: true),   // ReconstructPipelineTests
        "edit.json": ExampleRun(vars: [("size", "128"), ("frames", "12"), ("uv", "32"), ("steps", "10"), ("edit_steps", "8")],
                                needsClip: true, dedicated: true),   // EditGraphTests
        "reconstruct-video.json": ExampleRun(vars: [("size", "128"), ("frames", "12"), ("uv", "32"), ("steps", "6")],
                                             needsClip: true, dedicated: true),   // RealVideoTests
    ]
    static func of(_ name: String) -> ExampleRun { table[name] ?? ExampleRun() }
}

@Test func everyExampleGraphHasTestSettings() {
    #expect(Set(exampleGraphs) == Set(ExampleRun.table.keys), "add new example graphs to ExampleRun.table")
}

/// Runs an example graph end to end with its outputs redirected to a scratch folder, twice: the
/// second run must reuse everything. Returns the first run's summary; `check` looks at the outputs
/// before the scratch folder goes.
func runExample(_ name: String, check: (RunSummary) throws -> Void = { _ in }) throws {
    let setup = ExampleRun.of(name)
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-graphs-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: scratch) }
    let out = scratch.appendingPathComponent("out").path
    let cache = scratch.appendingPathComponent("cache")
    func load(_ name: String) throws -> Graph {
        let url = repositoryRoot.appendingPathComponent("Graphs").appendingPathComponent(name)
        var overrides = [("out", out)] + ExampleRun.of(name).vars
        if ExampleRun.of(name).before.contains("make-sample.json") {
            overrides += [("video", out + "/sample.mp4"), ("matte", out + "/sample_matte.mp4"), ("tracking", out + "/sample_tracking.json")]
        }
        return try Graph.load(url, catalog: try shippedCatalog(), overrides: overrides)
    }
    for earlier in setup.before {
        _ = try Engine(graph: try load(earlier), catalog: try shippedCatalog(), operators: Registry.operators, cacheDirectory: cache).run()
    }
    let graph = try load(name)
    let first = try Engine(graph: graph, catalog: try shippedCatalog(), operators: Registry.operators, cacheDirectory: cache).run()
    #expect(!first.ran.isEmpty)
    for (target, value) in first.outputs {
        if let path = value["path"]?.string {
            #expect(FileManager.default.fileExists(atPath: path), "\(name): \(target) names \(path), which is missing")
            #expect(path.hasPrefix(scratch.path), "\(name) wrote outside its \"out\" folder: \(path)")
        }
    }
    try check(first)
    let second = try Engine(graph: graph, catalog: try shippedCatalog(), operators: Registry.operators, cacheDirectory: cache).run()
    #expect(second.ran.isEmpty, "\(name): second run re-ran \(second.ran)")
}

/// The graphs the generic run covers: not those with a test of their own, nor those that read the clip.
let genericallyRunGraphs = exampleGraphs.filter { !ExampleRun.of($0).dedicated && !ExampleRun.of($0).needsClip }

@Test(arguments: genericallyRunGraphs)
func exampleGraphRuns(_ name: String) throws { try runExample(name) }

/// transcode.json on the real clip: every frame comes out, at the source's rate.
@Test(.enabled(if: sampleClipPresent, "needs data/single_face.mp4: bash Scripts/fetch-sample.sh"))
func transcodeKeepsEveryFrameAndTheFrameRate() throws {
    try runExample("transcode.json") { s in
        let path = try #require(s.outputs.first { $0.target == "enc.file" }?.value["path"]?.string)
        let source = try VideoReader(sampleClip).info, written = try VideoReader(URL(fileURLWithPath: path)).info
        #expect(written.frameCount == source.frameCount && written.frameCount == 72)
        #expect(abs(written.fps - source.fps) < 1e-6)
        #expect(written.width == 256 && written.height == 256)
    }
}

/// The plugin environment Scripts/setup-plugins.sh makes (style, opencv; --full adds ip2p).
let pluginEnvironment = FileManager.default.isExecutableFile(atPath: repositoryRoot.appendingPathComponent(".venv/bin/python3").path)

/// edit-frames.json: per-frame style transfer of the real clip, the baseline PortraitGen improves
/// on. Every frame is edited and encoded, and the report measures how much it flickers.
@Test(.enabled(if: sampleClipPresent && pluginEnvironment, "needs data/single_face.mp4 and the plugin environment (bash Scripts/setup-plugins.sh)"))
func editFramesStylisesEveryFrameAndMeasuresFlicker() throws {
    try runExample("edit-frames.json") { s in
        let path = try #require(s.outputs.first { $0.target == "enc.file" }?.value["path"]?.string)
        let written = try VideoReader(URL(fileURLWithPath: path)).info
        #expect(written.frameCount == 4 && written.width == 128)
        let metrics = try #require(s.outputs.first { $0.target == "metrics.metrics" }?.value.record)
        // Style transfer changes the picture a lot and, frame by frame, adds flicker.
        #expect((metrics["psnr"]?.number ?? 99) < 20, "\(metrics)")
        #expect((metrics["relative_flicker"]?.number ?? 0) > 1, "\(metrics)")
    }
}

/// Graphviz draws every example graph (stage clusters and record ports together once broke it).
@Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/dot"), "needs graphviz"), arguments: exampleGraphs)
func exampleGraphDrawsWithGraphviz(_ name: String) throws {
    let url = repositoryRoot.appendingPathComponent("Graphs").appendingPathComponent(name)
    let catalog = try shippedCatalog()
    let text = try Graph.load(url, catalog: catalog).dot(catalog: catalog)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/dot")
    p.arguments = ["-Tsvg", "-o", "/dev/null"]
    let input = Pipe(), errors = Pipe()
    p.standardInput = input
    p.standardError = errors
    try p.run()
    input.fileHandleForWriting.write(Data(text.utf8))
    try input.fileHandleForWriting.close()
    p.waitUntilExit()
    let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    #expect(p.terminationStatus == 0, "\(name): dot said \(message)")
}
