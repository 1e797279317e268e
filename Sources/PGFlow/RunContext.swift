import Foundation

/// What an operator may use while it runs: who it is (for messages), progress, warnings,
/// cancellation and where scratch files may go.
public final class RunContext: @unchecked Sendable {
    public let nodeID: String
    public let nodeType: String
    /// Directory of the graph file.
    public let graphDirectory: URL
    /// Worker threads this node may use for its own parallel loops.
    public let threads: Int
    /// The run's plugin workers (nil outside an engine run: a node that needs one says so).
    public let plugins: PluginHost?
    private let onProgress: @Sendable (_ done: Int, _ total: Int) -> Void
    private let onWarning: @Sendable (String) -> Void
    private let cancelled: @Sendable () -> Bool

    public init(nodeID: String, nodeType: String, graphDirectory: URL, threads: Int = 2, plugins: PluginHost? = nil,
                onProgress: @escaping @Sendable (Int, Int) -> Void = { _, _ in },
                onWarning: @escaping @Sendable (String) -> Void = { _ in },
                cancelled: @escaping @Sendable () -> Bool = { false }) {
        self.nodeID = nodeID
        self.nodeType = nodeType
        self.graphDirectory = graphDirectory
        self.threads = threads
        self.plugins = plugins
        self.onProgress = onProgress
        self.onWarning = onWarning
        self.cancelled = cancelled
    }

    /// A plain context for tests and tools that run an operator outside a graph.
    public static func standalone(_ type: String = "test", directory: URL? = nil) -> RunContext {
        RunContext(nodeID: type, nodeType: type,
                   graphDirectory: directory ?? URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
    }

    /// Report progress inside one evaluation (e.g. frames encoded so far).
    public func progress(_ done: Int, of total: Int) { onProgress(done, total) }
    public func warn(_ message: String) { onWarning(message) }
    /// Long loops call this and stop early by throwing.
    public func checkCancelled() throws {
        if cancelled() { throw CancellationError() }
    }
}
