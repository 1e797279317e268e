import Foundation
import Synchronization

/// The plugin workers of one run: started on first use, shared by every frame (and every step of
/// an optimize stage), stopped when the run ends. A request waits for a free worker when the
/// manifest's `workers` are all busy; a worker that dies is replaced and the request retried once.
public final class PluginHost: Sendable {
    public static let protocolVersion = 1
    public let catalog: [String: PluginManifest]
    /// Per-run folder for the image files requests and replies name; removed by `shutdown`.
    public let scratch: URL
    let python: String?
    let threads: Int
    let log: @Sendable (String, String) -> Void
    private let pools = Mutex<[String: Pool]>([:])
    private let available = NSCondition()
    private let counter = Mutex(0)

    struct Pool {
        var idle: [PluginWorker] = []
        var running = 0
    }

    /// - Parameters:
    ///   - python: the plugin environment's interpreter that `$python` stands for, if there is one.
    ///   - log: (plugin, stderr line) for the node's log.
    public init(catalog: [String: PluginManifest], python: String?, threads: Int,
                log: @escaping @Sendable (String, String) -> Void = { _, _ in }) {
        self.catalog = catalog
        self.python = python
        self.threads = threads
        self.log = log
        scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("pgflow-run-\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))")
        // A write to a worker that died must fail with EPIPE, not kill pgflow.
        signal(SIGPIPE, SIG_IGN)
    }

    /// The interpreter `$python` means: `$PGFLOW_PYTHON`, else `.venv/bin/python3` beside the catalog.
    public static func defaultPython(catalogDirectory: URL?, environment: [String: String]) -> String? {
        if let p = environment["PGFLOW_PYTHON"], !p.isEmpty { return p }
        guard let dir = catalogDirectory else { return nil }
        let venv = dir.deletingLastPathComponent().appendingPathComponent(".venv/bin/python3").path
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
    }

    public func manifest(_ name: String) throws -> PluginManifest {
        guard let m = catalog[name] else { throw PluginError(name, "is not in the plugin catalog (Nodes/plugins)") }
        return m
    }

    /// A fresh, unique path in the scratch folder for one request's file.
    public func scratchFile(_ label: String, ext: String = "npy") throws -> URL {
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let n = counter.withLock { $0 += 1; return $0 }
        return scratch.appendingPathComponent("\(n)-\(label).\(ext)")
    }

    /// Sends `request` (an object without `id`, which is added) to a worker of `plugin` and
    /// returns its reply; an `"ok": false` reply is thrown as the plugin's error.
    public func call(_ plugin: String, _ request: [(key: String, value: JSON)], what: String) throws -> JSON {
        let m = try manifest(plugin)
        let id = counter.withLock { $0 += 1; return $0 }
        let full = JSON.object([(key: "id", value: .int(Int64(id)))] + request)
        var attempt = 0
        while true {
            attempt += 1
            let worker = try acquire(m)
            do {
                let reply = try worker.exchange(full, timeout: m.timeout, what: what)
                release(m, worker)
                guard reply["id"]?.int == id else {
                    throw worker.fail("answered \(what) with id \(reply["id"]?.text ?? "none"), expected \(id)")
                }
                guard reply["ok"]?.bool == true else {
                    throw worker.fail("failed \(what): \(reply["error"]?.string ?? "no reason given (\(reply.text))")")
                }
                return reply
            } catch let e as PluginError where e.workerDied && attempt == 1 {
                release(m, worker)
                log(plugin, "worker died (\(e.message.prefix(200))); restarting it once and retrying \(what)")
                continue
            } catch {
                release(m, worker)
                throw error
            }
        }
    }

    /// Stops every worker and removes the scratch folder.
    public func shutdown() {
        let all = pools.withLock { p -> [PluginWorker] in
            let ws = p.values.flatMap(\.idle)
            p = [:]
            return ws
        }
        for w in all { w.stop() }
        try? FileManager.default.removeItem(at: scratch)
    }

    private func acquire(_ m: PluginManifest) throws -> PluginWorker {
        available.lock()
        while true {
            var pool = pools.withLock { $0[m.name] } ?? Pool()
            if let w = pool.idle.popLast() {
                if w.alive {
                    pools.withLock { $0[m.name] = pool }
                    available.unlock()
                    return w
                }
                pool.running -= 1
                pools.withLock { $0[m.name] = pool }
                continue
            }
            if pool.running < m.workers {
                pool.running += 1
                pools.withLock { $0[m.name] = pool }
                available.unlock()
                do { return try start(m) } catch {
                    available.lock()
                    pools.withLock { $0[m.name, default: Pool()].running -= 1 }
                    available.broadcast()
                    available.unlock()
                    throw error
                }
            }
            available.wait()
        }
    }

    private func release(_ m: PluginManifest, _ w: PluginWorker) {
        available.lock()
        pools.withLock { p in
            if w.alive { p[m.name, default: Pool()].idle.append(w) } else { p[m.name, default: Pool()].running -= 1 }
        }
        available.broadcast()
        available.unlock()
    }

    private func start(_ m: PluginManifest) throws -> PluginWorker {
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let argv = try resolveArgv(m)
        let log = self.log
        let started = Date()
        let worker = try PluginWorker(m, argv: argv, scratch: scratch, threads: threads, log: { log(m.name, $0) })
        log(m.name, "pgflow: worker started (pid \(worker.pid), ready in \(String(format: "%.2f", Date().timeIntervalSince(started))) s)")
        return worker
    }

    /// `$python` → the environment's interpreter; a file of the plugin's folder → its absolute
    /// path; a bare program name → found on PATH.
    func resolveArgv(_ m: PluginManifest) throws -> [String] {
        guard !m.builtin else { throw PluginError(m.name, "is built into pgflow and has no worker") }
        let fm = FileManager.default
        var argv: [String] = []
        for (i, a) in m.run.enumerated() {
            if a == "$python" {
                guard let python, fm.isExecutableFile(atPath: python) else {
                    let flag = m.environment == "full" ? " --full" : ""
                    throw PluginError(m.name, "needs the plugin environment (\(m.environment) set), which is not installed: "
                                      + "run `bash Scripts/setup-plugins.sh\(flag)` (or point PGFLOW_PYTHON at a Python that has its packages)")
                }
                argv.append(python)
            } else if !a.hasPrefix("/"), fm.fileExists(atPath: m.directory.appendingPathComponent(a).path) {
                argv.append(m.directory.appendingPathComponent(a).path)
            } else if i == 0 && !a.contains("/") {
                let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
                guard let found = path.map({ "\($0)/\(a)" }).first(where: { fm.isExecutableFile(atPath: $0) }) else {
                    throw PluginError(m.name, "cannot start: the program \"\(a)\" is not on PATH")
                }
                argv.append(found)
            } else {
                argv.append(a)
            }
        }
        return argv
    }

    static func seconds(_ s: Double) -> String { s.rounded() == s ? String(Int(s)) : String(format: "%.1f", s) }
}

/// Appends plugin stderr lines to a log file beside the cache (best effort: a log that cannot be
/// written never fails a run).
enum PluginLog {
    private static let lock = Mutex(())
    static func append(_ line: String, to url: URL) {
        lock.withLock { _ in
            try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let fd = open(url.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            guard fd >= 0 else { return }
            defer { close(fd) }
            var bytes = Array((line + "\n").utf8)
            _ = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress!, $0.count) }
        }
    }
}
