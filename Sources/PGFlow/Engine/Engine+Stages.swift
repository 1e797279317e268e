import Foundation
import PGTensor

/// The optimizer's whole state: parameters of every trainable node seen so far, Adam moments of
/// the groups this stage trains, the step reached and the loss history. Checkpoints and stage
/// results are this, stored as cache entries.
struct TrainingState {
    var step: Int
    var parameters: [String: [String: Tensor]]
    var adam: [String: Adam]
    var history: LossHistory
    /// The dataset update's held targets (checkpoints only; a finished stage drops them).
    var held: HeldTargets?

    var value: Value {
        var r: [String: Value] = [
            "step": .number(Double(step)),
            "parameters": .record(parameters.mapValues { .record($0.mapValues { .tensor($0) }) }),
            "adam": .record(adam.mapValues { a in
                .record(["m": .tensor(a.m), "v": .tensor(a.v), "steps": .number(Double(a.steps)),
                         "lr": .number(Double(a.learningRate)), "beta1": .number(Double(a.beta1)),
                         "beta2": .number(Double(a.beta2)), "eps": .number(Double(a.eps))])
            }),
            "history.names": .list(history.names.map { .string($0) }),
            // Doubles, so a resumed stage's history (and CSV) is the uninterrupted one digit for digit.
            "history.values": .list(history.rows.flatMap { $0.map { .number($0) } }),
        ]
        if let held { r["held"] = held.value }
        return .record(r)
    }

    init(step: Int, parameters: [String: [String: Tensor]], adam: [String: Adam], history: LossHistory) {
        self.step = step
        self.parameters = parameters
        self.adam = adam
        self.history = history
    }

    init?(_ v: Value) {
        guard let step = v["step"]?.number, let params = v["parameters"]?.record, let adam = v["adam"]?.record,
              let names = v["history.names"]?.list?.compactMap(\.string),
              let values = v["history.values"]?.list?.compactMap(\.number)
                ?? v["history.values"]?.tensor?.scalars.map(Double.init) else { return nil }   // entries before doubles
        self.step = Int(step)
        self.parameters = params.mapValues { ($0.record ?? [:]).compactMapValues(\.tensor) }
        self.adam = [:]
        for (k, a) in adam {
            guard let m = a["m"]?.tensor, let vv = a["v"]?.tensor, let s = a["steps"]?.number, let lr = a["lr"]?.number,
                  let b1 = a["beta1"]?.number, let b2 = a["beta2"]?.number, let eps = a["eps"]?.number else { return nil }
            var opt = Adam(shape: m.shape, learningRate: Float(lr), beta1: Float(b1), beta2: Float(b2), eps: Float(eps))
            opt.m = m
            opt.v = vv
            opt.steps = Int(s)
            self.adam[k] = opt
        }
        let k = names.count
        let rows = k == 0 ? [] : stride(from: 0, to: values.count, by: k).map { i in Array(values[i..<(i + k)]) }
        self.history = LossHistory(names: names, rows: rows)
        if let h = v["held"] {
            guard let held = HeldTargets(h) else { return nil }
            self.held = held
        }
    }
}

extension Engine {
    /// A stage is keyed like a node: its settings are its params, the recipes of everything its
    /// loss depends on (which carry earlier parameter states) and the previous stage its inputs,
    /// so --explain can say what changed. Where to write history and how often to checkpoint
    /// do not change the result, so they are left out. Refreshes the recipes first.
    func stageRecipe(_ o: OptimizeSettings, loss: PortRef, after previousKey: String) -> Recipe {
        refreshRecipes()
        var settingsParts: [String: String] = [:]
        for (k, v) in o.settings.objectMembers ?? [] where !["history", "checkpoint_every", "export"].contains(k) { settingsParts[k] = v.canonical }
        var inputs: [String: String] = ["previous stage": previousKey]
        for id in graph.ancestors(of: [loss.node]) { inputs[id] = "\(id)@\(recipe(id)!.key)" }
        return Recipe(type: "optimize", version: 1, params: settingsParts, files: [:], inputs: inputs)
    }

