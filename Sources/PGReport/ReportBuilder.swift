import Foundation
import PGFlow
import PGMedia
import PGNodes
import PGTensor

/// Gathers a report from what a graph's runs left: the cache (stage results, node outputs,
/// frames), the run log of the last `pgflow exec`, and the files the graph wrote (loss history
/// CSVs, Metrics JSON), which are preferred where present, as a script would read them. Nothing
/// runs. Whatever is missing or damaged becomes a sentence in `problems`, never a failure.
public enum ReportBuilder {
    public struct Report {
        public var data: ReportData
        /// PNG bytes by name (see `ReportPage.html`).
        public var images: [String: Data]
        public var graphSVG: String?
    }

    public static func build(graph: Graph, catalog: Catalog, cacheDirectory: URL, frames wanted: Int = 4) throws -> Report {
        let engine = try Engine(graph: graph, catalog: catalog, operators: Registry.operators, cacheDirectory: cacheDirectory)
        let snap = try engine.snapshot()
        let formatter = ISO8601DateFormatter()
        var d = ReportData(graph: graph.name, graphFile: graph.file.path,
                           graphSHA256: (try? sha256Hex(ofFile: graph.file)) ?? "unreadable",
                           pgflow: PGFlowVersion.string, machine: machine(), generated: formatter.string(from: Date()))
        d.frameCount = snap.frameCount
        let log = RunLog.load(cacheDirectory, graph: graph)
        if let log {
            d.command = log.command.map(shellQuoted).joined(separator: " ")
            d.ranAt = formatter.string(from: log.started)
            d.runSeconds = log.seconds
            d.runExit = log.exit
        } else {
            d.problems.append("No run log for this graph and cache: the command, times per node and exit status appear after the next `pgflow exec`.")
        }

        // Loss histories: the stage's CSV when it names one, else the cache.
        let cached = Dictionary(snap.histories.map { ($0.stage, ($0.history, $0.complete)) }, uniquingKeysWith: { a, _ in a })
        for stage in graph.stages {
            guard case .optimize(let o) = stage.kind else { continue }
            var fromCSV: ReportData.Stage?
            if let path = o.settings["history"]?.string {
                let url = Params.resolve(path, against: graph.directory)
                switch readHistoryCSV(url) {
                case .success(let (terms, rows)):
                    fromCSV = ReportData.Stage(name: stage.name, terms: terms, rows: rows, source: "\(path)", complete: cached[stage.name]?.1 ?? true)
                case .failure(let why):
                    d.problems.append("Stage \"\(stage.name)\": its history \(url.path) \(why)\(cached[stage.name] == nil ? "" : "; the curves come from the cache instead").")
                }
            }
            if let s = fromCSV { d.stages.append(s); continue }
            if let (history, complete) = cached[stage.name] {
                d.stages.append(ReportData.Stage(name: stage.name, terms: history.names, rows: history.rows, source: "the cache", complete: complete))
            } else {
                d.problems.append("Stage \"\(stage.name)\" has no result in the cache: it has not run with these settings.")
            }
        }

        // Metrics: the node's JSON report when present, else its cached output.
        for node in graph.nodes where node.type == "Metrics" {
            let label = node.param("label")?.string ?? node.id
            if let path = node.param("path")?.string {
                let url = Params.resolve(path, against: graph.directory)
                switch readMetricsJSON(url) {
                case .success(let values):
                    d.metrics.append(ReportData.Metrics(node: node.id, label: label, values: values, source: path))
                    continue
                case .failure(let why):
                    d.problems.append("Metrics node \"\(node.id)\": its report \(url.path) \(why).")
                }
            }
            if let r = engine.cachedValue(PortRef(node: node.id, port: "metrics"), frame: nil)?.record {
                d.metrics.append(ReportData.Metrics(node: node.id, label: label, values: r.compactMapValues(\.number), source: "the cache"))
            } else {
                d.problems.append("Metrics node \"\(node.id)\" has no result in the cache.")
            }
        }

        // Frames: what the first Metrics node compares, evenly spaced, and one row over time.
        var images: [String: Data] = [:]
        if let m = graph.nodes.first(where: { $0.type == "Metrics" }), let reference = m.input("reference"), let image = m.input("image"),
           let n = snap.frameCount, n > 0 {
            let columns = [("source (\(reference))", reference), ("result (\(image))", image)]
            let picks = Array(Set((0..<min(wanted, n)).map { wanted <= 1 ? 0 : Int((Double($0) * Double(n - 1) / Double(max(wanted - 1, 1))).rounded()) })).sorted()
            var stripRow: Int?
            for (c, column) in columns.enumerated() {
                var missing = 0
                for t in picks {
                    guard let frame = engine.cachedValue(column.1, frame: t)?.tensor, frame.rank == 3 else { missing += 1; continue }
                    images["frame-\(c)-\(t)"] = try? png(frame)
                }
                // The strip: the middle row of every frame, frame 0 at the top.
                var rows: [Tensor] = []
                for t in 0..<n {
                    guard let frame = engine.cachedValue(column.1, frame: t)?.tensor, frame.rank == 3 else { break }
                    stripRow = stripRow ?? frame.shape[1] / 2
                    rows.append(row(frame, stripRow!))
                }
                if rows.count == n, let strip = stack(rows) { images["strip-\(c)"] = try? png(strip) }
                if missing > 0 { d.problems.append("\(missing) of the \(picks.count) frames of \(column.1) are not in the cache.") }
            }
            d.frames = ReportData.Frames(columns: columns.map(\.0), frames: picks, stripRow: stripRow)
        }

        for id in graph.nodes.map(\.id) {
            let f = snap.footprint[id] ?? (0, 0)
            d.nodes.append(ReportData.Node(id: id, type: graph.node(id)!.type, status: snap.status[id]?.rawValue ?? "unknown",
                                           seconds: log?.nodeSeconds[id], cacheEntries: f.entries, cacheBytes: f.bytes))
        }
        return Report(data: d, images: images, graphSVG: graphviz(graph.dot(catalog: catalog, status: snap.status)))
    }

