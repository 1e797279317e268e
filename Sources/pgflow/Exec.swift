import ArgumentParser
import Foundation
import PGFlow
import PGMedia
import PGNodes
import Synchronization

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a graph: its stages in order, then its outputs.",
        discussion: helpText("""
        Results are cached on disk (default: .pgflow/cache beside the graph) under keys made from
        node type and version, params, input keys, file contents and frame index; a node runs only
        when its key is not in the cache. --explain says why each node ran or was reused.
        Ctrl-C stops cleanly: what finished stays cached and the next run continues from there.
        """))

    @OptionGroup var options: GraphOptions

    @Option(help: ArgumentHelp("Run only this node and what it needs (after the optimize stages that train what it depends on).", valueName: "node"))
    var until: String?

    @Flag(help: "Say for every node and optimize stage whether it was reused from the cache or why it ran.")
    var explain = false

    @Flag(name: .customLong("no-cache"), help: "Recompute every node (results are still written to the cache).")
    var noCache = false

    @Option(help: ArgumentHelp("Recompute this node even if cached (repeatable).", valueName: "node"))
    var force: [String] = []

    @Option(name: .customLong("cache-dir"), help: ArgumentHelp("Cache folder (default: .pgflow/cache beside the graph).", valueName: "dir"))
    var cacheDirectory: String?

    @Flag(help: "Print one JSON event per line on stdout instead of progress (for other tools).")
    var json = false

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @Option(name: .customLong("cache-limit"),
            help: ArgumentHelp("After the run, remove the least recently used cache entries beyond this size, e.g. 5G; none keeps everything (default: $PGFLOW_CACHE_LIMIT, else \(Exec.defaultCacheLimit)).", valueName: "size"))
    var cacheLimit: String?

    /// The store's default ceiling: a few real clips' decoded frames, detections and trained stages.
    static let defaultCacheLimit = "20G"

    func run() throws {
        let events = json ? JSONEvents() : nil
        try reportingErrors {
            do { try execute(events) } catch { events?.failed(error); throw error }
        }
    }

    private func execute(_ events: JSONEvents?) throws {
        do {
            let (graph, catalog) = try options.load()
            if let until, graph.node(until) == nil {
                throw ExitMessage(code: 2, "--until \(until): the graph has no node \"\(until)\"")
            }
            for f in force where graph.node(f) == nil {
                throw ExitMessage(code: 2, "--force \(f): the graph has no node \"\(f)\"")
            }
            let cacheDir = cacheDirectory.map { URL(fileURLWithPath: $0) } ?? defaultCacheDirectory(for: graph.file)
            let limitText = cacheLimit ?? ProcessInfo.processInfo.environment["PGFLOW_CACHE_LIMIT"] ?? Self.defaultCacheLimit
            let limit: Int64? = limitText == "none" ? nil : try CacheCommand.parseSize(limitText).map { Optional($0) }
                ?? { throw ExitMessage(code: 2, "--cache-limit \(limitText): expected a size with its unit, such as 500M or 20G, or none") }()
            let display: any ProgressDisplay = events ?? (isatty(2) == 1 ? LiveDisplay() as any ProgressDisplay : LogLines())
            let interrupt = Interrupt.install()
            // How long each node took, for the run log `pgflow report` shows.
            let nodeSeconds = Mutex<[String: Double]>([:])
            let engine = try Engine(graph: graph, catalog: catalog, operators: Registry.operators,
                                    cacheDirectory: cacheDir,
                                    options: RunOptions(until: until, recomputeAll: noCache, force: Set(force),
                                                        threads: threads ?? ProcessInfo.processInfo.activeProcessorCount),
                                    events: { event in
                                        display.handle(event)
                                        if case .finished(let node, _, let seconds, _) = event {
                                            nodeSeconds.withLock { $0[node, default: 0] += seconds }
                                        }
                                    },
                                    cancelled: { interrupt.requested })
            let started = Date()
            func log(exit: Int32) {
                RunLog(command: CommandLine.arguments.enumerated().map { $0 == 0 ? "pgflow" : $1 },
                       directory: FileManager.default.currentDirectoryPath, started: started,
                       seconds: Date().timeIntervalSince(started), exit: exit,
                       nodeSeconds: nodeSeconds.withLock { $0 }).save(cacheDir, graph: graph)
            }
            let summary: RunSummary
            do {
                summary = try engine.run()
            } catch {
                display.finish()
                log(exit: interrupt.requested || error is CancellationError ? 130 : (error is RequestError ? 2 : 1))
                if interrupt.requested { throw CancellationError() }
                throw error
            }
            log(exit: interrupt.requested ? 130 : 0)
            display.finish()
            // Ctrl-C that came too late to stop anything still means the user asked to stop.
            if interrupt.requested { throw CancellationError() }
            // Reads and writes touch an entry, so what this run used goes last.
            if let limit, let store = try? CacheStore(directory: cacheDir, onWarning: { _ in }) {
                let (removed, freed) = store.gc(maxBytes: limit)
                if removed > 0 && !json {
                    FileHandle.standardError.write(Data("cache: removed \(removed) least recently used entr\(removed == 1 ? "y" : "ies") (\(CacheCommand.bytes(freed))) to stay under \(limitText) (--cache-limit)\n".utf8))
                }
            }
            report(summary, graph: graph)
            events?.done(summary)
        }
    }

    func report(_ s: RunSummary, graph: Graph) {
        // Optimize stages are cached results of their own, listed under their record ids.
        let stageIDs = graph.stages.compactMap { stage -> String? in
            if case .optimize = stage.kind { return stage.recordID }
            return nil
        }
        if explain && !json {
            for stage in graph.stages where stageIDs.contains(stage.recordID) {
                let id = stage.recordID, name = "stage " + stage.name
                if let why = s.ran[id] { print("\(name): trained because \(why)") }
                else if s.cached.contains(id) { print("\(name): cached") }
            }
            for n in graph.nodes {
                if let why = s.ran[n.id] { print("\(n.id): ran because \(why)") }
                else if s.cached.contains(n.id) { print("\(n.id): cached") }
                else if s.notNeeded.contains(n.id) { print("\(n.id): not needed (what it feeds is cached)") }
                else if s.recomputed.contains(n.id) { print("\(n.id): not stored (cache policy recompute): computed inside what reads it") }
            }
        }
        if json { return }
        let isStage = { (id: String) in stageIDs.contains(id) }
        let ranNodes = s.ran.keys.filter { !isStage($0) }, ranStages = s.ran.keys.filter(isStage)
        // Later stages see nodes an earlier stage ran or reused: count each node once.
        let reusedNodes = Set(s.cached.filter { !isStage($0) }).subtracting(s.ran.keys).count
        let reusedStages = Set(s.cached.filter(isStage)).subtracting(s.ran.keys).count
        func count(_ n: Int, _ what: String) -> String { "\(n) \(what)\(n == 1 ? "" : "s")" }
        let stagesNote = stageIDs.isEmpty ? "" : ", " + (ranStages.isEmpty
            ? "\(count(reusedStages, "trained stage")) reused"
            : "trained \(count(ranStages.count, "stage"))" + (reusedStages > 0 ? ", reused \(reusedStages)" : ""))
        if s.ran.isEmpty { print("all cached: nothing to run (\(count(reusedNodes, "node")) reused\(stagesNote))") }
        else { print("ran \(count(ranNodes.count, "node")), reused \(reusedNodes) from the cache\(stagesNote)") }
        for (target, value) in s.outputs {
            if let path = value["path"]?.string, value["sha256"]?.string != nil { print("\(target) → \(path)") }   // a File
            else if let numbers = value.record?.compactMapValues(\.number), numbers.count == value.record?.count, !numbers.isEmpty {
                // A record of numbers (Metrics.metrics, Loss.terms) is worth reading in full.
                print("\(target): " + numbers.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.4g", $0.value))" }.joined(separator: ", "))
            } else {
                // Anything else (VideoSource.meta, a list) as compact JSON, cut if it is long.
                let text = JSONEvents.json(value).text
                print("\(target) = \(text.count > 400 ? text.prefix(400) + " …" : text)")
            }
        }
    }
}

/// Ctrl-C asks the run to stop between frames; a second Ctrl-C exits at once.
final class Interrupt: Sendable {
    private let flag = Mutex(0)
    var requested: Bool { flag.withLock { $0 > 0 } }

    nonisolated(unsafe) private static var source: DispatchSourceSignal?

    static func install() -> Interrupt {
        let interrupt = Interrupt()
        signal(SIGINT, SIG_IGN)
        let src = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        src.setEventHandler {
            let n = interrupt.flag.withLock { $0 += 1; return $0 }
            if n == 1 {
                FileHandle.standardError.write(Data("\nstopping after the frames in flight (Ctrl-C again to quit now)…\n".utf8))
            } else {
                // Leaving now: remove what this process was writing, so no .partial file stays.
                AtomicWrite.discardInFlight()
                exit(130)
            }
        }
        src.resume()
        source = src
        return interrupt
    }
}
