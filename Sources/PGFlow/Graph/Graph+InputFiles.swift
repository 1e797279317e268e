import Foundation

extension Graph {
    /// The files the graph reads: every `path` param, and every `model` param that names a file
    /// rather than a built-in model, resolved against the graph's folder (defaults included).
    func inputFiles(_ catalog: Catalog) -> [(node: GraphNode, param: String, url: URL)] {
        var out: [(GraphNode, String, URL)] = []
        for node in nodes {
            guard let spec = catalog[node.type] else { continue }
            for p in spec.params where p.kind == .path || p.kind == .model {
                guard let path = (node.param(p.name).flatMap { $0 == .null ? nil : $0 } ?? p.defaultValue)?.string,
                      p.kind == .path || !path.hasPrefix("builtin:") else { continue }
                out.append((node, p.name, Params.resolve(path, against: directory)))
            }
        }
        return out
    }

    /// A problem for each input file that does not exist, before anything runs or is hashed.
    /// A file named by a var (a graph's default input, say) says which var points elsewhere.
    public func missingInputFiles(_ catalog: Catalog) -> [Diagnostic] {
        inputFiles(catalog).compactMap { node, param, url in
            guard !FileManager.default.fileExists(atPath: url.path) else { return nil }
            var hint = ""
            if let raw = document.root["nodes"]?[node.id]?["params"]?[param]?.string, raw.hasPrefix("$"),
               !raw.hasPrefix("$$"), !raw.contains("/"), raw.count > 1 {
                let name = raw.dropFirst().trimmingCharacters(in: CharacterSet(charactersIn: "{}"))
                hint = " (from var \"\(name)\"; --set \(name)=PATH names another)"
            }
            let at = "\(node.path).params.\(param)"
            return Diagnostic(file: document.file, path: at, location: document.location(at),
                              message: "node \"\(node.id)\" (\(node.type)), param \"\(param)\": no such file or folder: \(url.path)\(hint)")
        }
    }
}
