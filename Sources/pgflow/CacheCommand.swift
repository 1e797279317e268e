import ArgumentParser
import Foundation
import PGFlow

struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Inspect and manage the result cache.",
        discussion: "The cache folder is --cache-dir, or .pgflow/cache beside --graph FILE, or ./.pgflow/cache.",
        subcommands: [List.self, Verify.self, GC.self, Clear.self])

    struct Location: ParsableArguments {
        @Option(name: .customLong("cache-dir"), help: ArgumentHelp("The cache folder.", valueName: "dir"))
        var cacheDirectory: String?
        @Option(help: ArgumentHelp("Use the cache beside this graph file.", valueName: "file"))
        var graph: String?

        func store() throws -> CacheStore {
            let dir: URL
            if let cacheDirectory { dir = URL(fileURLWithPath: cacheDirectory) }
            else if let graph { dir = defaultCacheDirectory(for: URL(fileURLWithPath: graph).standardizedFileURL) }
            else { dir = URL(fileURLWithPath: ".pgflow/cache") }
            // Looking never creates the folder: a missing cache is an empty one.
            return try CacheStore(directory: dir, create: false, onWarning: { FileHandle.standardError.write(Data("warning: \($0)\n".utf8)) })
        }
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
    }

    /// "500M", "2G", "1.5GiB", "1000B". A bare number is refused: `--max-size 100` meant as
    /// 100 MB and read as 100 bytes would empty the cache.
    static func parseSize(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let digits = t.prefix { $0.isNumber || $0 == "." }
        guard let value = Double(digits) else { return nil }
        let unit = t.dropFirst(digits.count).replacingOccurrences(of: "IB", with: "").replacingOccurrences(of: "B", with: "")
        let scale: Double
        let hadB = t.hasSuffix("B")
        switch unit {
        case "" where hadB: scale = 1
        case "K": scale = 1024
        case "M": scale = 1024 * 1024
        case "G": scale = 1024 * 1024 * 1024
        case "T": scale = 1024 * 1024 * 1024 * 1024
        default: return nil
        }
        return Int64(value * scale)
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List cache entries: node, type, frame, size, last used.")
        @OptionGroup var location: Location
        func run() throws {
            try reportingErrors {
                let store = try location.store()
                let entries = store.entries().sorted { ($0.graph, $0.node, $0.frame ?? -1) < ($1.graph, $1.node, $1.frame ?? -1) }
                    .map { $0 }
                // Per-frame entries collapse to one line per node.
                var groups: [(String, [CacheEntrySummary])] = []
                for e in entries {
                    let k = "\(e.graph)\t\(e.node)\t\(e.type)\t\(e.frame == nil ? "static" : "frames")"
                    if groups.last?.0 == k { groups[groups.count - 1].1.append(e) } else { groups.append((k, [e])) }
                }
                let stamp = DateFormatter()
                stamp.dateFormat = "yyyy-MM-dd HH:mm"
                var rows = [["GRAPH", "NODE", "TYPE", "ENTRIES", "SIZE", "LAST USED"]]
                for (_, es) in groups {
                    let e = es[0]
                    // More entries than frames (or than one static value): older versions of the
                    // node, e.g. before a param changed, still cached until gc removes them.
                    let frames = Set(es.compactMap(\.frame)).count
                    let versions = e.frame == nil ? es.count : (es.count + frames - 1) / max(frames, 1)
                    let what = (e.frame == nil ? "static" : framesText(frames)) + (versions > 1 ? " ×\(versions)" : "")
                    let size = es.reduce(Int64(0)) { $0 + $1.size }
                    let last = es.map(\.lastUsed).max() ?? Date.distantPast
                    rows.append([e.graph, e.node, e.type, what, bytes(size), stamp.string(from: last)])
                }
                let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max()! }
                for r in rows {
                    print(zip(r, widths).map { $0.padding(toLength: $1 + 2, withPad: " ", startingAt: 0) }.joined()
                        .trimmingCharacters(in: .whitespaces))
                }
                print("\(entries.count) entries, \(bytes(store.totalBytes)) in \(store.directory.path)")
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check every entry's checksum; --repair removes corrupt ones.")
        @OptionGroup var location: Location
        @Flag(help: "Remove corrupt entries.") var repair = false
        func run() throws {
            try reportingErrors {
                let report = try location.store().verify(removeCorrupt: repair)
                for c in report.corrupt { print("corrupt: \(c.path): \(c.reason)\(c.info.map { " (\($0.origin))" } ?? "")") }
                if report.corrupt.isEmpty {
                    print("clean: \(report.checked) entries verified")
                } else {
                    print("\(report.corrupt.count) of \(report.checked) entries corrupt\(repair ? " (removed)" : "; run with --repair to remove them")")
                    if !repair { throw ExitCode(1) }
                }
            }
        }
    }

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "gc", abstract: "Remove least recently used entries until the cache fits a size.")
        @OptionGroup var location: Location
        @Option(name: .customLong("max-size"), help: ArgumentHelp("Largest size to keep, e.g. 500M, 2G.", valueName: "size"))
        var maxSize: String
        func run() throws {
            try reportingErrors {
                guard let limit = CacheCommand.parseSize(maxSize) else {
                    throw ExitMessage(code: 2, "--max-size \(maxSize): expected a size with its unit, such as 500M, 2G or 4096B")
                }
                let store = try location.store()
                let r = store.gc(maxBytes: limit)
                print("removed \(r.removed) entries (\(bytes(r.freedBytes))); \(bytes(store.totalBytes)) left")
            }
        }
    }

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove every entry.")
        @OptionGroup var location: Location
        func run() throws {
            try reportingErrors {
                let store = try location.store()
                let n = store.clear()
                print("removed \(n) entries")
            }
        }
    }
}

extension CacheEntrySummary {
    var graph: String { info?.graph ?? "?" }
    var node: String { info?.nodeID ?? "?" }
    var type: String { info?.nodeType ?? "?" }
    var frame: Int? { info?.frame }
}