    /// Runs (or reuses) one optimize stage; returns its key, which the next stage chains on.
    func optimize(_ stage: Stage, _ o: OptimizeSettings, after previousKey: String) throws -> String {
        let (settings, problems) = TrainingSettings.read(o)
        if let p = problems.first { throw RunError("stage \"\(stage.name)\": \(p.1)") }
        let stageRecipe = stageRecipe(o, loss: settings.loss, after: previousKey)
        let tg = try trainingGraph(loss: settings.loss, train: settings.train)
        let du = datasetUpdate(tg)
        let recordID = stage.recordID
        let stageKey = CacheKey(hex: stageRecipe.key)!
        var ck = KeyHasher("pgflow.checkpoint.v1")
        ck.add("stage", stageKey.hex)
        let checkpointKey = ck.finalize()
        let info = EntryInfo(nodeID: stage.recordID, nodeType: "optimize", frame: nil, graph: graph.name)

        func finish(_ s: TrainingState) throws {
            state.withLock { st in
                for (id, p) in s.parameters { st.parameters[id] = p }
                for id in settings.train { st.parameterStates[id] = stageKey.hex }
                st.summary.histories[stage.name] = s.history
            }
            refreshRecipes()
            // The trained result is cached already; a file that cannot be written is named with
            // the stage and setting that asked for it.
            func writing(_ key: String, _ body: () throws -> Void) throws {
                do { try body() } catch {
                    let why = (error as? CacheError)?.message ?? "\(error)"
                    throw RunError("stage \"\(stage.name)\", \(key) (\(stage.path).optimize.\(key)): \(why); "
                                   + "the trained parameters are cached, so pointing \(key) elsewhere and running again only writes the file")
                }
            }
            if let path = settings.history {
                let url = Params.resolve(path, against: graph.directory)
                try writing("history") { try POSIXFile.writeFile(Data(s.history.csv.utf8), to: url.path) }
            }
            if let path = settings.export {
                let dir = Params.resolve(path, against: graph.directory)
                try writing("export") {
                    for id in settings.train {
                        let groups = (s.parameters[id] ?? [:]).sorted { $0.key < $1.key }
                        try POSIXFile.writeFile(try NPZ.data(groups.map { ($0.key, $0.value) }),
                                                to: dir.appendingPathComponent("\(id).npz").path)
                    }
                }
            }
        }

        let reason = options.recomputeAll ? "forced (--no-cache)"
            : stageRecipe.change(from: previous[recordID], rerunInputs: state.withLock { Set($0.summary.ran.keys) }) ?? "not in the cache"
        state.withLock { st in
            st.recipes[recordID] = stageRecipe
            st.touched.insert(recordID)
        }
        if !options.recomputeAll, let v = store.load(stageKey)?["state"], let s = TrainingState(v) {
            emit(.trainingCached(stage: stage.name, step: s.step, steps: settings.steps))
            state.withLock { $0.summary.cached.append(recordID) }
            try finish(s)
            return stageKey.hex
        }

        state.withLock { $0.summary.ran[recordID] = reason }
        // Constants first, through the ordinary cached evaluation.
        try materialize(tg.constants.map { .node($0) })
        let frameCount = state.withLock { $0.summary.frameCount } ?? 0
        let perFrame = tg.live.contains { role($0) == .map }
        guard let range = TrainingSettings.frameRange(settings.frames, count: frameCount), !(perFrame && range.isEmpty) else {
            throw RunError("stage \"\(stage.name)\": no frames to train on (frames \(settings.frames.text) of \(frameCount))")
        }

        // Parameters: carried from earlier stages, else each node's seeded initial values.
        var training: TrainingState
        if !options.recomputeAll, let v = store.load(checkpointKey)?["state"], let s = TrainingState(v), s.step <= settings.steps {
            training = s
            state.withLock { st in for (id, p) in s.parameters { st.parameters[id] = p } }
            emit(.trainingCached(stage: stage.name, step: s.step, steps: settings.steps))
        } else {
            for id in tg.live where ingredients[id]!.trainable {
                _ = try parameters(id, statics: try staticInputs(id, skipping: Set(tg.live)))
            }
            let params = state.withLock { $0.parameters }
            var adam: [String: Adam] = [:]
            for id in settings.train {
                for (g, t) in params[id] ?? [:] {
                    adam["\(id).\(g)"] = Adam(shape: t.shape, learningRate: Float(settings.learningRate(node: id, group: g)),
                                              beta1: Float(settings.beta1), beta2: Float(settings.beta2), eps: Float(settings.eps))
                }
            }
            training = TrainingState(step: 0, parameters: params, adam: adam, history: LossHistory())
        }
        let update = du.map { DatasetUpdateStep($0, held: training.held ?? HeldTargets()) }

        var stepsThisProcess = 0
        let stageStarted = Date()
        while training.step < settings.steps {
            if cancelled() {
                try store.store(checkpointKey, ["state": training.value], info: info)
                throw CancellationError()
            }
            // Seeded per step, so a resumed stage samples exactly what an uninterrupted one would.
            var rng = SplitMix64(seed: settings.seed &* 0x9E37_79B9 &+ UInt64(training.step))
            var pool = Array(range)
            var batch: [Int] = []
            for _ in 0..<min(settings.batch, max(pool.count, 1)) where !pool.isEmpty {
                batch.append(pool.remove(at: Int(rng.next() % UInt64(pool.count))))
            }
            if !perFrame { batch = [0] }
            if let update {
                update.step = training.step
                update.toEdit = framesToEdit(update.du, step: training.step, batch: batch, held: update.held)
            }
            var (losses, gradients) = try forwardBackwardRecovering(tg, loss: settings.loss, frames: batch, update: update)
            if let update {
                training.held = update.held
                losses.append(("edits", Double(update.held.totalEdits)))
            }
            let lrScale = Float(settings.schedule.scale(step: training.step, of: settings.steps))
            // The engine lets go of the parameters first and each group is taken out of its
            // dictionary while it updates, so Adam writes in place instead of copying every
            // parameter and moment tensor once a step.
            state.withLock { st in for id in settings.train { st.parameters[id] = nil } }
            for id in settings.train {
                let sparse = (try? instance(id) as? any Trainable)?.sparseGroups ?? []
                var groups = training.parameters.removeValue(forKey: id) ?? [:]
                for (g, grad) in gradients[id] ?? [:] {
                    let key = "\(id).\(g)"
                    guard var p = groups.removeValue(forKey: g) else { continue }
                    if var opt = training.adam.removeValue(forKey: key) {
                        opt.update(&p, gradient: settings.clip.map { clipped(grad, toNorm: Float($0)) } ?? grad, lrScale: lrScale,
                                   lazy: sparse.contains(g), threads: options.threads)
                        training.adam[key] = opt
                    }
                    groups[g] = p
                }
                training.parameters[id] = groups
            }
            state.withLock { st in for id in settings.train { st.parameters[id] = training.parameters[id] } }
            if training.history.names.isEmpty { training.history.names = losses.map(\.0) }
            training.history.rows.append(losses.map(\.1))
            training.step += 1
            stepsThisProcess += 1
            emit(.training(stage: stage.name, step: training.step, steps: settings.steps, losses: losses.map { (name: $0.0, value: $0.1) }))
            if let abort = options.abortAfterSteps, stepsThisProcess >= abort {
                throw RunError("aborted after \(abort) steps (test hook)")
            }
            if training.step % settings.checkpointEvery == 0 && training.step < settings.steps {
                try store.store(checkpointKey, ["state": training.value], info: info)
            }
        }
        if let held = training.held {
            let steps = held.editSteps
            let when = steps.count <= 6 ? steps.map(String.init).joined(separator: ", ")
                : steps.prefix(3).map(String.init).joined(separator: ", ") + ", …, " + steps.suffix(2).map(String.init).joined(separator: ", ")
            var note = "; dataset update: \(held.totalEdits) edit\(held.totalEdits == 1 ? "" : "s") of \(held.edits.values.filter { $0 > 0 }.count) frames"
                + (steps.isEmpty ? "" : " at steps \(when)")
            if let update, stepsThisProcess > 0 {
                // IDU's own cost besides the editors: the rest of the editing subgraph and the held targets.
                let step = (Date().timeIntervalSince(stageStarted) - update.editorSeconds) / Double(stepsThisProcess)
                let own = update.overheadSeconds / Double(stepsThisProcess)
                note += String(format: "; editors %.1f s in all, the update's own cost %.2f ms a step (%.1f%% of a step without the editors)",
                               update.editorSeconds, 1000 * own, 100 * own / max(step, 1e-9))
            }
            state.withLock { $0.summary.ran[recordID] = ($0.summary.ran[recordID] ?? "") + note }
            training.held = nil
        }
        try store.store(stageKey, ["state": training.value], info: info)
        try finish(training)
        return stageKey.hex
    }

