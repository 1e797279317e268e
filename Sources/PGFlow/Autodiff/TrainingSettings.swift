import Foundation

/// The settings of an `optimize` stage, read from its JSON with every problem reported by path.
public struct TrainingSettings: Sendable {
    public var loss: PortRef
    public var train: [String]
    public var steps: Int
    /// Frames per step; gradients are averaged over them.
    public var batch: Int
    public var seed: UInt64
    /// Which frames training samples from, as [start, end) fractions or indices (see `frameRange`).
    public var frames: JSON
    /// "node" or "node.group" → learning rate; the more specific wins.
    public var learningRates: [String: Double]
    public var defaultLearningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    public var schedule: Schedule
    /// Clip each group's gradient to this L2 norm.
    public var clip: Double?
    public var checkpointEvery: Int
    /// Where to write the loss history as CSV (relative to the graph), if anywhere.
    public var history: String?
    /// A folder (relative to the graph) to write each trained node's parameters to as
    /// `<node>.npz`, so weights leave the cache in a form Python and other graphs can load.
    public var export: String?

    public enum Schedule: Sendable, Equatable {
        case constant
        /// lr · final^(step/steps): log-linear decay to `final`× the start, as 3DGS does.
        case exponential(final: Double)
        /// lr · gamma^⌊step/every⌋.
        case step(every: Int, gamma: Double)

        func scale(step: Int, of steps: Int) -> Double {
            switch self {
            case .constant: return 1
            case .exponential(let final): return steps > 0 ? Foundation.pow(final, Double(step) / Double(steps)) : 1
            case .step(let every, let gamma): return Foundation.pow(gamma, Double(step / max(every, 1)))
            }
        }
    }

    static let keys = ["loss", "train", "steps", "batch", "seed", "frames", "lr", "betas", "eps", "schedule",
                       "clip", "checkpoint_every", "history", "export"]

    /// Reads settings; returns problems as (path suffix, message) for the validator.
    static func read(_ o: OptimizeSettings) -> (TrainingSettings, [(String, String)]) {
        var problems: [(String, String)] = []
        let j = o.settings
        for (k, _) in j.objectMembers ?? [] where !keys.contains(k) {
            problems.append((k, "unknown optimize setting \"\(k)\" (settings: \(keys.joined(separator: ", ")))"))
        }
        func number(_ k: String, _ d: Double, min: Double? = nil, max: Double? = nil) -> Double {
            guard let v = j[k] else { return d }
            guard let x = v.double else { problems.append((k, "\(k) should be a number, got \(v.text)")); return d }
            if let min, x < min { problems.append((k, "\(k) is \(x), below \(min)")) }
            if let max, x > max { problems.append((k, "\(k) is \(x), above \(max)")) }
            return x
        }
        var s = TrainingSettings(loss: o.loss, train: o.train, steps: o.steps, batch: 1, seed: 0, frames: j["frames"] ?? .string("all"),
                                 learningRates: [:], defaultLearningRate: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-15,
                                 schedule: .constant, clip: nil, checkpointEvery: 100, history: j["history"]?.string,
                                 export: j["export"]?.string)
        s.batch = Int(number("batch", 1, min: 1, max: 4096))
        s.seed = UInt64(number("seed", 0, min: 0))
        s.eps = number("eps", 1e-15, min: 0)
        s.checkpointEvery = Int(number("checkpoint_every", 100, min: 1))
        if let c = j["clip"] { s.clip = c.double; if c.double == nil { problems.append(("clip", "clip should be a number")) } }
        switch j["lr"] {
        case nil: break
        case .some(let v) where v.double != nil: s.defaultLearningRate = v.double!
        case .some(.object(let m)):
            for (k, v) in m {
                guard let x = v.double else { problems.append(("lr.\(k)", "learning rate should be a number, got \(v.text)")); continue }
                if k == "default" { s.defaultLearningRate = x } else { s.learningRates[k] = x }
            }
        case .some(let v): problems.append(("lr", "lr should be a number or an object of \"node\"/\"node.group\" → number, got \(v.text)"))
        }
        if let b = j["betas"] {
            if let a = b.array, a.count == 2, let b1 = a[0].double, let b2 = a[1].double, (0..<1).contains(b1), (0..<1).contains(b2) {
                s.beta1 = b1; s.beta2 = b2
            } else { problems.append(("betas", "betas should be [beta1, beta2], each in [0, 1)")) }
        }
        if let sch = j["schedule"] {
            switch sch["type"]?.string {
            case "constant": s.schedule = .constant
            case "exponential":
                if let f = sch["final"]?.double, f > 0 { s.schedule = .exponential(final: f) }
                else { problems.append(("schedule.final", "an exponential schedule needs \"final\" > 0 (the end lr as a fraction of the start)")) }
            case "step":
                if let e = sch["every"]?.int, e > 0, let g = sch["gamma"]?.double { s.schedule = .step(every: e, gamma: g) }
                else { problems.append(("schedule", "a step schedule needs \"every\" (steps) and \"gamma\"")) }
            default: problems.append(("schedule.type", "schedule type should be \"constant\", \"exponential\" or \"step\""))
            }
        }
        if frameRange(s.frames, count: 100) == nil {
            problems.append(("frames", "frames should be \"all\", \"A:B\" with indices or percentages (\"0:60%\", \"60%:\"), or [start, end]"))
        }
        return (s, problems)
    }

    /// The learning rate of one group: "node.group", else "node", else the default.
    public func learningRate(node: String, group: String) -> Double {
        learningRates["\(node).\(group)"] ?? learningRates[node] ?? defaultLearningRate
    }

    /// Frames to sample from, given the clip length: "all", "A:B" (indices or "N%"; either side
    /// may be empty), or [start, end). Nil when the spec is malformed.
    public static func frameRange(_ spec: JSON, count: Int) -> Range<Int>? {
        func bound(_ text: Substring, _ fallback: Int) -> Int? {
            let t = text.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { return fallback }
            if t.hasSuffix("%"), let p = Double(t.dropLast()) { return Int((p / 100 * Double(count)).rounded()) }
            return Int(t)
        }
        var lo = 0, hi = count
        if let s = spec.string {
            if s == "all" { return 0..<count }
            let parts = s.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let a = bound(parts[0], 0), let b = bound(parts[1], count) else { return nil }
            lo = a; hi = b
        } else if let a = spec.array, a.count == 2, let x = a[0].int, let y = a[1].int {
            lo = x; hi = y
        } else {
            return nil
        }
        lo = max(0, min(lo, count)); hi = max(lo, min(hi, count))
        return lo..<hi
    }
}
