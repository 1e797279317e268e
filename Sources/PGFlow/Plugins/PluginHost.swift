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
    private let usage = Mutex<[String: Usage]>([:])

    /// What one plugin's requests cost in this run: how many, the wall time pgflow waited for
    /// replies, and the compute time the plugin itself reported (`seconds`). The difference is the
    /// protocol's overhead on the plugin side (reading and writing the image files, JSON).
    public struct Usage: Sendable {
        public var requests = 0
        public var waited = 0.0
        public var reported = 0.0
    }
    public func usage(_ plugin: String) -> Usage { usage.withLock { $0[plugin] } ?? Usage() }
    private let available = NSCondition()
    /// Request ids and worker slots.
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
        // Images cross through files: on /dev/shm (memory) where the system has it, else the temp folder.
        let shm = URL(fileURLWithPath: "/dev/shm")
        let base = access(shm.path, W_OK) == 0 ? shm : FileManager.default.temporaryDirectory
        scratch = base.appendingPathComponent("pgflow-run-\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))")
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

    /// Sends `request` (an object without `id`, `inputs` and `output`, which are added) to a
    /// worker of `plugin` with the given files (port → `.npy` bytes), and hands the reply and the
    /// output file to `read` before the worker takes another request. An `"ok": false` reply is
    /// thrown as the plugin's error.
    ///
    /// Each worker has its own files in the scratch folder, rewritten in place by every request
    /// it serves: the memory behind them is reused rather than allocated and faulted in anew for
    /// every frame (a third of a 512² request's cost when each request had fresh files).
    public func call<T>(_ plugin: String, _ request: [(key: String, value: JSON)], files: [(port: String, bytes: Data)],
                        what: String, read: (JSON, URL) throws -> T) throws -> T {
        let m = try manifest(plugin)
        let id = counter.withLock { $0 += 1; return $0 }
        var attempt = 0
        while true {
            attempt += 1
            let worker = try acquire(m)
            do {
                var inputs: [(key: String, value: JSON)] = []
                for (i, f) in files.enumerated() {
                    // The same bytes on two ports (image = source) are written once.
                    let first = files.firstIndex { $0.bytes.count == f.bytes.count && $0.bytes == f.bytes } ?? i
                    let url = scratch.appendingPathComponent("w\(worker.slot)-\(files[first].port).npy")
                    if first == i { try Self.writeInPlace(f.bytes, to: url, plugin: plugin) }
                    inputs.append((key: f.port, value: .string(url.path)))
                }
                // The answer must be this request's: the previous output's first bytes are overwritten
                // with a marker (not deleted, so its memory is reused when the plugin writes in place).
                let output = scratch.appendingPathComponent("w\(worker.slot)-output.npy")
                Self.markStale(output)
                let full = JSON.object([(key: "id", value: .int(Int64(id)))] + request
                                       + [(key: "inputs", value: .object(inputs)), (key: "output", value: .string(output.path))])
                let sent = Date()
                let reply = try worker.exchange(full, timeout: m.timeout, what: what)
                let waited = Date().timeIntervalSince(sent)
                usage.withLock { u in
                    u[plugin, default: Usage()].requests += 1
                    u[plugin, default: Usage()].waited += waited
                    u[plugin, default: Usage()].reported += reply["seconds"]?.double ?? 0
                }
                guard reply["id"]?.int == id else {
                    throw worker.fail("answered \(what) with id \(reply["id"]?.text ?? "none"), expected \(id)")
                }
                guard reply["ok"]?.bool == true else {
                    throw worker.fail("failed \(what): \(reply["error"]?.string ?? "no reason given (\(reply.text))")")
                }
                let result = try read(reply, output)
                release(m, worker)
                return result
            } catch let e as PluginError where e.workerDied && attempt == 1 {
                release(m, worker)
                log(plugin, "pgflow: worker died (\(e.message.prefix(200))); restarting it once and retrying \(what)")
                continue
            } catch {
                release(m, worker)
                throw error
            }
        }
    }

    /// What an output file starts with until the plugin writes it: a reply of success over a file
    /// that still starts so means the plugin wrote nothing.
    public static let staleOutputMarker = Data("PGFLOW-NOT-WRITTEN".utf8)

    static func markStale(_ url: URL) {
        let fd = open(url.path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }   // no earlier output: nothing to mark
        defer { close(fd) }
        _ = staleOutputMarker.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, 0) }
    }

    /// Overwrites `url` with `bytes` without replacing the file, so its pages are reused. The
    /// scratch folder exists: the worker was started (`start` makes it).
    static func writeInPlace(_ bytes: Data, to url: URL, plugin: String) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PluginError(plugin, "cannot write \(url.path) for the worker: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var done = 0
        try bytes.withUnsafeBytes { raw in
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw PluginError(plugin, "cannot write \(url.path) for the worker: \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
        _ = ftruncate(fd, off_t(bytes.count))
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
        let slot = counter.withLock { $0 += 1; return $0 }
        let worker = try PluginWorker(m, argv: argv, scratch: scratch, threads: threads, slot: slot, log: { log(m.name, $0) })
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