    /// `pgflow grad`: one forward and backward of `loss` at `frame` with the current parameters;
    /// returns "node.group" → gradient for every trainable node the loss depends on.
    public func gradients(loss: PortRef, frame: Int) throws -> [(String, Tensor)] {
        try gradients(loss: loss, frames: [frame])
    }

    /// The gradient an optimize step on this batch of frames would take: the mean over `frames`.
    public func gradients(loss: PortRef, frames: [Int]) throws -> [(String, Tensor)] {
        precondition(!frames.isEmpty, "gradients need at least one frame")
        let trainable = order.filter { graph.ancestors(of: [loss.node]).contains($0) && ingredients[$0]!.trainable }
        guard !trainable.isEmpty else { throw RequestError("the loss \(loss) depends on no trainable node") }
        let tg = try trainingGraph(loss: loss, train: trainable)
        try materialize(tg.constants.map { .node($0) })
        if let n = state.withLock({ $0.summary.frameCount }), let frame = frames.first(where: { !(0..<n).contains($0) }) {
            throw RequestError("frame \(frame) is outside the clip: it has \(n) frame\(n == 1 ? "" : "s") (0…\(n - 1))")
        }
        for id in tg.live where ingredients[id]!.trainable {
            _ = try parameters(id, statics: try staticInputs(id, skipping: Set(tg.live)))
        }
        let (_, grads) = try forwardBackwardRecovering(tg, loss: loss, frames: frames)
        var out: [(String, Tensor)] = []
        let params = state.withLock { $0.parameters }
        for id in trainable {
            for (g, p) in (params[id] ?? [:]).sorted(by: { $0.key < $1.key }) {
                out.append(("\(id).\(g)", grads[id]?[g] ?? Tensor(zeros: p.shape)))
            }
        }
        return out
    }
}

