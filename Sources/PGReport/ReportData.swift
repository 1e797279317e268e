import Foundation

/// Everything a run report shows, as the JSON a script would read (`<name>-report.json` beside the
/// page): the page is drawn from this and nothing else, so its numbers are the file's numbers.
/// Images (frames, strips, the graph) are the only things not in it.
public struct ReportData: Codable, Sendable {
    public struct Stage: Codable, Sendable {
        public var name: String
        /// Loss term names, and one row per step of their batch-mean values.
        public var terms: [String]
        public var rows: [[Double]]
        /// Where the numbers came from: the stage's history CSV, or the cache.
        public var source: String
        /// False when only a checkpoint exists (the stage was interrupted).
        public var complete: Bool
    }
    public struct Metrics: Codable, Sendable {
        public var node: String
        public var label: String
        public var values: [String: Double]
        public var source: String
    }
    public struct Node: Codable, Sendable {
        public var id: String
        public var type: String
        public var status: String
        /// Seconds it ran in the last exec (nil: reused from the cache, or not run).
        public var seconds: Double?
        public var cacheEntries: Int
        public var cacheBytes: Int64
    }
    public struct Frames: Codable, Sendable {
        /// Column titles, left to right (e.g. "source (src.frames)", "result (render.rgb)").
        public var columns: [String]
        public var frames: [Int]
        /// The image row each strip column takes over time.
        public var stripRow: Int?
    }

    public var graph: String
    public var graphFile: String
    public var graphSHA256: String
    public var pgflow: String
    public var machine: String
    public var generated: String
    public var command: String?
    public var ranAt: String?
    public var runSeconds: Double?
    public var runExit: Int32?
    public var frameCount: Int?
    public var stages: [Stage] = []
    public var metrics: [Metrics] = []
    public var nodes: [Node] = []
    public var frames: Frames?
    /// What could not be shown and why, one sentence each.
    public var problems: [String] = []
}
