import Foundation
import Synchronization

/// A plugin failed: it is missing, would not start, crashed, hung, or answered out of protocol.
/// The message is a sentence that names the plugin; the engine adds node and frame.
public struct PluginError: Error, Sendable, CustomStringConvertible {
    public var plugin: String
    public var message: String
    /// The worker died (exited or was killed), so the request may be retried on a fresh one.
    public var workerDied: Bool
    public init(_ plugin: String, _ message: String, workerDied: Bool = false) {
        self.plugin = plugin
        self.message = message
        self.workerDied = workerDied
    }
    public var description: String { "plugin \"\(plugin)\": \(message)" }
}

/// One running worker process of a plugin, spoken to in JSON lines (see `Nodes/plugins/README.md`).
/// Not thread-safe: the host hands a worker to one request at a time.
final class PluginWorker: @unchecked Sendable {
    let manifest: PluginManifest
    private let process: Process
    private let stdinFD: Int32
    private let stdoutFD: Int32
    /// The pipe ends as Foundation owns them: closed through these (never with close(2) on the
    /// descriptor, which Foundation would close again, or close after the number was reused).
    private let stdinHandle: FileHandle
    private let stdoutHandle: FileHandle
    private var pending = [UInt8]()
    /// Read buffer for replies, reused across requests.
    private var chunk = [UInt8](repeating: 0, count: 65536)
    private let stderrTail: StderrTail
    private(set) var alive = true
    var pid: Int32 { process.processIdentifier }
    /// Names this worker's files in the scratch folder (`w<slot>-image.npy`, …).
    let slot: Int

    /// Starts the worker and completes the handshake.
    init(_ manifest: PluginManifest, argv: [String], scratch: URL, threads: Int, slot: Int,
         log: @escaping @Sendable (String) -> Void) throws {
        self.manifest = manifest
        self.slot = slot
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        p.currentDirectoryURL = manifest.directory
        var env = ProcessInfo.processInfo.environment
        env["PGFLOW_PLUGIN_PROTOCOL"] = String(PluginHost.protocolVersion)
        env["PGFLOW_PLUGIN_SCRATCH"] = scratch.path
        env["OMP_NUM_THREADS"] = String(threads)
        for k in ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"] { env[k] = "1" }
        env["PYTHONUNBUFFERED"] = "1"
        // A worker allocates and frees the same few image-sized arrays for every frame; glibc would
        // hand each back to the kernel and fault it in again (measured: 6 ms of a 512² request's
        // 6.5 ms protocol cost). Keep freed memory for reuse instead; a user's own setting wins.
        if env["MALLOC_MMAP_THRESHOLD_"] == nil { env["MALLOC_MMAP_THRESHOLD_"] = String(256 << 20) }
        if env["MALLOC_TRIM_THRESHOLD_"] == nil { env["MALLOC_TRIM_THRESHOLD_"] = String(1 << 30) }
        p.environment = env
        let input = Pipe(), output = Pipe(), errors = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = errors
        stderrTail = StderrTail(errors.fileHandleForReading, log: log)
        do { try p.run() } catch {
            throw PluginError(manifest.name, "cannot start \(argv.joined(separator: " ")): \(error.localizedDescription)")
        }
        process = p
        stdinHandle = input.fileHandleForWriting
        stdoutHandle = output.fileHandleForReading
        stdinFD = stdinHandle.fileDescriptor
        stdoutFD = stdoutHandle.fileDescriptor
        stderrTail.start()

        let hello: JSON = .object([("op", .string("hello")), ("protocol", .int(Int64(PluginHost.protocolVersion))),
                                   ("plugin", .string(manifest.name)), ("scratch", .string(scratch.path))])
        let reply: JSON
        do { reply = try exchange(hello, timeout: manifest.timeout, what: "the handshake") } catch { stop(); throw error }
        let expected = "protocol \(PluginHost.protocolVersion), name \"\(manifest.name)\", version \"\(manifest.version)\""
        guard reply["ok"]?.bool == true else {
            stop()
            throw fail("refused the handshake: \(reply["error"]?.string ?? reply.text)")
        }
        let got = "protocol \(reply["protocol"]?.int.map(String.init) ?? "?"), name \"\(reply["name"]?.string ?? "?")\", version \"\(reply["version"]?.string ?? "?")\""
        guard got == expected else {
            stop()
            throw fail("its handshake reports \(got), but the manifest \(manifest.file) says \(expected)")
        }
    }

