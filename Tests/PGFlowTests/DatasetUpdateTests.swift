import Foundation
import PGFlow
import PGTensor
import Testing

/// Iterative dataset update: a dataset-update node inside an optimize stage holds each frame's
/// target, starts it from `source`, re-makes it from the current prediction on its schedule and
/// keeps it in the stage's checkpoints.
func datasetUpdateGraph(steps: Int = 12, every: Int = 3, maxEdits: String = "", frames: String = "0:10", checkpointEvery: Int = 100) -> String {
    """
    {
      "pgflow": 1, "name": "idu",
      "nodes": {
        "src":    {"type": "Ramp", "params": {"count": 10}},
        "one":    {"type": "Constant", "params": {"value": 1}},
        "target": {"type": "Scale", "in": {"in": "src.out", "offset": "one.out"}, "params": {"factor": 3}},
        "w":      {"type": "Param", "params": {"init": [0, 0]}},
        "pred":   {"type": "Affine", "in": {"x": "src.out", "w": "w.value"}},
        "edit":   {"type": "Edit", "in": {"image": "pred.out", "source": "target.out"}, "params": {"offset": 1, "every": \(every)\(maxEdits)}},
        "loss":   {"type": "SquaredError", "in": {"pred": "pred.out", "target": "edit.image"}}
      },
      "stages": [
        {"name": "fit", "optimize": {"loss": "loss.loss", "train": ["w"], "steps": \(steps), "batch": 1, "seed": 3,
                                     "frames": "\(frames)", "lr": {"w": 0.05}, "eps": 1e-8, "checkpoint_every": \(checkpointEvery)}}
      ]
    }
    """
}

@Suite(.serialized) struct DatasetUpdateTests {
    func engine(_ box: Sandbox, _ text: String, options: RunOptions = RunOptions(threads: 1)) throws -> Engine {
        try box.engine(try Graph.load(try box.write("idu.json", text), catalog: box.catalog), options: options)
    }

    func trainedW(_ box: Sandbox) throws -> [Float] {
        let store = try CacheStore(directory: box.cache, onWarning: { _ in })
        for e in store.entries() where e.info?.nodeID == "stage:fit" {
            if let p = store.load(e.key)?["state"]?["parameters"]?["w"]?["w"]?.tensor { return p.scalars }
        }
        throw RunError("no trained w")
    }

    @Test func editsRunOnTheirScheduleAndTargetsStartFromSource() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let s = try engine(box, datasetUpdateGraph()).run()
        // Steps 0, 3, 6 and 9 edit their drawn frame; every other step reuses the held targets,
        // and a frame's first visit takes source as its target without calling the editor.
        #expect(evaluationCount("Edit", in: box) == 4)
        let history = try #require(s.histories["fit"])
        let edits = try #require(history.names.firstIndex(of: "edits"))
        #expect(history.rows.map { $0[edits] } == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4])
        #expect(s.ran["stage:fit"]?.contains("dataset update: 4 edits of") == true, "\(s.ran)")
        #expect(s.ran["stage:fit"]?.contains("at steps 0, 3, 6, 9") == true, "\(s.ran)")
        // The held targets are not part of the finished stage's result, only of its checkpoints.
        let store = try CacheStore(directory: box.cache, onWarning: { _ in })
        let result = store.entries().first { $0.info?.nodeID == "stage:fit" }.flatMap { store.load($0.key) }
        #expect(result?["state"]?["held"] == nil)
    }

    @Test func maxEditsCapsEachFrame() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let s = try engine(box, datasetUpdateGraph(steps: 20, every: 1, maxEdits: ", \"max_edits\": 1", frames: "0:2")).run()
        #expect(evaluationCount("Edit", in: box) == 2, "two frames, one edit each")
        #expect(s.histories["fit"]?.rows.last?.last == 2)
    }

    @Test func anInterruptedStageResumesWithItsHeldTargets() throws {
        let whole = try Sandbox()
        defer { whole.remove() }
        _ = try engine(whole, datasetUpdateGraph(steps: 40, checkpointEvery: 5)).run()
        let reference = try trainedW(whole)

        let box = try Sandbox()
        defer { box.remove() }
        #expect(throws: RunError.self) {
            try engine(box, datasetUpdateGraph(steps: 40, checkpointEvery: 5), options: RunOptions(threads: 1, abortAfterSteps: 23)).run()
        }
        _ = try engine(box, datasetUpdateGraph(steps: 40, checkpointEvery: 5)).run()
        #expect(try trainedW(box) == reference, "resumed from step 20 with the held targets it had then")
        // Without the held targets in the checkpoint the resumed run would restart every target
        // from source and end elsewhere: the edits really steer the result.
        let plain = try Sandbox()
        defer { plain.remove() }
        _ = try engine(plain, datasetUpdateGraph(steps: 40, every: 1000, checkpointEvery: 5)).run()
        #expect(try trainedW(plain) != reference)
    }
}
