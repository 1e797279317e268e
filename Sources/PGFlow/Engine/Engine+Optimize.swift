import Foundation
import PGTensor

/// The part of the graph an optimize stage re-evaluates every step.
struct TrainingGraph {
    /// Nodes whose values depend on trained parameters, in dependency order (the loss node last).
    var live: [String]
    /// Live nodes on a differentiable path from a trained node to the loss: they run VJPs.
    var backward: Set<String>
    /// Nodes outside `live` that feed it: their (cached) values are constants for the stage.
    var constants: [String]
}

extension Engine {
    func trainingGraph(loss: PortRef, train: [String]) throws -> TrainingGraph {
        let ancestors = graph.ancestors(of: [loss.node])
        var live: [String] = []
        var liveSet = Set<String>()
        for id in order where ancestors.contains(id) {
            if train.contains(id) || graph.upstream(of: id).contains(where: liveSet.contains) {
                live.append(id)
                liveSet.insert(id)
            }
        }
        guard liveSet.contains(loss.node) else {
            throw RunError("the loss \(loss) does not depend on any trained node (\(train.joined(separator: ", ")))")
        }
        for id in live {
            switch role(id) {
            case .source, .sink:
                throw RunError(node: id, type: graph.node(id)!.type,
                               "a \(role(id).rawValue) node cannot sit between trained parameters and the loss")
            default: break
            }
        }
        func differentiableEdge(_ src: PortRef, into id: String, port: String) -> Bool {
            spec(src.node).output(src.port)?.differentiable == true && spec(id).input(port)?.differentiable == true
        }
        // Reachable from a trained node over differentiable edges …
        var fromTrained = Set(train)
        for id in live {
            for (port, src) in graph.node(id)!.inputs where fromTrained.contains(src.node) && differentiableEdge(src, into: id, port: port) {
                fromTrained.insert(id)
            }
        }
        // … and reaching the loss over them.
        var toLoss: Set<String> = [loss.node]
        for id in live.reversed() where id != loss.node {
            let feeds = live.contains { d in
                toLoss.contains(d) && graph.node(d)!.inputs.contains { $0.source.node == id && differentiableEdge($0.source, into: d, port: $0.port) }
            }
            if feeds { toLoss.insert(id) }
        }
        if spec(loss.node).output(loss.port)?.differentiable != true {
            throw RunError(node: loss.node, type: graph.node(loss.node)!.type, "its output \(loss.port) is not differentiable, so it cannot be a loss")
        }
        let backward = fromTrained.intersection(toLoss)
        for id in train where !backward.contains(id) {
            throw RunError(node: id, type: graph.node(id)!.type,
                           "is trained but gets no gradient: no differentiable path leads from it to \(loss)")
        }
        // Constants are materialised before the stage; one whose results are never stored is
        // computed inside the step from its own (stored) inputs, so those are the constants.
        var constants: [String] = []
        var frontier = live.flatMap { graph.upstream(of: $0) }.filter { !liveSet.contains($0) }
        var seen = Set<String>()
        while let u = frontier.popLast() {
            guard seen.insert(u).inserted else { continue }
            if volatile.contains(u) { frontier += graph.upstream(of: u) } else { constants.append(u) }
        }
        constants = order.filter(constants.contains)
        return TrainingGraph(live: live, backward: backward, constants: constants)
    }

    /// Inputs of a live node during training: live values from this step, constants from the cache.
    func trainingInputs(_ id: String, frame t: Int?, live: [String: [String: Value]]) throws -> Inputs {
        let node = graph.node(id)!
        var values: [String: Value] = [:]
        for (port, src) in node.inputs {
            if let v = live[src.node]?[src.port] { values[port] = v; continue }
            if perFrame(src) {
                guard let t else { throw RunError(node: id, type: node.type, "the value of \(src) is not in the cache") }
                // Materialised before the stage began: unreadable now means damaged (or removed by
                // another process), and the stage recomputes it.
                values[port] = try frameValue(src.node, frame: t)[src.port]
            } else {
                guard let outs = try staticOutputs(src.node) else {
                    throw RunError(node: id, type: node.type, "the value of \(src) is not in the cache")
                }
                values[port] = outs[src.port]
            }
        }
        return Inputs(values, parameters: state.withLock { $0.parameters[id] } ?? [:])
    }

