import Foundation
import PGTensor
import Testing

/// Optimize stages through the binary, as a user runs them.
@Suite(.serialized) struct TrainingCLITests {
    // Enough steps that the pipe (64 KiB, ~600 loss events) fills and blocks pgflow long before the
    // end: it cannot finish between the event we react to and the SIGKILL, however loaded the machine.
    static let steps = 1200, checkpointEvery = 50

    /// Noise features → NeuralRenderer → L1 against one generated frame, trained for `steps` steps.
    static func trainingGraph() -> String {
        """
        {"pgflow": 1, "name": "fit",
         "nodes": {
           "noise":  {"type": "Noise", "params": {"channels": 8, "width": 16, "height": 16, "seed": 3}},
           "photo":  {"type": "VideoSource", "params": {"path": "frames", "size": [16, 16]}},
           "render": {"type": "NeuralRenderer", "in": {"features": "noise.image"},
                      "params": {"channels": 8, "hidden": [16, 16], "seed": 1}},
           "loss":   {"type": "Loss", "in": {"image": "render.rgb", "target": "photo.frames"}, "params": {"w_l1": 1}}
         },
         "stages": [{"name": "fit", "optimize": {"loss": "loss.loss", "train": ["render"], "steps": \(steps),
                     "lr": 0.01, "eps": 1e-8, "checkpoint_every": \(checkpointEvery), "export": "weights", "history": "loss.csv"}}]}
        """
    }

