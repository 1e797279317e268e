import Foundation

/// The recipes a graph's nodes had at its last run with this cache, so `--explain` can say what
/// changed since ("param crf changed (18 → 23)"). Kept per graph file under `<cache>/runs/`.
enum RunRecord {
    static func url(_ cacheDirectory: URL, graph: Graph) -> URL {
        // The graph file's path, hashed: 24 hex digits are plenty to tell graphs apart.
        let name = String(sha256Hex(of: Data(graph.file.standardizedFileURL.path.utf8)).prefix(24))
        return cacheDirectory.appendingPathComponent("runs").appendingPathComponent(name + ".json")
    }

    static func load(_ cacheDirectory: URL, graph: Graph) -> [String: Recipe] {
        guard let data = try? Data(contentsOf: url(cacheDirectory, graph: graph)),
              let recipes = try? JSONDecoder().decode([String: Recipe].self, from: data) else { return [:] }
        return recipes
    }

    /// Atomic replace: a concurrent run may win, which only costs a less precise `--explain`.
    static func save(_ cacheDirectory: URL, graph: Graph, recipes: [String: Recipe]) {
        let target = url(cacheDirectory, graph: graph)
        var merged = load(cacheDirectory, graph: graph)
        for (k, v) in recipes { merged[k] = v }
        guard let data = try? JSONEncoder().encode(merged) else { return }
        try? FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        let tmp = target.deletingLastPathComponent().appendingPathComponent(".\(UUID().uuidString).tmp")
        // rename(2) replaces atomically whether or not the target exists.
        do {
            try data.write(to: tmp)
            if rename(tmp.path, target.path) != 0 { try? FileManager.default.removeItem(at: tmp) }
        } catch {
            try? FileManager.default.removeItem(at: tmp)
        }
    }
}
