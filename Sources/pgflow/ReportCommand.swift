import ArgumentParser
import Foundation
import PGFlow
import PGReport

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write one self-contained HTML page about a graph's last run.",
        discussion: helpText("""
        The page shows the loss curves of every optimize stage (per term, linear or log scale), the
        Metrics nodes' results, source and result frames side by side with one row of every frame
        over time (flicker shows as streaks), the graph drawn by Graphviz coloured by cache state
        with each node's time and cache footprint, and the exact command, graph hash, pgflow
        version and machine. Nothing runs: it reads the cache, the run log and the files the graph
        wrote. The numbers are also written as JSON beside the page (<name>-report.json), the same
        numbers the page shows. Missing or damaged files are listed on the page, never fatal.

        Examples:
          pgflow report Graphs/reconstruct.json             # → Graphs/out/reconstruct-report.html
          pgflow report g.json -o run.html --frames 6
        """))

    @OptionGroup var options: GraphOptions

    @Option(name: .shortAndLong, help: ArgumentHelp("Where to write the page (default: <the graph's out var, else its folder>/<name>-report.html).", valueName: "file"))
    var output: String?

    @Option(help: "How many evenly spaced frames to show.")
    var frames: Int = 4

    @Option(name: .customLong("cache-dir"), help: ArgumentHelp("Cache folder (default: .pgflow/cache beside the graph).", valueName: "dir"))
    var cacheDirectory: String?

    func run() throws {
        try reportingErrors {
            let (graph, catalog) = try options.load()
            let cacheDir = cacheDirectory.map { URL(fileURLWithPath: $0) } ?? defaultCacheDirectory(for: graph.file)
            let report = try ReportBuilder.build(graph: graph, catalog: catalog, cacheDirectory: cacheDir, frames: max(1, frames))
            let page: URL
            if let output {
                page = URL(fileURLWithPath: output).standardizedFileURL
            } else {
                let folder = graph.vars.first { $0.name == "out" }?.value.string.map { Params.resolve($0, against: graph.directory) } ?? graph.directory
                page = folder.appendingPathComponent("\(graph.name)-report.html")
            }
            let json = page.deletingPathExtension().appendingPathExtension("json")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            do {
                try FileManager.default.createDirectory(at: page.deletingLastPathComponent(), withIntermediateDirectories: true)
                try encoder.encode(report.data).write(to: json, options: .atomic)
                try Data(ReportPage.html(report.data, images: report.images, graphSVG: report.graphSVG).utf8).write(to: page, options: .atomic)
            } catch {
                throw ExitMessage(code: 1, "cannot write the report to \(page.path): \(error.localizedDescription)")
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: page.path)[.size] as? NSNumber)?.intValue ?? 0
            print("wrote \(page.path) (\(size / 1024) KiB) and \(json.lastPathComponent)")
            for p in report.data.problems { print("  note: \(p)") }
        }
    }
}
