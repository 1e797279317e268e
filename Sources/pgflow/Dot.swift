import ArgumentParser
import Foundation
import PGFlow
import PGNodes

struct Dot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a graph as Graphviz DOT, or render it to SVG/PNG.",
        discussion: helpText("""
        Prints DOT on stdout: one record per node with its input and output ports, value types on
        edges (×t marks per-frame), trainable and differentiable nodes marked, stages as clusters and
        a legend. --status colours nodes green (cached) or orange (will run). -o FILE.svg|png renders
        through Graphviz's `dot` (apt-get install graphviz).
        """))

    @OptionGroup var options: GraphOptions

    @Flag(help: "Colour nodes by cache state (cached / will run).")
    var status = false

    @Option(name: .customLong("cache-dir"), help: ArgumentHelp("Cache folder for --status (default: .pgflow/cache beside the graph).", valueName: "dir"))
    var cacheDirectory: String?

    @Option(name: .shortAndLong, help: ArgumentHelp("Write here instead of stdout; .svg/.png/.pdf are rendered with Graphviz, anything else is DOT text.", valueName: "file"))
    var output: String?

    func run() throws {
        try reportingErrors {
            let (graph, catalog) = try options.load()
            var states: [String: NodeStatus]?
            if status {
                let dir = cacheDirectory.map { URL(fileURLWithPath: $0) } ?? defaultCacheDirectory(for: graph.file)
                let engine = try Engine(graph: graph, catalog: catalog, operators: Registry.operators, cacheDirectory: dir)
                states = try engine.status()
            }
            let text = graph.dot(catalog: catalog, status: states)
            guard let output else { print(text, terminator: ""); return }
            let url = URL(fileURLWithPath: output)
            let format = url.pathExtension.lowercased()
            guard ["svg", "png", "pdf"].contains(format) else {
                try Data(text.utf8).write(to: url, options: .atomic)
                return
            }
            try render(text, format: format, to: url)
            print("wrote \(output)")
        }
    }

    func render(_ text: String, format: String, to url: URL) throws {
        let dotPath = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
            .split(separator: ":").map { "\($0)/dot" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let dotPath else {
            throw ExitMessage(code: 1, "Graphviz's `dot` is not installed, so \(url.lastPathComponent) cannot be rendered; install it (apt-get install graphviz) or write DOT with -o graph.dot")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: dotPath)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        process.arguments = ["-T\(format)", "-o", tmp.path]
        let input = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            try? FileManager.default.removeItem(at: tmp)
            throw ExitMessage(code: 1, "Graphviz's dot failed: \(message)")
        }
        guard rename(tmp.path, url.path) == 0 else { throw ExitMessage(code: 1, "cannot write \(url.path)") }
    }
}
