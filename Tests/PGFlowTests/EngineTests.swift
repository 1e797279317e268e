import Foundation
import PGFlow
import PGTensor
import Synchronization
import Testing

let pipeline = """
{
  "pgflow": 1,
  "name": "ramp",
  "vars": {"factor": 2, "frames": 6},
  "nodes": {
    "src":   {"type": "Ramp", "params": {"count": "$frames", "value": 10}},
    "off":   {"type": "Constant", "params": {"value": 0.5}},
    "scale": {"type": "Scale", "in": {"in": "src.out", "offset": "off.out"}, "params": {"factor": "$factor"}},
    "total": {"type": "Total", "in": {"in": "scale.out"}}
  },
  "outputs": ["total.sum"]
}
"""

/// Engine behaviour on the test operators; serialized because they share evaluation counters.
@Suite(.serialized) struct EngineTests {
    func run(_ box: Sandbox, _ text: String = pipeline, set: [(String, String)] = [],
             options: RunOptions = RunOptions()) throws -> (RunSummary, [RunEvent]) {
        let url = try box.write("graph.json", text)
        let graph = try Graph.load(url, catalog: box.catalog, overrides: set)
        let events = Mutex([RunEvent]())
        let summary = try box.engine(graph, options: options, events: { e in events.withLock { $0.append(e) } }).run()
        return (summary, events.withLock { $0 })
    }

    func sum(_ s: RunSummary) -> Double? { s.outputs.first { $0.target == "total.sum" }?.value.number }

    @Test func runsThenReusesEverything() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let before = (evaluationCount("Ramp", in: box), evaluationCount("Scale", in: box), evaluationCount("Total", in: box))
        let (first, _) = try run(box)
        // Σ_t ((10 + t)·2 + 0.5) for t in 0..<6 = 2·(60 + 15) + 3 = 153
        #expect(sum(first) == 153)
        #expect(first.frameCount == 6)
        #expect(Set(first.ran.keys) == ["src", "off", "scale", "total"])
        #expect(first.ran["src"] == "new")
        #expect(evaluationCount("Ramp", in: box) - before.0 == 6)
        #expect(evaluationCount("Scale", in: box) - before.1 == 6)

