import PGTensor
import Foundation

/// A file or folder the graph reads or writes, with where the graph says so.
struct GraphFile {
    /// JSON path of the param or setting, e.g. `nodes.enc.params.path`.
    var at: String
    /// Who touches it, for messages: `node "enc" (Encoder), param "path"`.
    var who: String
    var url: URL
}

extension Graph {
    /// The files the graph reads: every `path` param, every `model` param that names a file
    /// rather than a built-in model, and every `path` param of a plugin a node uses (as
    /// `params.<name>`), resolved against the graph's folder (defaults included).
    func inputFiles(_ catalog: Catalog) -> [(node: GraphNode, param: String, url: URL)] {
        var out: [(GraphNode, String, URL)] = []
        for node in nodes {
            guard let spec = catalog[node.type] else { continue }
            for p in spec.params where p.kind == .path || p.kind == .model {
                guard let path = (node.param(p.name).flatMap { $0 == .null ? nil : $0 } ?? p.defaultValue)?.string,
                      p.kind == .path || !path.hasPrefix("builtin:") else { continue }
                out.append((node, p.name, Params.resolve(path, against: directory)))
            }
            if let plugin = plugin(of: node, catalog) {
                let complete = plugin.completeParams(node.param("params"), base: directory)
                for p in plugin.params where p.kind == .path {
                    if let path = complete[p.name]?.string { out.append((node, "params.\(p.name)", URL(fileURLWithPath: path))) }
                }
            }
        }
        return out
    }

    /// The files and folders the run writes: every `outpath` param, and each optimize stage's
    /// `history` file and `export` folder.
    func writtenFiles(_ catalog: Catalog) -> [GraphFile] {
        var out: [GraphFile] = []
        for node in nodes {
            guard let spec = catalog[node.type] else { continue }
            for p in spec.params where p.kind == .outpath {
                guard let path = (node.param(p.name).flatMap { $0 == .null ? nil : $0 } ?? p.defaultValue)?.string else { continue }
                out.append(GraphFile(at: "\(node.path).params.\(p.name)", who: "node \"\(node.id)\" (\(node.type)), param \"\(p.name)\"",
                                     url: Params.resolve(path, against: directory)))
            }
        }
        for s in stages {
            guard case .optimize(let o) = s.kind else { continue }
            for key in ["history", "export"] {
                guard let path = o.settings[key]?.string, !path.isEmpty else { continue }
                out.append(GraphFile(at: "\(s.path).optimize.\(key)", who: "stage \"\(s.name)\", \(key)",
                                     url: Params.resolve(path, against: directory)))
            }
        }
        return out
    }

    /// Every problem with the files a run would touch, before anything runs or is hashed: input
    /// files that do not exist, and writes that would destroy what the run reads or what another
    /// node writes. Decided from this run's resolved paths (vars and `--set` applied), never from
    /// cached values, which may name the paths of an earlier run.
    public func fileProblems(_ catalog: Catalog) -> [Diagnostic] {
        missingInputFiles(catalog) + writeConflicts(catalog)
    }

    /// A problem for each input file that does not exist.
    /// A file named by a var (a graph's default input, say) says which var points elsewhere.
    public func missingInputFiles(_ catalog: Catalog) -> [Diagnostic] {
        inputFiles(catalog).compactMap { node, param, url in
            guard !FileManager.default.fileExists(atPath: url.path) else { return nil }
            var hint = ""
            if let raw = document.root["nodes"]?[node.id]?["params"]?[param]?.string, raw.hasPrefix("$"),
               !raw.hasPrefix("$$"), !raw.contains("/"), raw.count > 1 {
                let name = raw.dropFirst().trimmingCharacters(in: CharacterSet(charactersIn: "{}"))
                hint = " (from var \"\(name)\"; --set \(name)=PATH names another, relative to the current folder)"
            }
            let at = "\(node.path).params.\(param)"
            return Diagnostic(file: document.file, path: at, location: document.location(at),
                              message: "node \"\(node.id)\" (\(node.type)), param \"\(param)\": no such file or folder: \(url.path)\(hint)")
        }
    }

    /// A problem for each write that lands on (or inside, or around) a file or folder the run
    /// reads, and for two writes to the same place. Paths are compared after resolving symbolic
    /// links, and existing files by device and inode, so a link or a hard link to the input is
    /// caught too.
    public func writeConflicts(_ catalog: Catalog) -> [Diagnostic] {
        let reads = inputFiles(catalog).map {
            GraphFile(at: "\($0.node.path).params.\($0.param)", who: "node \"\($0.node.id)\" (\($0.node.type)), param \"\($0.param)\"", url: $0.url)
        }
        let writes = writtenFiles(catalog)
        var out: [Diagnostic] = []
        func problem(_ w: GraphFile, _ message: String) {
            out.append(Diagnostic(file: document.file, path: w.at, location: document.location(w.at), message: message))
        }
        for w in writes {
            let wid = FileIdentity(w.url)
            for r in reads {
                let rid = FileIdentity(r.url)
                if wid.sameAs(rid) {
                    problem(w, "\(w.who) writes \(w.url.path), which \(r.who) reads: the run would destroy its own input; write somewhere else")
                } else if rid.contains(wid) {
                    problem(w, "\(w.who) writes \(w.url.path), inside the folder \(r.url.path) that \(r.who) reads; write somewhere else")
                } else if wid.contains(rid) {
                    problem(w, "\(w.who) writes the folder \(w.url.path), which holds \(r.url.path) that \(r.who) reads; write somewhere else")
                }
            }
        }
        for (i, a) in writes.enumerated() {
            for b in writes[(i + 1)...] where FileIdentity(a.url).sameAs(FileIdentity(b.url)) {
                problem(b, "\(b.who) and \(a.who) both write \(b.url.path); give each its own path")
            }
        }
        return out
    }
}

/// Where a path really is: symbolic links resolved (in whatever part of it exists), and the
/// device and inode when it exists, so hard links compare equal.
struct FileIdentity {
    let path: String
    let inode: (dev: UInt64, ino: UInt64)?

    init(_ url: URL) {
        path = url.standardizedFileURL.resolvingSymlinksInPath().path
        var st = stat()
        inode = stat(url.path, &st) == 0 ? (UInt64(st.st_dev), UInt64(st.st_ino)) : nil
    }

    func sameAs(_ other: FileIdentity) -> Bool {
        if let a = inode, let b = other.inode { return a == b }
        return path == other.path
    }

    /// `other` lies strictly inside this path (taken as a folder).
    func contains(_ other: FileIdentity) -> Bool {
        other.path.hasPrefix(path.hasSuffix("/") ? path : path + "/")
    }
}