    deinit { if alive { kill() } }

    /// Sends one request and waits for its reply (one JSON object on one line).
    func exchange(_ request: JSON, timeout: Double, what: String) throws -> JSON {
        try send(request, what: what)
        return try receive(timeout: timeout, what: what)
    }

    private func send(_ request: JSON, what: String) throws {
        guard alive else { throw fail("the worker is no longer running", died: true) }
        var line = Array((request.canonical + "\n").utf8)
        var off = 0
        while off < line.count {
            let n = line.withUnsafeMutableBytes { write(stdinFD, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                throw died("while sending \(what)")
            }
            off += n
        }
    }

    private func receive(timeout: Double, what: String) throws -> JSON {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let bytes = Array(pending[..<nl])
                pending.removeSubrange(...nl)
                if bytes.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }   // blank line
                guard let doc = try? JSONDocument.parse(Data(bytes), file: "reply"), doc.root.objectMembers != nil else {
                    kill()
                    let shown = String(decoding: bytes.prefix(200), as: UTF8.self)
                    throw fail("answered \(what) with a line that is not a JSON object: \"\(shown)\" (stdout is reserved for the protocol; log to stderr)")
                }
                return doc.root
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 {
                kill()
                throw fail("no answer to \(what) within its timeout of \(PluginHost.seconds(timeout)) s; the worker was killed", died: true)
            }
            var pfd = pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, Int32(min(left * 1000, 1000).rounded(.up)))
            if r < 0 && errno != EINTR { throw died("while waiting for \(what)") }
            if r <= 0 { continue }
            let fd = stdoutFD
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n > 0 { pending += chunk[..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            throw died("before answering \(what)")
        }
    }

    /// Asks the worker to finish, then kills it if it has not after 5 seconds.
    func stop() {
        guard alive else { return }
        try? send(.object([("op", .string("bye"))]), what: "bye")
        try? stdinHandle.close()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        alive = false
        stderrTail.finish()
    }

    func kill() {
        guard alive else { return }
        alive = false
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? stdinHandle.close()
        stderrTail.finish()
    }

    /// The worker is gone: say how it ended and what it last wrote to stderr.
    private func died(_ when: String) -> PluginError {
        let deadline = Date().addingTimeInterval(2)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        alive = false
        stderrTail.finish()
        let how = process.terminationReason == .uncaughtSignal ? "was killed by signal \(process.terminationStatus)"
            : "exited with status \(process.terminationStatus)"
        return fail("the worker \(how) \(when)", died: true)
    }

    func fail(_ message: String, died: Bool = false) -> PluginError {
        let tail = stderrTail.lines()
        let log = tail.isEmpty ? "" : "; its last stderr lines:\n    " + tail.joined(separator: "\n    ")
        return PluginError(manifest.name, message + log, workerDied: died)
    }
}

/// Reads a worker's stderr on its own thread: every line goes to the node's log, the last few
/// are kept for error messages.
final class StderrTail: @unchecked Sendable {
    private let handle: FileHandle
    private let log: @Sendable (String) -> Void
    private let state = Mutex<(lines: [String], done: Bool)>(([], false))
    private let finished = DispatchSemaphore(value: 0)
    static let kept = 8

    init(_ handle: FileHandle, log: @escaping @Sendable (String) -> Void) {
        self.handle = handle
        self.log = log
    }

    func start() {
        let fd = handle.fileDescriptor
        Thread.detachNewThread { [self] in
            var partial = [UInt8]()
            var chunk = [UInt8](repeating: 0, count: 16384)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                partial += chunk[..<n]
                while let nl = partial.firstIndex(of: UInt8(ascii: "\n")) {
                    add(String(decoding: partial[..<nl], as: UTF8.self))
                    partial.removeSubrange(...nl)
                }
            }
            if !partial.isEmpty { add(String(decoding: partial, as: UTF8.self)) }
            finished.signal()
        }
    }

    private func add(_ line: String) {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return }
        state.withLock { s in
            s.lines.append(String(trimmed.prefix(300)))
            if s.lines.count > Self.kept { s.lines.removeFirst(s.lines.count - Self.kept) }
        }
        log(trimmed)
    }

    /// Waits (briefly) for the reader to drain what the dead worker wrote.
    func finish() {
        let already = state.withLock { s -> Bool in defer { s.done = true }; return s.done }
        if !already { _ = finished.wait(timeout: .now() + 1) }
    }

    func lines() -> [String] { state.withLock { $0.lines } }
}
