import Foundation

/// How a graph's last `pgflow exec` went, beside its run record: the exact command, when, how long
/// each node took and how it ended. `pgflow report` shows it so a run can be reproduced.
public struct RunLog: Codable, Sendable {
    public var command: [String]
    public var directory: String
    public var started: Date
    public var seconds: Double
    /// 0 done, 1 failed, 2 invalid, 130 interrupted.
    public var exit: Int32
    public var pgflow: String
    /// Node id → seconds it ran this time (absent: reused from the cache).
    public var nodeSeconds: [String: Double]

    public init(command: [String], directory: String, started: Date, seconds: Double, exit: Int32, nodeSeconds: [String: Double]) {
        self.command = command
        self.directory = directory
        self.started = started
        self.seconds = seconds
        self.exit = exit
        self.pgflow = PGFlowVersion.string
        self.nodeSeconds = nodeSeconds
    }

    static func url(_ cacheDirectory: URL, graph: Graph) -> URL {
        RunRecord.url(cacheDirectory, graph: graph).deletingPathExtension().appendingPathExtension("log.json")
    }

    public static func load(_ cacheDirectory: URL, graph: Graph) -> RunLog? {
        guard let data = try? Data(contentsOf: url(cacheDirectory, graph: graph)) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(RunLog.self, from: data)
    }

    /// Best effort: a log that cannot be written never fails a run.
    public func save(_ cacheDirectory: URL, graph: Graph) {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self) else { return }
        try? POSIXFile.writeFile(data, to: Self.url(cacheDirectory, graph: graph).path)
    }
}
