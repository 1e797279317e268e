/// What the engine reports while it runs; the CLI turns these into a live display, log lines
/// or JSON lines (`--json`).
public enum RunEvent: Sendable {
    case stage(name: String, index: Int, count: Int)
    /// The node's result was reused; nothing ran.
    case cached(node: String, type: String)
    /// The node starts; `frames` is how many frames it computes (nil for static work).
    case started(node: String, type: String, frames: Int?, reason: String)
    case progress(node: String, done: Int, total: Int)
    case finished(node: String, type: String, seconds: Double, frames: Int?)
    case failed(node: String, type: String, frame: Int?, message: String)
    case warning(String)
    /// A line a plugin worker wrote to stderr (also appended to `<cache>/logs/plugin-<name>.log`).
    case log(plugin: String, line: String)
    /// One optimizer step of an optimize stage: the batch-mean of every loss term.
    case training(stage: String, step: Int, steps: Int, losses: [(name: String, value: Double)])
    /// An optimize stage's result was reused (or resumed from a checkpoint at `step`).
    case trainingCached(stage: String, step: Int, steps: Int)
}

/// A node failed while running. Results finished before it stay in the cache.
public struct RunError: Error, Sendable, CustomStringConvertible {
    public var node: String?
    public var type: String?
    public var frame: Int?
    public var message: String

    public init(node: String? = nil, type: String? = nil, frame: Int? = nil, _ message: String) {
        self.node = node
        self.type = type
        self.frame = frame
        self.message = message
    }

    public var description: String {
        guard let node else { return message }
        let at = frame.map { " at frame \($0)" } ?? ""
        return "node \"\(node)\" (\(type ?? "?")) failed\(at): \(message)"
    }
}

/// What a command asked of a valid graph does not fit it (a frame past the clip's end, a loss
/// that depends on nothing trainable): the command line is at fault, so pgflow exits 2.
public struct RequestError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