    /// Starts `pgflow exec --json --threads 1` and SIGKILLs it once a loss event past `killAfter` arrives.
    /// Returns the last step it reported.
    static func execAndKill(in dir: URL, killAfter: Int) throws -> Int {
        let p = Process()
        p.executableURL = pgflowBinary
        p.arguments = ["exec", "fit.json", "--json", "--threads", "1"]
        p.currentDirectoryURL = dir
        var env = ProcessInfo.processInfo.environment
        env["PGFLOW_NODES"] = repositoryNodes.path
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        var pending = Data(), lastStep = -1
        reading: while true {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }                       // the process ended before we killed it
            pending.append(chunk)
            while let newline = pending.firstIndex(of: 0x0A) {
                let line = pending[pending.startIndex..<newline]
                pending = Data(pending[(newline + 1)...])
                guard let event = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
                      event["event"] as? String == "loss", let step = event["step"] as? Int else { continue }
                lastStep = step
                if step > killAfter {
                    kill(p.processIdentifier, SIGKILL)
                    break reading
                }
            }
        }
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGKILL,
                "pgflow should have been killed at step \(lastStep), it exited with \(p.terminationStatus)")
        return lastStep
    }

    static func weights(_ dir: URL) throws -> [String: Tensor] {
        try NPZ.read(dir.appendingPathComponent("weights/render.npz"))
    }

    /// `kill -9` in the middle of an optimize stage, the way a user's machine loses a run: the next
    /// `pgflow exec` resumes from the last periodic checkpoint (not step 0) and, with one thread, ends
    /// with exactly the parameters of a run that was never interrupted.
    @Test func killDashNineMidStageResumesFromTheLastCheckpointWithIdenticalWeights() throws {
        let whole = try Workspace(frames: 1), broken = try Workspace(frames: 1)
        defer { whole.remove(); broken.remove() }
        for ws in [whole, broken] { try ws.write("fit.json", Self.trainingGraph()) }

        let reference = try pgflow(["exec", "fit.json", "--threads", "1"], in: whole.root)
        #expect(reference.status == 0, "\(reference.err)")

        let killedAt = try Self.execAndKill(in: broken.root, killAfter: 100)
        #expect(killedAt > 100 && killedAt < Self.steps, "killed at step \(killedAt)")
        #expect(!FileManager.default.fileExists(atPath: broken.root.appendingPathComponent("weights/render.npz").path),
                "a killed stage exports nothing")

        let again = try pgflow(["exec", "fit.json", "--json", "--threads", "1"], in: broken.root)
        #expect(again.status == 0, "\(again.err)")
        let events = again.out.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let resumed = events.first { $0["event"] as? String == "resumed" }
        // pgflow may have run a little past the last event we read before the signal landed.
        let checkpoint = try #require(resumed?["step"] as? Int, "no resumed event in: \(again.out.prefix(2000))")
        #expect(checkpoint % Self.checkpointEvery == 0 && checkpoint >= killedAt / Self.checkpointEvery * Self.checkpointEvery
                && checkpoint < Self.steps, "resumed at step \(checkpoint), killed after step \(killedAt)")
        let firstStep = events.first { $0["event"] as? String == "loss" }?["step"] as? Int
        #expect(firstStep == checkpoint + 1, "the first step after resuming is \(String(describing: firstStep))")

        let a = try Self.weights(whole.root), b = try Self.weights(broken.root)
        #expect(a.keys.sorted() == b.keys.sorted() && !a.isEmpty)
        for (name, t) in a { #expect(b[name] == t, "\(name) differs from the uninterrupted run") }
        // The loss history carries across the kill too, value for value.
        let history = { (ws: Workspace) in try String(contentsOf: ws.root.appendingPathComponent("loss.csv"), encoding: .utf8) }
        #expect(try history(whole) == history(broken))
        #expect(try history(whole).split(separator: "\n").count == Self.steps + 1)
    }

    /// Two stages train the renderer in turn; changing only the second one's steps re-trains only it,
    /// and --explain says so for both stages.
    @Test func explainNamesTheStageThatRetrainsAndTheOneReused() throws {
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        let graph = Self.trainingGraph()
            .replacingOccurrences(of: "\"steps\": \(Self.steps)", with: "\"steps\": 30")
            .replacingOccurrences(of: "\"history\": \"loss.csv\"}}]}", with: """
            "history": "loss.csv"}},
                        {"name": "polish", "optimize": {"loss": "loss.loss", "train": ["render"], "steps": "$polish", "lr": 0.001}},
                        {"name": "show", "run": ["loss"]}],
             "vars": {"polish": 10}}
            """)
        try ws.write("fit.json", graph)
        let first = try pgflow(["exec", "fit.json", "--explain"], in: ws.root)
        #expect(first.status == 0, "\(first.err)")
        #expect(first.out.contains("stage fit: trained because new") && first.out.contains("stage polish: trained because new"), "\(first.out)")

        let again = try pgflow(["exec", "fit.json", "--explain"], in: ws.root)
        #expect(again.out.contains("stage fit: cached") && again.out.contains("stage polish: cached"), "\(again.out)")
        #expect(again.out.contains("all cached: nothing to run") && again.out.contains("2 trained stages reused"), "\(again.out)")

        let changed = try pgflow(["exec", "fit.json", "--explain", "--set", "polish=12"], in: ws.root)
        #expect(changed.status == 0, "\(changed.err)")
        #expect(changed.out.contains("stage fit: cached"), "\(changed.out)")
        #expect(changed.out.contains("stage polish: trained because param steps changed (10 → 12)"), "\(changed.out)")
        #expect(changed.out.contains("photo: cached") && changed.out.contains("noise: cached"), "\(changed.out)")
        #expect(changed.out.contains("trained 1 stage, reused 1"), "\(changed.out)")
    }

    /// A training input whose cache entry is damaged between runs is found when the stage reads it,
    /// recomputed, and training goes on to the same weights as on a clean cache.
    @Test func aDamagedTrainingInputIsRecomputedMidStage() throws {
        let clean = try Workspace(frames: 1), damaged = try Workspace(frames: 1)
        defer { clean.remove(); damaged.remove() }
        let graph = Self.trainingGraph().replacingOccurrences(of: "\"steps\": \(Self.steps)", with: "\"steps\": \"$steps\"")
            .replacingOccurrences(of: "{\"pgflow\": 1,", with: "{\"pgflow\": 1, \"vars\": {\"steps\": 30},")
        for ws in [clean, damaged] { try ws.write("fit.json", graph) }
        #expect(try pgflow(["exec", "fit.json", "--threads", "1"], in: damaged.root).status == 0)
        let photo = try cacheEntries(of: "photo", in: damaged.root).filter { $0.frame == 0 }
        #expect(photo.count == 1)
        for entry in photo { try flipABit(in: entry.url) }

        let r = try pgflow(["exec", "fit.json", "--threads", "1", "--set", "steps=40"], in: damaged.root)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("photo frame 0: cached value unreadable; recomputing"), "\(r.err)")
        #expect(try pgflow(["exec", "fit.json", "--threads", "1", "--set", "steps=40"], in: clean.root).status == 0)
        #expect(try Self.weights(clean.root) == Self.weights(damaged.root))
    }

    /// --until a node downstream of trained parameters runs (or reuses) the stage that trains them
    /// first, so the node sees trained parameters and is cached under the stage's key.
    @Test func untilANodeAfterTrainingUsesTheTrainedStage() throws {
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        try ws.write("fit.json", Self.trainingGraph().replacingOccurrences(of: "\"steps\": \(Self.steps)", with: "\"steps\": 20"))
        #expect(try pgflow(["exec", "fit.json"], in: ws.root).status == 0)
        let first = try pgflow(["exec", "fit.json", "--until", "loss", "--explain"], in: ws.root)
        #expect(first.status == 0, "\(first.err)")
        #expect(first.out.contains("stage fit: cached") && first.out.contains("loss: ran because new"), "\(first.out)")
        let again = try pgflow(["exec", "fit.json", "--until", "loss", "--explain"], in: ws.root)
        #expect(again.out.contains("loss: cached") && again.out.contains("all cached"), "\(again.out)")

        // dot --status looks the trained nodes up under the stage's key too.
        let dot = try pgflow(["dot", "fit.json", "--status"], in: ws.root)
        #expect(dot.out.contains("trains render; cached"), "\(dot.out)")
        let renderLine = dot.out.split(separator: "\n").first { $0.contains("\"render\" [") }
        #expect(renderLine?.contains("tooltip=\"cached\"") == true, "\(dot.out)")
    }

    /// pgflow grad writes one gradient per parameter group; asking for what the graph cannot
    /// answer is a command-line error (exit 2) that says why.
    @Test func gradWritesEveryGroupAndRejectsWhatTheGraphCannotAnswer() throws {
        let ws = try Workspace(frames: 1)
        defer { ws.remove() }
        try ws.write("fit.json", Self.trainingGraph())
        let ok = try pgflow(["grad", "fit.json", "--loss", "loss.loss", "-o", "g.npz"], in: ws.root)
        #expect(ok.status == 0, "\(ok.err)")
        let grads = try NPZ.read(ws.root.appendingPathComponent("g.npz"))
        #expect(grads.keys.sorted() == ["render.layer0.bias", "render.layer0.weight", "render.layer1.bias",
                                        "render.layer1.weight", "render.layer2.bias", "render.layer2.weight"])
        #expect(grads.values.allSatisfy { $0.scalars.contains { $0 != 0 } })
        for (args, message) in [(["--frame", "5"], "frame 5 is outside the clip: it has 1 frame (0…0)"),
                                (["--loss", "loss.nope"], "Loss node \"loss\" has no output \"nope\" (outputs: loss, terms)"),
                                (["--loss", "loss.terms"], "expected a differentiable Scalar output")] {
            let all = args.first == "--loss" ? ["grad", "fit.json"] + args : ["grad", "fit.json", "--loss", "loss.loss"] + args
            let r = try pgflow(all, in: ws.root)
            #expect(r.status == 2 && r.err.contains(message), "\(args): \(r.status) \(r.err)")
        }
    }
}
