import Foundation

/// One catalogued plugin (`Nodes/plugins/<name>.json`): what it is, how to start it and the params
/// it takes. The format and the protocol are documented in `Nodes/plugins/README.md`.
public struct PluginManifest: Sendable {
    public var name: String
    /// What the plugin does: `editor`, `landmarks`, `matte`, `expression`.
    public var kind: String
    public var version: String
    public var doc: String
    /// The argv that starts one worker; `$python` is the plugin environment's interpreter.
    public var run: [String]
    /// Script files (relative to `directory`) whose content is part of every cache key using the plugin.
    public var files: [String]
    public var params: [ParamSpec]
    /// Seconds one request may take (the first one includes loading models).
    public var timeout: Double
    /// Workers that may run at once in one run.
    public var workers: Int
    public var deterministic: Bool
    /// `light` or `full`: which set `Scripts/setup-plugins.sh` installs its packages with.
    public var environment: String
    /// Implemented inside pgflow (no process); `run` and `files` are empty.
    public var builtin: Bool
    /// The folder holding the manifest (the worker's working directory).
    public var directory: URL
    public var file: String
    /// SHA-256 over the version and every file in `files` (name and content): what enters cache keys.
    public var digest: String

    public func param(_ name: String) -> ParamSpec? { params.first { $0.name == name } }

    static let manifestVersion = 1
    static let keys = ["plugin", "name", "kind", "version", "doc", "run", "files", "params", "timeout", "workers",
                       "deterministic", "environment", "builtin"]

    /// Every manifest in `folder` (a missing folder holds none); problems come back with file:line:col.
    static func loadFolder(_ folder: URL) -> ([PluginManifest], [Diagnostic]) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return ([], []) }
        var found: [PluginManifest] = []
        var problems: [Diagnostic] = []
        for name in names.sorted() where name.hasSuffix(".json") {
            do {
                let doc = try JSONDocument.load(folder.appendingPathComponent(name))
                var reader = SpecReader(doc: doc)
                if let m = read(&reader, folder: folder, fileName: name) { found.append(m) }
                problems += doc.duplicateKeys + reader.problems
            } catch let e as ValidationError {
                problems += e.diagnostics
            } catch {
                problems.append(Diagnostic(file: folder.appendingPathComponent(name).path, path: "", location: nil, message: "\(error)"))
            }
        }
        return (found, problems)
    }

    private static func read(_ r: inout SpecReader, folder: URL, fileName: String) -> PluginManifest? {
        let root = r.doc.root
        guard let members = root.objectMembers else { r.problem("", "a plugin manifest must be a JSON object"); return nil }
        for (k, _) in members where !keys.contains(k) {
            r.problem(k, "unknown key \"\(k)\" (expected \(keys.joined(separator: ", ")))")
        }
        if root["plugin"]?.int != manifestVersion {
            r.problem("plugin", "\"plugin\" must be \(manifestVersion), the manifest format this pgflow reads")
        }
        guard let name = root["name"]?.string, !name.isEmpty else { r.problem("name", "missing \"name\""); return nil }
        guard name + ".json" == fileName else { r.problem("name", "the name \"\(name)\" must match the file name \(fileName)"); return nil }
        guard let kind = root["kind"]?.string, !kind.isEmpty else { r.problem("kind", "missing \"kind\" (editor, landmarks, matte, expression)"); return nil }
        guard let version = root["version"]?.string, !version.isEmpty else { r.problem("version", "missing \"version\" (a string)"); return nil }
        let builtin = root["builtin"]?.bool ?? false
        let run = root["run"]?.array?.compactMap(\.string) ?? []
        let files = root["files"]?.array?.compactMap(\.string) ?? []
        if !builtin {
            if run.isEmpty || run.count != root["run"]?.array?.count {
                r.problem("run", "\"run\" must be a non-empty array of strings (the argv that starts a worker; never a shell string)")
            }
            if files.count != (root["files"]?.array?.count ?? 0) { r.problem("files", "\"files\" must be an array of strings") }
        }
        var params: [ParamSpec] = []
        for (pname, v) in root["params"]?.objectMembers ?? [] {
            if let p = r.param("params.\(pname)", pname, v) {
                if [.outpath, .plugin, .model].contains(p.kind) {
                    r.problem("params.\(pname).type", "a plugin param cannot be of type \(p.kind.rawValue)")
                }
                params.append(p)
            }
        }
        let timeout = root["timeout"]?.double ?? 60
        if !(timeout > 0) { r.problem("timeout", "\"timeout\" must be a positive number of seconds") }
        let workers = root["workers"]?.int ?? 1
        if workers < 1 || workers > 64 { r.problem("workers", "\"workers\" must be 1…64") }
        let environment = root["environment"]?.string ?? "light"
        if !["light", "full"].contains(environment) { r.problem("environment", "\"environment\" must be \"light\" or \"full\"") }

        // The digest: version, then each script's name and bytes; a missing script is a problem now,
        // not a surprise when the worker starts.
        var h = KeyHasher("pgflow.plugin.v1")
        h.add("version", version)
        for (i, f) in files.enumerated() {
            let url = folder.appendingPathComponent(f)
            do { h.add(f, try sha256Hex(ofFile: url)) } catch {
                r.problem("files[\(i)]", "plugin \"\(name)\": script file \(url.path) does not exist or cannot be read")
            }
        }
        return PluginManifest(name: name, kind: kind, version: version, doc: root["doc"]?.string ?? "", run: run, files: files,
                              params: params, timeout: timeout, workers: workers,
                              deterministic: root["deterministic"]?.bool ?? false, environment: environment,
                              builtin: builtin, directory: folder, file: r.doc.file, digest: h.finalize().hex)
    }
}
