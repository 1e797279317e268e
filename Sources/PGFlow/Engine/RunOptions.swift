import Foundation

public struct RunOptions: Sendable {
    /// What to produce; nil means every `run` stage in order, then `outputs`.
    public var targets: [Target]?
    /// Stop after this node (and what it needs): `--until NODE`.
    public var until: String?
    /// Recompute everything (results are still written to the cache): `--no-cache`.
    public var recomputeAll: Bool
    /// Recompute these nodes even if cached: `--force NODE`.
    public var force: Set<String>
    /// Worker threads for nodes and frames.
    public var threads: Int
    /// Tests only: stop dead after this many optimizer steps in this process, without writing
    /// anything more — what `kill -9` does — so resuming from checkpoints can be checked.
    public var abortAfterSteps: Int?

    public init(targets: [Target]? = nil, until: String? = nil, recomputeAll: Bool = false,
                force: Set<String> = [], threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                abortAfterSteps: Int? = nil) {
        self.targets = targets
        self.until = until
        self.recomputeAll = recomputeAll
        self.force = force
        self.threads = max(1, threads)
        self.abortAfterSteps = abortAfterSteps
    }
}

/// What a run produced and did, for the CLI's closing lines and for tests.
public struct RunSummary: Sendable {
    /// Node id → why it ran (absent: reused from the cache).
    public var ran: [String: String] = [:]
    public var cached: [String] = []
    /// Nodes the targets depend on that did not have to be read, because everything they feed was cached.
    public var notNeeded: [String] = []
    /// Nodes whose results are never stored (cache policy recompute) and were computed inside
    /// their consumers, or not at all when those were cached.
    public var recomputed: [String] = []
    /// Static target values (e.g. an Encoder's File record), by target text.
    public var outputs: [(target: String, value: Value)] = []
    public var frameCount: Int?
    /// Optimize stage name → per-step loss history.
    public var histories: [String: LossHistory] = [:]
}

/// Per-step values of every loss term of one optimize stage.
public struct LossHistory: Sendable, Equatable {
    public var names: [String] = []
    public var rows: [[Double]] = []
    public init(names: [String] = [], rows: [[Double]] = []) { self.names = names; self.rows = rows }

    public var csv: String {
        (["step"] + names).joined(separator: ",") + "\n"
            + rows.enumerated().map { i, r in ([String(i + 1)] + r.map { String($0) }).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }
}
