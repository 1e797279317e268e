import Foundation
import PGFlow
import PGTensor
import Synchronization
import Testing

/// target_t = 3·(t) + 1 for the ramp t = 0…9; pred = w0·t + w1. The optimum is w = (3, 1).
func trainingGraph(steps: Int = 600, lastSteps: Int = 50, checkpointEvery: Int = 10, extra: String = "") -> String {
    """
    {
      "pgflow": 1, "name": "fit",
      "nodes": {
        "src":    {"type": "Ramp", "params": {"count": 10}},
        "one":    {"type": "Constant", "params": {"value": 1}},
        "target": {"type": "Scale", "in": {"in": "src.out", "offset": "one.out"}, "params": {"factor": 3}},
        "w":      {"type": "Param", "params": {"init": [0, 0]}},
        "pred":   {"type": "Affine", "in": {"x": "src.out", "w": "w.value"}},
        "gain":   {"type": "Gain", "in": {"in": "pred.out"}},
        "loss":   {"type": "SquaredError", "in": {"pred": "pred.out", "target": "target.out"}},
        "loss2":  {"type": "SquaredError", "in": {"pred": "gain.out", "target": "target.out"}},
        "check":  {"type": "Total", "in": {"in": "pred.out"}}
      },
      "stages": [
        {"name": "fit", "optimize": {"loss": "loss.loss", "train": ["w"], "steps": \(steps), "batch": 4, "seed": 7,
                                     "frames": "0:80%", "lr": {"w": 0.1}, "eps": 1e-8, "checkpoint_every": \(checkpointEvery)\(extra)}},
        {"name": "gain", "optimize": {"loss": "loss2.loss", "train": ["gain"], "steps": \(lastSteps), "lr": 0.01, "eps": 1e-8}},
        {"name": "report", "run": ["check"]}
      ]
    }
    """
}

@Suite(.serialized) struct AutodiffTests {
    func engine(_ box: Sandbox, _ text: String, options: RunOptions = RunOptions(threads: 1)) throws -> Engine {
        let url = try box.write("fit.json", text)
        return try box.engine(try Graph.load(url, catalog: box.catalog), options: options)
    }

    func parameters(_ box: Sandbox) throws -> [String: Tensor] {
        // `pgflow grad` reports gradients; the trained values come back through the stage result.
        var out: [String: Tensor] = [:]
        let store = try CacheStore(directory: box.cache, onWarning: { _ in })
        for e in store.entries() where e.info?.nodeID == "stage:fit" {
            if let p = store.load(e.key)?["state"]?["parameters"]?["w"]?["w"]?.tensor { out["w"] = p }
        }
        return out
    }