    /// `forwardBackward`, recomputing the stage's constants when one of their cached values turns
    /// out damaged on the way (each damaged entry once, as `materialize` does).
    func forwardBackwardRecovering(_ tg: TrainingGraph, loss: PortRef, frames: [Int], update: DatasetUpdateStep? = nil)
        throws -> (losses: [(String, Double)], gradients: [String: [String: Tensor]]) {
        var seen = Set<StaleEntry>()
        while true {
            do {
                return try forwardBackward(tg, loss: loss, frames: frames, update: update)
            } catch let stale as StaleEntry {
                try recover(from: stale, seen: &seen)
                try materialize(tg.constants.map { .node($0) })
            }
        }
    }

    /// One forward and backward pass over `frames`, averaging over them. Returns the mean of each
    /// loss term and the parameter gradients of the nodes in `graph.backward`. With `update`, the
    /// editing subgraph's targets come from (and, for the frames it edits, go to) its held
    /// targets (`Engine+DatasetUpdate.swift`).
    func forwardBackward(_ tg: TrainingGraph, loss: PortRef, frames: [Int], update: DatasetUpdateStep? = nil)
        throws -> (losses: [(String, Double)], gradients: [String: [String: Tensor]]) {
        let scale = 1.0 / Double(frames.count)
        var gradients: [String: [String: Tensor]] = [:]
        var termSums: [(String, Double)] = []
        func addGradients(_ id: String, _ g: [String: Tensor]) {
            for (k, v) in g { gradients[id, default: [:]][k] = gradients[id]?[k].map { $0 + v } ?? v }
        }
        func seed(_ v: Value) -> Value {
            switch v {
            case .tensor(let t): return .tensor(Tensor(repeating: Float(scale), shape: t.shape))
            default: return .number(scale)
            }
        }
        func run(_ id: String, _ inputs: Inputs, _ t: Int?) throws -> ([String: Value], Saved?) {
            let op = try instance(id)
            let ctx = makeContext(id)
            do {
                if tg.backward.contains(id), let d = op as? any Differentiable {
                    let (o, s) = try d.forward(inputs, frame: t, context: ctx)
                    return (o, s)
                }
                return (try op.evaluate(inputs, frame: t, context: ctx), nil)
            } catch let e as RunError { throw e } catch {
                throw RunError(node: id, type: graph.node(id)!.type, frame: t, Engine.describe(error))
            }
        }
        func pull(_ id: String, _ cot: [String: Value], _ saved: Saved?, _ inputs: Inputs, _ t: Int?) throws -> Gradients {
            guard let saved, let d = try instance(id) as? any Differentiable else { return Gradients() }
            do { return try d.vjp(cot, saved: saved, inputs: inputs, frame: t, context: makeContext(id)) }
            catch let e as RunError { throw e } catch {
                throw RunError(node: id, type: graph.node(id)!.type, frame: t, "backward: " + Engine.describe(error))
            }
        }
        /// Sends a VJP's input cotangents to the nodes that produced those inputs.
        func route(_ id: String, _ g: Gradients, into cot: inout [String: [String: Value]], statics: inout [String: [String: Value]]) {
            for (port, src) in graph.node(id)!.inputs {
                guard let c = g.inputs[port], tg.backward.contains(src.node),
                      spec(src.node).output(src.port)?.differentiable == true, spec(id).input(port)?.differentiable == true else { continue }
                if role(src.node) == .staticNode {
                    statics[src.node, default: [:]][src.port] = statics[src.node]?[src.port].map { $0 + c } ?? c
                } else {
                    cot[src.node, default: [:]][src.port] = cot[src.node]?[src.port].map { $0 + c } ?? c
                }
            }
        }

        // Static live nodes: once per step.
        var staticLive: [String: [String: Value]] = [:]
        var staticSaved: [String: (Saved?, Inputs)] = [:]
        for id in tg.live where role(id) == .staticNode {
            let inputs = try trainingInputs(id, frame: nil, live: staticLive)
            let (outs, saved) = try run(id, inputs, nil)
            staticLive[id] = outs
            staticSaved[id] = (saved, inputs)
        }
        var staticCot: [String: [String: Value]] = [:]
        if role(loss.node) == .staticNode {
            guard let lv = staticLive[loss.node]?[loss.port] else { throw RunError(node: loss.node, "produced no \(loss.port)") }
            staticCot[loss.node] = [loss.port: .number(1)]
            termSums = Engine.lossTerms(staticLive[loss.node]!, main: loss.port).map { ($0.0, $0.1) }
            _ = lv
        }
        for t in frames where role(loss.node) != .staticNode {
            try makeContext(loss.node).checkCancelled()
            var live = staticLive
            var saved: [String: (Saved?, Inputs)] = [:]
            let initial = update.map { $0.held.values[t] == nil } ?? false
            let editing = update.map { initial || $0.toEdit.contains(t) } ?? false
            for id in tg.live where role(id) == .map {
                if let u = update, u.du.nodes.contains(id) {
                    let started = DispatchTime.now().uptimeNanoseconds
                    if editing {
                        live[id] = try evaluateEditing(id, u.du, frame: t, initial: initial && !u.toEdit.contains(t), live: live)
                    } else if let held = u.held.values[t]?[id] {
                        live[id] = held
                    }
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                    if editing && u.du.holders.contains(id) { u.editorSeconds += seconds } else { u.overheadSeconds += seconds }
                    continue
                }
                let inputs = try trainingInputs(id, frame: t, live: live)
                let (outs, s) = try run(id, inputs, t)
                live[id] = outs
                saved[id] = (s, inputs)
            }
            if let u = update, editing {
                let started = DispatchTime.now().uptimeNanoseconds
                defer { u.overheadSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
                u.held.values[t] = Dictionary(uniqueKeysWithValues: u.du.boundary.map { ($0, live[$0] ?? [:]) })
                if u.toEdit.contains(t) {
                    u.held.edits[t, default: 0] += 1
                    if u.held.editSteps.last != u.step { u.held.editSteps.append(u.step) }
                }
            }
            guard let lv = live[loss.node]?[loss.port] else {
                throw RunError(node: loss.node, type: graph.node(loss.node)!.type, frame: t, "produced no \(loss.port)")
            }
            let terms = Engine.lossTerms(live[loss.node]!, main: loss.port)
            if termSums.isEmpty { termSums = terms.map { ($0.0, 0) } }
            for (i, term) in terms.enumerated() where i < termSums.count { termSums[i].1 += term.1 * scale }
            var cot: [String: [String: Value]] = [loss.node: [loss.port: seed(lv)]]
            for id in tg.live.reversed() where role(id) == .map && tg.backward.contains(id) {
                guard let c = cot[id], let (s, inputs) = saved[id] else { continue }
                let g = try pull(id, c, s, inputs, t)
                addGradients(id, g.parameters)
                route(id, g, into: &cot, statics: &staticCot)
            }
        }
        for id in tg.live.reversed() where role(id) == .staticNode && tg.backward.contains(id) {
            guard let c = staticCot[id], let (s, inputs) = staticSaved[id] else { continue }
            let g = try pull(id, c, s, inputs, nil)
            addGradients(id, g.parameters)
            var unused: [String: [String: Value]] = [:]
            route(id, g, into: &unused, statics: &staticCot)
        }
        return (termSums, gradients)
    }

    /// Every scalar output of the loss node (and every number in a record output, e.g. `terms`),
    /// the main loss first.
    static func lossTerms(_ outs: [String: Value], main: String) -> [(String, Double)] {
        var terms: [(String, Double)] = []
        if let v = outs[main]?.number { terms.append((main, v)) }
        for (port, v) in outs.sorted(by: { $0.key < $1.key }) where port != main {
            if let n = v.number { terms.append((port, n)) }
            if let r = v.record {
                for (k, x) in r.sorted(by: { $0.key < $1.key }) { if let n = x.number { terms.append(("\(port).\(k)", n)) } }
            }
        }
        return terms
    }
}
