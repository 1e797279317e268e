import Foundation
import PGTensor

/// Iterative dataset update (PortraitGen §3.3, docs/DESIGN.md §3 and §8): inside an optimize
/// stage, the editing subgraph — the live nodes the loss reads only as data (never differentiated)
/// that lead into or out of a dataset-update node (EditorCall) — is not run every step. Its
/// results per frame are *held* training targets: initialised from the dataset-update nodes'
/// `source` input (the unedited frame), refreshed by running the whole subgraph (crop, edit,
/// paste) on the current render when the frame is drawn at a step that is a multiple of the
/// node's `every`, at most `max_edits` times per frame, and reused in between.
struct DatasetUpdate {
    /// The editing subgraph in dependency order.
    var nodes: [String]
    /// Its dataset-update nodes.
    var holders: [String]
    /// Nodes of the subgraph whose outputs are read outside it: what is held per frame.
    var boundary: [String]
    var every: Int
    var maxEdits: Int?
}

/// The held targets of a stage, part of its checkpoint so an interrupted stage resumes exactly.
struct HeldTargets {
    /// frame → node → outputs.
    var values: [Int: [String: [String: Value]]] = [:]
    /// frame → how many times it was edited.
    var edits: [Int: Int] = [:]
    /// Steps at which an edit ran (for the summary).
    var editSteps: [Int] = []

    var totalEdits: Int { edits.values.reduce(0, +) }

    var value: Value {
        let frames = values.keys.sorted()
        return .record([
            "frames": .list(frames.map { .number(Double($0)) }),
            "values": .list(frames.map { t in .record(values[t]!.mapValues { .record($0) }) }),
            "edits": .list(frames.map { .number(Double(edits[$0] ?? 0)) }),
            "edit_steps": .list(editSteps.map { .number(Double($0)) }),
        ])
    }

    init() {}

    init?(_ v: Value) {
        guard let frames = v["frames"]?.list?.compactMap(\.number), let vals = v["values"]?.list,
              let edits = v["edits"]?.list?.compactMap(\.number), vals.count == frames.count, edits.count == frames.count else { return nil }
        for (i, t) in frames.enumerated() {
            guard let nodes = vals[i].record else { return nil }
            values[Int(t)] = nodes.mapValues { $0.record ?? [:] }
            self.edits[Int(t)] = Int(edits[i])
        }
        editSteps = (v["edit_steps"]?.list ?? []).compactMap(\.number).map(Int.init)
    }
}

extension Engine {
    /// The stage's editing subgraph, or nil when no dataset-update node is live in it.
    func datasetUpdate(_ tg: TrainingGraph) -> DatasetUpdate? {
        let maps = tg.live.filter { role($0) == .map && !tg.backward.contains($0) }
        let holders = maps.filter { spec($0).datasetUpdate }
        guard !holders.isEmpty else { return nil }
        // Within the non-differentiated live nodes: the holders, what feeds them, what they feed.
        var members = Set(holders)
        var changed = true
        while changed {
            changed = false
            for id in maps where !members.contains(id) {
                let node = graph.node(id)!
                let feedsMember = maps.contains { m in members.contains(m) && graph.node(m)!.inputs.contains { $0.source.node == id } }
                let fedByMember = node.inputs.contains { members.contains($0.source.node) }
                if feedsMember || fedByMember { members.insert(id); changed = true }
            }
        }
        let nodes = tg.live.filter(members.contains)
        let boundary = nodes.filter { id in
            tg.live.contains { c in !members.contains(c) && graph.node(c)!.inputs.contains { $0.source.node == id } }
        }
        var every = Int.max, maxEdits: Int?
        for h in holders {
            let params = Engine.params(graph.node(h)!, spec(h), graph.directory)
            every = min(every, max(1, params["every"]?.int ?? 1))
            if let m = params["max_edits"]?.int { maxEdits = min(maxEdits ?? Int.max, Int(m)) }
        }
        return DatasetUpdate(nodes: nodes, holders: holders, boundary: boundary, every: every, maxEdits: maxEdits)
    }

    /// One node of the editing subgraph for frame `t`: `initial` makes a dataset-update node
    /// pass its `source` input through (the target before any edit).
    func evaluateEditing(_ id: String, _ du: DatasetUpdate, frame t: Int, initial: Bool,
                         live: [String: [String: Value]]) throws -> [String: Value] {
        let inputs = try trainingInputs(id, frame: t, live: live)
        if initial && du.holders.contains(id) {
            guard let source = inputs["source"] else {
                throw RunError(node: id, type: graph.node(id)!.type, frame: t,
                               "input 'source' is not connected: inside an optimize stage it is the training target before any edit")
            }
            return Dictionary(uniqueKeysWithValues: spec(id).outputs.map { ($0.name, source) })
        }
        do { return try instance(id).evaluate(inputs, frame: t, context: makeContext(id)) }
        catch let e as RunError { throw e } catch {
            throw RunError(node: id, type: graph.node(id)!.type, frame: t, Engine.describe(error))
        }
    }

    /// The frames of `batch` to edit at `step`.
    func framesToEdit(_ du: DatasetUpdate, step: Int, batch: [Int], held: HeldTargets) -> Set<Int> {
        guard step % du.every == 0 else { return [] }
        return Set(batch.filter { t in du.maxEdits.map { (held.edits[t] ?? 0) < $0 } ?? true })
    }
}

/// What one optimize step needs to know about the dataset update, and what it changed.
final class DatasetUpdateStep {
    let du: DatasetUpdate
    var held: HeldTargets
    /// Frames to edit in this step.
    var toEdit: Set<Int> = []
    var step = 0
    /// Time in the dataset-update nodes (the editors), and in the rest of the update: the other
    /// nodes of the editing subgraph and keeping the held targets (IDU's own overhead).
    var editorSeconds = 0.0
    var overheadSeconds = 0.0

    init(_ du: DatasetUpdate, held: HeldTargets) {
        self.du = du
        self.held = held
    }
}