    @Test func trainsToTheKnownOptimumAndCarriesParametersToLaterStages() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let s = try engine(box, trainingGraph()).run()
        let w = try #require(try parameters(box)["w"])
        #expect(abs(w.scalars[0] - 3) < 0.05 && abs(w.scalars[1] - 1) < 0.2, "w = \(w.scalars)")
        let history = try #require(s.histories["fit"])
        #expect(history.names == ["loss", "terms.mean_pred", "terms.mse"])
        #expect(history.rows.count == 600)
        #expect(history.rows.last![0] < history.rows.first![0] / 100, "loss should fall: \(history.rows.first![0]) → \(history.rows.last![0])")
        // The run stage after training sees the trained w: Σ_t (3t + 1) over 10 frames ≈ 145.
        let total = try #require(s.outputs.first { $0.target == "check" }?.value["sum"]?.number)
        #expect(abs(total - 145) < 2, "sum of predictions with trained w: \(total)")
        // The gain stage starts from g = 0.5 and learns g ≈ 1 on top of the trained w.
        #expect(s.histories["gain"]!.rows.last![0] < s.histories["gain"]!.rows.first![0])
    }

    @Test func gradientsMatchCentralFiniteDifferences() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let text = trainingGraph().replacingOccurrences(of: "\"init\": [0, 0]", with: "\"init\": [0.7, -0.4]")
        let grads = try engine(box, text).gradients(loss: PortRef(node: "loss2", port: "loss"), frame: 3)
        #expect(grads.map(\.0) == ["w.w", "gain.g"])
        // loss2 at frame 3 = (g·(w0·3 + w1) − 10)² with g = 0.5.
        func loss(_ w0: Double, _ w1: Double, _ g: Double) -> Double { let d = g * (w0 * 3 + w1) - 10; return d * d }
        let h = 1e-4
        let fd = [(loss(0.7 + h, -0.4, 0.5) - loss(0.7 - h, -0.4, 0.5)) / (2 * h),
                  (loss(0.7, -0.4 + h, 0.5) - loss(0.7, -0.4 - h, 0.5)) / (2 * h),
                  (loss(0.7, -0.4, 0.5 + h) - loss(0.7, -0.4, 0.5 - h)) / (2 * h)]
        let got = grads[0].1.scalars.map(Double.init) + grads[1].1.scalars.map(Double.init)
        for (a, b) in zip(got, fd) { #expect(abs(a - b) <= 1e-3 * max(1, abs(b)), "autodiff \(got) vs finite differences \(fd)") }
    }

    @Test func changingOnlyTheLastStageRerunsOnlyThatStage() throws {
        let box = try Sandbox()
        defer { box.remove() }
        _ = try engine(box, trainingGraph()).run()
        let s = try engine(box, trainingGraph(lastSteps: 60)).run()
        #expect(s.ran["stage:fit"] == nil && s.cached.contains("stage:fit"))
        #expect(s.ran["stage:gain"] == "param steps changed (50 → 60)")
        #expect(s.ran["check"] == nil, "check does not depend on the gain stage")
        #expect(s.histories["gain"]?.rows.count == 60)
    }

    @Test func anInterruptedStageResumesFromItsCheckpointWithIdenticalResults() throws {
        let whole = try Sandbox()
        defer { whole.remove() }
        _ = try engine(whole, trainingGraph(steps: 80)).run()
        let reference = try parameters(whole)["w"]

        let box = try Sandbox()
        defer { box.remove() }
        // Dies after 37 steps in this process: the last checkpoint is at step 30.
        #expect(throws: RunError.self) {
            try engine(box, trainingGraph(steps: 80), options: RunOptions(threads: 1, abortAfterSteps: 37)).run()
        }
        let events = Mutex([RunEvent]())
        let url = try box.write("fit.json", trainingGraph(steps: 80))
        let resumed = try box.engine(try Graph.load(url, catalog: box.catalog), options: RunOptions(threads: 1),
                                     events: { e in events.withLock { $0.append(e) } })
        _ = try resumed.run()
        let resumedAt = events.withLock { $0 }.compactMap { e -> Int? in
            if case .trainingCached("fit", let step, _) = e { return step }
            return nil
        }
        #expect(resumedAt == [30])
        let steps = events.withLock { $0 }.filter { if case .training("fit", _, _, _) = $0 { return true }; return false }.count
        #expect(steps == 50, "resumed run should do steps 31…80 only")
        #expect(try parameters(box)["w"] == reference, "bit-identical to the uninterrupted run")
    }

    @Test func optimizeSettingsAreValidated() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let url = try box.write("bad.json", trainingGraph(extra: ", \"lr_typo\": 1, \"schedule\": {\"type\": \"cosine\"}"))
        #expect {
            try Graph.load(url, catalog: box.catalog)
        } throws: { error in
            let text = "\(error)"
            return text.contains("stages[0].optimize.lr_typo") && text.contains("unknown optimize setting \"lr_typo\"")
                && text.contains("stages[0].optimize.schedule.type")
        }
    }
}

@Test func gradientCheckerAcceptsCorrectVJPsAndCatchesAWrongOne() throws {
    let seed: UInt64 = 42
    let x = Tensor(shape: [3], scalars: [0.5, -1.5, 2])
    let inputs = Inputs(["in": .tensor(x)], parameters: ["g": Tensor(shape: [1], scalars: [0.8])])
    let good = try GradientCheck(seed: seed).check(Gain(params: Params([:], baseDirectory: URL(fileURLWithPath: "/"))),
                                                  inputs: inputs, wrt: ["in"], outputs: ["out"])
    #expect(good.isEmpty, "seed \(seed): \(good)")
    /// Gain with its parameter gradient off by a factor of two.
    struct BrokenGain: Differentiable {
        static let type = "BrokenGain"
        static let version = 1
        init(params: Params) throws {}
        func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
            try Gain(params: Params([:], baseDirectory: URL(fileURLWithPath: "/"))).forward(inputs, frame: frame, context: context)
        }
        func vjp(_ c: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
            var g = try Gain(params: Params([:], baseDirectory: URL(fileURLWithPath: "/"))).vjp(c, saved: saved, inputs: inputs, frame: frame, context: context)
            g.parameters["g"] = g.parameters["g"]! * 2
            return g
        }
    }
    let bad = try GradientCheck(seed: seed).check(BrokenGain(params: Params([:], baseDirectory: URL(fileURLWithPath: "/"))),
                                                 inputs: inputs, wrt: ["in"], outputs: ["out"])
    #expect(bad.count == 1 && bad[0].name == "parameter g", "seed \(seed): \(bad)")
}
