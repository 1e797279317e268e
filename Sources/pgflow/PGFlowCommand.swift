import ArgumentParser
import Foundation
import PGFlow
import PGNodes

struct PGFlowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgflow",
        abstract: "Run 3D-aware portrait video editing pipelines described as JSON dataflow graphs.",
        discussion: helpText("""
        A graph file names typed nodes (VideoSource, Splat, NeuralRenderer, Encoder, …), links their
        ports as "node.port" and lists stages to run. pgflow validates the whole graph first, then runs
        only what its on-disk cache lacks: the second run of an unchanged graph does no work.

        Examples:
          pgflow exec Graphs/make-sample.json             # the synthetic sample
          pgflow exec Graphs/reconstruct.json --explain   # train, render, say why
          pgflow exec Graphs/transcode.json --set video=clip.mp4
          pgflow validate Graphs/reconstruct.json
          pgflow dot Graphs/reconstruct.json --status -o graph.svg
          pgflow nodes NeuralRenderer
          pgflow cache ls

        Exit status: 0 success, 1 a node failed while running, 2 the graph (or command line) is
        invalid, 130 interrupted (finished results stay cached).
        """),
        version: "pgflow \(PGFlowVersion.string)",
        subcommands: [Exec.self, Validate.self, Grad.self, ReportCommand.self, NodesCommand.self, PluginsCommand.self, Dot.self, CacheCommand.self, Model.self])
}

/// Options every graph-reading command shares.
struct GraphOptions: ParsableArguments {
    @Argument(help: "The graph file (JSON).", completion: .file(extensions: ["json"]))
    var graph: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a graph var: --set name=value (repeatable). Values that parse as JSON (numbers, true) keep their type.", valueName: "name=value"))
    var overrides: [String] = []

    @Option(name: .customLong("nodes"), help: ArgumentHelp("The node catalog folder (default: $PGFLOW_NODES, or Nodes/ next to the pgflow binary).", valueName: "dir"))
    var nodesDirectory: String?

    var graphURL: URL { URL(fileURLWithPath: graph).standardizedFileURL }

    func catalog() throws -> Catalog {
        try loadCatalog(nodesDirectory)
    }

    func parsedOverrides() throws -> [(String, String)] {
        try overrides.map { text in
            guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
                throw ValidationError("--set expects name=value, got \"\(text)\"")
            }
            return (String(text[..<eq]), String(text[text.index(after: eq)...]))
        }
    }

    /// Loads and validates; problems print and exit 2.
    func load() throws -> (Graph, Catalog) {
        let catalog = try catalog()
        let graph = try PGFlow.Graph.load(graphURL, catalog: catalog, overrides: try parsedOverrides())
        return (graph, catalog)
    }
}

func loadCatalog(_ explicit: String?) throws -> Catalog {
    let dir: URL
    if let explicit { dir = URL(fileURLWithPath: explicit) }
    else if let found = Catalog.defaultDirectory(executable: runningExecutable(),
                                                 environment: ProcessInfo.processInfo.environment) {
        dir = found
    } else {
        throw ExitMessage(code: 2, "cannot find the node catalog (Nodes/); pass --nodes DIR or set PGFLOW_NODES")
    }
    // Extra plugin folders (tests, a user's own plugins): $PGFLOW_PLUGIN_PATH, colon-separated.
    let extra = (ProcessInfo.processInfo.environment["PGFLOW_PLUGIN_PATH"] ?? "").split(separator: ":").map { URL(fileURLWithPath: String($0)) }
    let catalog = try Catalog.load(dir, pluginFolders: extra)
    // The catalog and this build must agree before any graph is judged by the catalog.
    let mismatches = catalog.implementationProblems(Registry.operators)
    if !mismatches.isEmpty { throw PGFlow.ValidationError(mismatches) }
    return catalog
}

/// The binary itself, links resolved: argv[0] is only a name when pgflow is found on PATH.
func runningExecutable() -> URL {
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        return URL(fileURLWithPath: exe)
    }
    return (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).resolvingSymlinksInPath().absoluteURL
}

/// An error that prints as-is and exits with its code.
struct ExitMessage: Error, CustomStringConvertible {
    var code: Int32
    var description: String
    init(code: Int32, _ message: String) { self.code = code; self.description = message }
}

/// Runs a command body, mapping pgflow's errors to messages and exit codes.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as PGFlow.ValidationError {
        FileHandle.standardError.write(Data((e.description + "\n").utf8))
        throw ExitCode(2)
    } catch let e as RunError {
        FileHandle.standardError.write(Data(("error: \(e.description)\n").utf8))
        throw ExitCode(1)
    } catch let e as RequestError {
        FileHandle.standardError.write(Data(("error: \(e.description)\n").utf8))
        throw ExitCode(2)
    } catch let e as ExitMessage {
        FileHandle.standardError.write(Data(("error: \(e.description)\n").utf8))
        throw ExitCode(e.code)
    } catch let e as CacheError where e.code == .unusable {
        FileHandle.standardError.write(Data(("error: \(e.message) Pass --cache-dir DIR to keep the cache in a writable folder.\n").utf8))
        throw ExitCode(1)
    } catch is CancellationError {
        FileHandle.standardError.write(Data("interrupted: finished results are cached; run again to continue\n".utf8))
        throw ExitCode(130)
    }
}

func defaultCacheDirectory(for graph: URL) -> URL {
    graph.deletingLastPathComponent().appendingPathComponent(".pgflow/cache")
}

/// Help text as written in the source, re-flowed for ArgumentParser: lines of one paragraph are
/// joined so the terminal's width decides where they break; blank lines and indented lines
/// (examples, lists) stay as they are.
func helpText(_ text: String) -> String {
    var out: [String] = []
    var joinable = false
    for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
        let plain = !line.isEmpty && !line.hasPrefix(" ") && !line.hasPrefix("-")
        if plain && joinable, let last = out.popLast() { out.append(last + " " + line) } else { out.append(line) }
        joinable = plain
    }
    return out.joined(separator: "\n")
}