    /// The CSV an optimize stage's `history` writes: `step,term,…` then one row per step.
    static func readHistoryCSV(_ url: URL) -> Swift.Result<([String], [[Double]]), ReportProblem> {
        guard let data = FileManager.default.contents(atPath: url.path) else { return .failure(ReportProblem("is missing")) }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard let header = lines.first, header.hasPrefix("step,") else { return .failure(ReportProblem("has no header line (step,…)")) }
        let terms = header.split(separator: ",").dropFirst().map(String.init)
        var rows: [[Double]] = []
        for (i, line) in lines.dropFirst().enumerated() where !line.isEmpty {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false)
            let values = cells.dropFirst().compactMap { Double($0) }
            guard cells.count == terms.count + 1, values.count == terms.count else {
                return .failure(ReportProblem("is truncated or damaged at line \(i + 2) (\(cells.count) of \(terms.count + 1) columns readable)"))
            }
            rows.append(values)
        }
        if data.last != UInt8(ascii: "\n") && !rows.isEmpty { return .failure(ReportProblem("ends in the middle of a line (truncated)")) }
        return .success((terms, rows))
    }

    /// The JSON a Metrics node writes: its `summary` object of numbers.
    static func readMetricsJSON(_ url: URL) -> Swift.Result<[String: Double], ReportProblem> {
        guard let data = FileManager.default.contents(atPath: url.path) else { return .failure(ReportProblem("is missing")) }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return .failure(ReportProblem("is not readable JSON (truncated or damaged)"))
        }
        guard let summary = object["summary"] as? [String: Any] else { return .failure(ReportProblem("has no \"summary\"")) }
        return .success(summary.compactMapValues { ($0 as? NSNumber)?.doubleValue })
    }

    public struct ReportProblem: Error, CustomStringConvertible {
        public var description: String
        init(_ s: String) { description = s }
    }

    static func row(_ image: Tensor, _ y: Int) -> Tensor {
        let (c, h, w) = (image.shape[0], image.shape[1], image.shape[2])
        let yy = min(max(y, 0), h - 1)
        var out = Tensor(zeros: [3, 1, w])
        for ch in 0..<3 { for x in 0..<w { out[ch, 0, x] = image[min(ch, c - 1), yy, x] } }
        return out
    }

    static func stack(_ rows: [Tensor]) -> Tensor? {
        guard let w = rows.first?.shape[2], rows.allSatisfy({ $0.shape[2] == w }) else { return nil }
        var out = Tensor(zeros: [3, rows.count, w])
        for (y, r) in rows.enumerated() { for ch in 0..<3 { for x in 0..<w { out[ch, y, x] = r[ch, 0, x] } } }
        return out
    }

    /// PNG bytes of an image [C, H, W] (C = 1 or 3), through libpng.
    static func png(_ image: Tensor) throws -> Data {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-report-\(getpid())-\(UUID().uuidString).png")
        defer { try? FileManager.default.removeItem(at: url) }
        try PNGImage.write(image.rank == 3 && image.shape[0] > 3 ? Tensor(shape: [3] + image.shape.dropFirst(), scalars: Array(image.scalars.prefix(3 * image.shape[1] * image.shape[2]))) : image, to: url)
        return try Data(contentsOf: url)
    }

    /// The graph as inline SVG through Graphviz, or nil when `dot` is not installed or fails.
    static func graphviz(_ dot: String) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .map { "\($0)/dot" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let path else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = ["-Tsvg"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let collected = Mutexed()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async { collected.data = output.fileHandleForReading.readDataToEndOfFile(); done.signal() }
        input.fileHandleForWriting.write(Data(dot.utf8))
        try? input.fileHandleForWriting.close()
        p.waitUntilExit()
        done.wait()
        guard p.terminationStatus == 0 else { return nil }
        let svg = String(decoding: collected.data, as: UTF8.self)
        // Inline SVG needs no XML prolog or doctype.
        return svg.range(of: "<svg").map { String(svg[$0.lowerBound...]) }
    }

    final class Mutexed: @unchecked Sendable { var data = Data() }

    /// One line naming the machine: OS, CPU model and cores, memory.
    public static func machine() -> String {
        var u = utsname()
        uname(&u)
        func text<T>(_ t: T) -> String { withUnsafeBytes(of: t) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
            .first { $0.hasPrefix("model name") }.map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown CPU"
        let memory = Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30)
        return "\(text(u.sysname)) \(text(u.release)) \(text(u.machine)), \(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(String(format: "%.0f", memory)) GiB"
    }

    static func shellQuoted(_ s: String) -> String {
        s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,@%+".contains($0) }) && !s.isEmpty ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