        let counts = (evaluationCount("Ramp", in: box), evaluationCount("Scale", in: box), evaluationCount("Total", in: box))
        let (second, events) = try run(box)
        #expect(sum(second) == 153)
        #expect(second.ran.isEmpty, "second run should do no node work, ran \(second.ran)")
        #expect(evaluationCount("Ramp", in: box) == counts.0 && evaluationCount("Scale", in: box) == counts.1 && evaluationCount("Total", in: box) == counts.2)
        #expect(events.allSatisfy { if case .started = $0 { return false }; return true })
    }

    @Test func paramChangeRerunsExactlyTheNodeAndItsDescendants() throws {
        let box = try Sandbox()
        defer { box.remove() }
        _ = try run(box)
        let (s, _) = try run(box, set: [("factor", "3")])
        #expect(Set(s.ran.keys) == ["scale", "total"])
        #expect(s.ran["scale"] == "param factor changed (2 → 3)")
        #expect(s.ran["total"]?.contains("input in changed (scale ran)") == true)
        #expect(sum(s) == 228, "sum \(String(describing: sum(s)))")
        #expect(Set(s.cached) == ["src", "off"])
    }

    @Test func untilStopsEarlyAndStagesRunInOrder() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let (s, _) = try run(box, options: RunOptions(until: "scale"))
        #expect(Set(s.ran.keys) == ["src", "off", "scale"])
        let staged = pipeline.replacingOccurrences(of: "\"outputs\": [\"total.sum\"]",
                                                   with: "\"stages\": [{\"name\": \"sum\", \"run\": [\"total\"]}]")
        let (t, events) = try run(box, staged)
        #expect(Set(t.ran.keys) == ["total"], "src/off/scale were cached by the --until run")
        #expect(events.contains { if case .stage(let n, _, _) = $0 { return n == "sum" }; return false })
        let order = t.outputs.first?.value["order"]?.list?.compactMap(\.number)
        #expect(order == [0, 1, 2, 3, 4, 5], "a sink sees every frame in order")
    }

    @Test func corruptEntriesAreRecomputedWithAWarning() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let (first, _) = try run(box)
        // Damage two per-frame entries of `scale`: truncate one, flip a bit in another.
        let objects = box.cache.appendingPathComponent("objects")
        let files = FileManager.default.enumerator(at: objects, includingPropertiesForKeys: nil)!
            .compactMap { $0 as? URL }.filter { !$0.hasDirectoryPath }
        let store = try CacheStore(directory: box.cache, onWarning: { _ in })
        let scaleFrames = store.entries().filter { $0.info?.nodeID == "scale" && $0.info?.frame != nil }.map(\.key.hex)
        #expect(scaleFrames.count == 6)
        let paths = files.filter { f in scaleFrames.prefix(2).contains { f.lastPathComponent.hasPrefix($0) } }
        #expect(paths.count == 2)
        let a = try Data(contentsOf: paths[0])
        try a.prefix(a.count / 2).write(to: paths[0])
        var b = try Data(contentsOf: paths[1])
        b[b.count - 3] ^= 0x10
        try b.write(to: paths[1])

        let (second, events) = try run(box, options: RunOptions(force: ["total"]))
        let warnings = events.compactMap { if case .warning(let w) = $0 { return w }; return nil }
        #expect(warnings.count >= 2, "expected a warning per damaged entry, got \(warnings)")
        // Each damaged frame is found when read, dropped with a warning and recomputed; --explain
        // counts both, though the second is found only after a re-plan.
        #expect(second.ran["scale"] == "2 of 6 frames not in the cache")
        #expect(sum(second) == sum(first))
        #expect(try CacheStore(directory: box.cache, onWarning: { _ in }).verify(removeCorrupt: false).corrupt.isEmpty)
    }

    @Test func aFailingNodeNamesNodeAndFrameAndKeepsFinishedResults() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let failing = pipeline.replacingOccurrences(of: "\"value\": 10}", with: "\"value\": 10, \"fail_at\": 4}")
        #expect {
            try run(box, failing, options: RunOptions(threads: 1))
        } throws: { error in
            let e = error as? RunError
            return e?.node == "src" && e?.frame == 4 && e?.description.contains("planted failure") == true
                && e?.description.contains("node \"src\" (Ramp) failed at frame 4") == true
        }
        // Frames 0–3 were produced before the failure and stay cached.
        let store = try CacheStore(directory: box.cache, onWarning: { _ in })
        #expect(store.entries().filter { $0.info?.nodeID == "src" && $0.info?.frame != nil }.count == 4)
    }

    @Test func twoEnginesSharingOneCacheBothSucceed() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let url = try box.write("graph.json", pipeline)
        let graph = try Graph.load(url, catalog: box.catalog)
        let results = Mutex([Double?]())
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            let s = try? box.engine(graph, options: RunOptions(recomputeAll: true)).run()
            results.withLock { $0.append(s.flatMap { self.sum($0) }) }
        }
        #expect(results.withLock { $0 } == [153, 153])
        #expect(try CacheStore(directory: box.cache, onWarning: { _ in }).verify(removeCorrupt: false).corrupt.isEmpty)
    }

    /// A `model` param is a name when it starts with "builtin:", else a file whose content is
    /// part of the key, like a `path`.
    @Test func modelFilesAreKeyedByContentAndBuiltInsByName() throws {
        let box = try Sandbox()
        defer { box.remove() }
        func status(_ model: String) throws -> NodeStatus? {
            let url = try box.write("model.json", """
            {"pgflow": 1, "nodes": {"c": {"type": "Constant", "params": {"value": 2, "model": "\(model)"}}}, "outputs": ["c.out"]}
            """)
            return try box.engine(try Graph.load(url, catalog: box.catalog)).status()["c"]
        }
        _ = try box.write("m.npz", "first")
        _ = try run(box, """
        {"pgflow": 1, "nodes": {"c": {"type": "Constant", "params": {"value": 2, "model": "m.npz"}}}, "outputs": ["c.out"]}
        """)
        #expect(try status("m.npz") == .cached)
        _ = try box.write("m.npz", "second")
        #expect(try status("m.npz") == .willRun, "new model file content must re-run the node")
        _ = try run(box, """
        {"pgflow": 1, "nodes": {"c": {"type": "Constant", "params": {"value": 2}}}, "outputs": ["c.out"]}
        """)
        #expect(try status("builtin:none") == .cached, "a built-in model is not a file")
        do { _ = try status("missing.npz"); Issue.record("no error") } catch {
            #expect("\(error)".contains("param \"model\": no such file or folder"))
        }
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/dot"), "needs Graphviz: bash Scripts/setup.sh installs it"))
    func dotIsAcceptedByGraphviz() throws {
        let box = try Sandbox()
        defer { box.remove() }
        _ = try run(box, options: RunOptions(until: "scale"))
        let url = try box.write("graph.json", pipeline)
        let graph = try Graph.load(url, catalog: box.catalog)
        let status = try box.engine(graph).status()
        #expect(status["scale"] == .cached && status["total"] == .willRun)
        let text = graph.dot(catalog: box.catalog, status: status)
        #expect(text.contains("\"src\":\"o_out\":e -> \"scale\":\"i_in\":w"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/dot")
        p.arguments = ["-Tsvg", "-o", "/dev/null"]
        let pipe = Pipe()
        p.standardInput = pipe
        p.standardError = Pipe()
        try p.run()
        pipe.fileHandleForWriting.write(Data(text.utf8))
        try pipe.fileHandleForWriting.close()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }
}

@Test func aMapFedOnlyByStaticValuesRunsOnceAsAStaticNode() throws {
    let box = try Sandbox()
    defer { box.remove() }
    let url = try box.write("static.json", """
    {"pgflow": 1, "nodes": {
       "p": {"type": "Param", "params": {"init": [4]}},
       "s": {"type": "Scale", "in": {"in": "p.value"}, "params": {"factor": 3}},
       "t": {"type": "Total", "in": {"in": "s.out"}}
     }, "outputs": ["t.sum"]}
    """)
    // A sink fed only static values consumes them as a single frame: Total adds up one 3·4.
    let sink = try box.engine(try Graph.load(url, catalog: box.catalog)).run()
    #expect(sink.outputs.first?.value.number == 12)
    let ok = try box.write("static2.json", """
    {"pgflow": 1, "nodes": {
       "p": {"type": "Param", "params": {"init": [1, 2]}},
       "s": {"type": "Scale", "in": {"in": "p.value"}, "params": {"factor": 3}}
     }, "outputs": ["s.out"]}
    """)
    let graph = try Graph.load(ok, catalog: box.catalog)
    let s = try box.engine(graph).run()
    #expect(s.outputs.first?.value.tensor?.scalars == [3, 6])
    #expect(s.frameCount == nil)
}
