import Foundation
import PGFlow
import Synchronization

/// Shows run events to a person or a program.
protocol ProgressDisplay: Sendable {
    func handle(_ event: RunEvent)
    func finish()
}

private func stderr(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }

private func duration(_ s: Double) -> String {
    if s < 1 { return String(format: "%.0f ms", s * 1000) }
    if s < 90 { return String(format: "%.1f s", s) }
    return String(format: "%d min %02d s", Int(s) / 60, Int(s) % 60)
}

/// Not a terminal: one plain line per event, progress at most every couple of seconds.
final class LogLines: ProgressDisplay {
    private let start = Date()
    private let lastProgress = Mutex([String: Date]())

    func handle(_ event: RunEvent) {
        let t = String(format: "[%7.1fs]", Date().timeIntervalSince(start))
        switch event {
        case .stage(let name, let i, let n): stderr("\(t) stage \(i + 1)/\(n): \(name)\n")
        case .cached(let node, let type): stderr("\(t) \(node) (\(type)): cached\n")
        case .started(let node, let type, let frames, let reason):
            stderr("\(t) \(node) (\(type)): running\(frames.map { " " + framesText($0) } ?? "") — \(reason)\n")
        case .progress(let node, let done, let total):
            let now = Date()
            let show = lastProgress.withLock { last -> Bool in
                if done == total { return false }
                if let l = last[node], now.timeIntervalSince(l) < 2 { return false }
                last[node] = now
                return true
            }
            if show { stderr("\(t) \(node): \(done)/\(total)\n") }
        case .finished(let node, _, let seconds, let frames):
            stderr("\(t) \(node): done\(frames.map { ", " + framesText($0) } ?? "") in \(duration(seconds))\n")
        case .failed(let node, _, let frame, let message):
            stderr("\(t) \(node): FAILED\(frame.map { " at frame \($0)" } ?? ""): \(message)\n")
        case .warning(let message): stderr("\(t) warning: \(message)\n")
        case .log: break   // in <cache>/logs and in --json; quoted in any plugin error
        case .training(let stage, let step, let steps, let losses):
            let now = Date()
            let show = step == steps || step == 1 || lastProgress.withLock { last -> Bool in
                if let l = last[Stage.recordID(stage)], now.timeIntervalSince(l) < 2 { return false }
                last[Stage.recordID(stage)] = now
                return true
            }
            if show { stderr("\(t) \(stage): step \(step)/\(steps)  \(lossText(losses))\n") }
        case .trainingCached(let stage, let step, let steps):
            stderr("\(t) \(stage): " + (step >= steps ? "cached (\(steps) steps)" : "resuming from the checkpoint at step \(step)/\(steps)") + "\n")
        }
    }
    func finish() {}
}

/// "1 frame", "75 frames".
func framesText(_ n: Int) -> String { n == 1 ? "1 frame" : "\(n) frames" }

/// Every loss term, named as in the history without its "terms." prefix (the line stays readable).
func lossText(_ losses: [(name: String, value: Double)]) -> String {
    losses.map { loss in
        let name = loss.name.hasPrefix("terms.") ? String(loss.name.dropFirst(6)) : loss.name
        return String(format: "%@ %.4g", name, loss.value)
    }.joined(separator: "  ")
}

/// The width of the terminal on stderr (80 when it cannot be asked).
private func terminalColumns() -> Int {
    var size = winsize()
    guard ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
    return Int(size.ws_col)
}

/// A terminal: finished nodes scroll by; each running node keeps one live line with its
/// frames done/total, rate and ETA.
final class LiveDisplay: ProgressDisplay {
    struct Line {
        var node: String; var type: String; var done = 0; var total: Int?; var started = Date()
        var detail = ""   // an optimize stage's current loss terms, after the bar so the count and ETA stay visible
    }
    private let state = Mutex((lines: [Line](), drawn: 0))

    private func redraw(_ s: inout (lines: [Line], drawn: Int), above: String = "") {
        var out = String(repeating: "\u{1B}[1A\u{1B}[2K", count: s.drawn) + "\r\u{1B}[2K"
        out += above
        for l in s.lines {
            var text = "  ▸ \(l.node) (\(l.type))"
            if let total = l.total, total > 0 {
                let elapsed = Date().timeIntervalSince(l.started)
                let width = 24
                let filled = min(width, l.done * width / total)
                text += " [" + String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled) + "] \(l.done)/\(total)"
                if l.done > 0 {
                    let eta = elapsed / Double(l.done) * Double(total - l.done)
                    text += String(format: "  %.1f/s  ETA %@", Double(l.done) / max(elapsed, 1e-6), duration(eta))
                }
            } else {
                text += "  " + duration(Date().timeIntervalSince(l.started))
            }
            if !l.detail.isEmpty { text += "  " + l.detail }
            // A live line that wrapped would break the cursor-up redraw: cut it at the terminal's width.
            out += String(text.prefix(max(20, terminalColumns() - 1))) + "\n"
        }
        s.drawn = s.lines.count
        stderr(out)
    }

    func handle(_ event: RunEvent) {
        state.withLock { s in
            switch event {
            case .stage(let name, let i, let n): redraw(&s, above: "stage \(i + 1)/\(n): \(name)\n")
            case .cached(let node, let type): redraw(&s, above: "  · \(node) (\(type)) cached\n")
            case .started(let node, let type, let frames, let reason):
                s.lines.append(Line(node: node, type: type, total: frames))
                redraw(&s, above: "  ▸ \(node) (\(type)) runs: \(reason)\n")
            case .progress(let node, let done, let total):
                if let i = s.lines.firstIndex(where: { $0.node == node }) {
                    s.lines[i].done = done
                    s.lines[i].total = total
                }
                redraw(&s)
            case .finished(let node, let type, let seconds, let frames):
                s.lines.removeAll { $0.node == node }
                redraw(&s, above: "  ✓ \(node) (\(type))\(frames.map { " " + framesText($0) } ?? "") in \(duration(seconds))\n")
            case .failed(let node, let type, let frame, let message):
                s.lines.removeAll { $0.node == node }
                redraw(&s, above: "  ✗ \(node) (\(type)) failed\(frame.map { " at frame \($0)" } ?? ""): \(message)\n")
            case .warning(let message): redraw(&s, above: "  ! warning: \(message)\n")
            case .log: break
            case .training(let stage, let step, let steps, let losses):
                let id = Stage.recordID(stage)
                if let i = s.lines.firstIndex(where: { $0.node == id }) {
                    s.lines[i].done = step
                    s.lines[i].detail = lossText(losses)
                } else {
                    s.lines.append(Line(node: id, type: "optimize", done: step, total: steps, detail: lossText(losses)))
                }
                if step == steps {
                    let started = s.lines.first { $0.node == id }?.started ?? Date()
                    s.lines.removeAll { $0.node == id }
                    redraw(&s, above: "  ✓ \(stage): \(steps) steps in \(duration(Date().timeIntervalSince(started)))  \(lossText(losses))\n")
                } else {
                    redraw(&s)
                }
            case .trainingCached(let stage, let step, let steps):
                redraw(&s, above: step >= steps ? "  · \(stage) cached (\(steps) steps)\n" : "  ↻ \(stage) resumes at step \(step)/\(steps)\n")
            }
        }
    }
    func finish() { state.withLock { s in s.lines.removeAll(); redraw(&s) } }
}

/// `--json`: one event object per line on stdout.
final class JSONEvents: ProgressDisplay {
    private let start = Date()
    private let lock = Mutex(())

    func handle(_ event: RunEvent) {
        var fields: [(String, JSON)] = []
        func add(_ k: String, _ v: JSON) { fields.append((k, v)) }
        switch event {
        case .stage(let name, let i, let n): add("event", .string("stage")); add("name", .string(name)); add("index", .int(Int64(i))); add("count", .int(Int64(n)))
        case .cached(let node, let type): add("event", .string("cached")); add("node", .string(node)); add("type", .string(type))
        case .started(let node, let type, let frames, let reason):
            add("event", .string("started")); add("node", .string(node)); add("type", .string(type))
            add("frames", frames.map { .int(Int64($0)) } ?? .null); add("reason", .string(reason))
        case .progress(let node, let done, let total):
            add("event", .string("progress")); add("node", .string(node)); add("done", .int(Int64(done))); add("total", .int(Int64(total)))
        case .finished(let node, let type, let seconds, let frames):
            add("event", .string("finished")); add("node", .string(node)); add("type", .string(type))
            add("seconds", .double(seconds)); add("frames", frames.map { .int(Int64($0)) } ?? .null)
        case .failed(let node, let type, let frame, let message):
            add("event", .string("failed")); add("node", .string(node)); add("type", .string(type))
            add("frame", frame.map { .int(Int64($0)) } ?? .null); add("message", .string(message))
        case .warning(let message): add("event", .string("warning")); add("message", .string(message))
        case .log(let plugin, let line): add("event", .string("log")); add("plugin", .string(plugin)); add("line", .string(line))
        case .training(let stage, let step, let steps, let losses):
            add("event", .string("loss")); add("stage", .string(stage)); add("step", .int(Int64(step))); add("steps", .int(Int64(steps)))
            add("losses", .object(losses.map { (key: $0.name, value: $0.value.isFinite ? .double($0.value) : .null) }))
        case .trainingCached(let stage, let step, let steps):
            add("event", .string(step >= steps ? "stage-cached" : "resumed")); add("stage", .string(stage)); add("step", .int(Int64(step))); add("steps", .int(Int64(steps)))
        }
        write(fields)
    }

    private func write(_ fields: [(String, JSON)]) {
        let all = fields + [("time", .double((Date().timeIntervalSince(start) * 1000).rounded() / 1000))]
        let line = JSON.object(all.map { (key: $0.0, value: $0.1) }).canonicalInOrder + "\n"
        lock.withLock { _ in FileHandle.standardOutput.write(Data(line.utf8)) }
    }

    func finish() {}

    /// The closing event of a run that succeeded: what was written (paths, SHA-256) and every
    /// output's value, so a script needs nothing else.
    func done(_ s: RunSummary) {
        let outputs: [JSON] = s.outputs.map { target, value in
            .object([("target", .string(target)), ("value", Self.json(value))])
        }
        let files: [JSON] = s.outputs.compactMap { target, value in
            guard let path = value["path"]?.string, value["sha256"]?.string != nil else { return nil }   // File records
            return .object([("target", .string(target)), ("path", .string(path)), ("sha256", value["sha256"]?.string.map(JSON.string) ?? .null)])
        }
        // Records of numbers among the outputs (Metrics.metrics, Loss.terms), by target.
        let metrics: [(key: String, value: JSON)] = s.outputs.compactMap { target, value in
            guard let r = value.record, !r.isEmpty, r.values.allSatisfy({ $0.number != nil }) else { return nil }
            return (key: target, value: Self.json(value))
        }
        write([("event", .string("done")), ("status", .string("ok")), ("exit", .int(0)),
               ("ran", .array(s.ran.keys.sorted().map(JSON.string))), ("cached", .array(s.cached.map(JSON.string))),
               ("outputs", .array(outputs)), ("files", .array(files)), ("metrics", .object(metrics))])
    }

    /// The closing event of a run that did not succeed: the kind of failure, the exit status
    /// the process ends with, the message, and for an invalid graph every problem with its place.
    func failed(_ error: Error) {
        var fields: [(String, JSON)] = [("event", .string("done")), ("status", .string("error"))]
        switch error {
        case let e as ValidationError:
            fields += [("kind", .string("invalid")), ("exit", .int(2)), ("message", .string(e.description)),
                       ("problems", .array(e.diagnostics.map { d in
                           .object([("file", .string(d.file)), ("path", .string(d.path)),
                                    ("line", d.location.map { .int(Int64($0.line)) } ?? .null),
                                    ("column", d.location.map { .int(Int64($0.column)) } ?? .null),
                                    ("message", .string(d.message))])
                       }))]
        case let e as RunError:
            fields += [("kind", .string("failed")), ("exit", .int(1)), ("message", .string(e.description)),
                       ("node", e.node.map(JSON.string) ?? .null), ("frame", e.frame.map { .int(Int64($0)) } ?? .null)]
        case let e as RequestError:
            fields += [("kind", .string("invalid")), ("exit", .int(2)), ("message", .string(e.description))]
        case let e as ExitMessage:
            fields += [("kind", .string(e.code == 2 ? "invalid" : "failed")), ("exit", .int(Int64(e.code))), ("message", .string(e.description))]
        case is CancellationError:
            fields += [("kind", .string("interrupted")), ("exit", .int(130)),
                       ("message", .string("interrupted: finished results are cached; run again to continue"))]
        default:
            fields += [("kind", .string("failed")), ("exit", .int(1)), ("message", .string("\(error)"))]
        }
        write(fields)
    }

    /// A value as JSON: numbers, strings and records as themselves, tensors by shape (and value
    /// when they hold one number).
    static func json(_ v: Value) -> JSON {
        switch v {
        case .number(let d): return d.isFinite ? .double(d) : .null
        case .string(let s): return .string(s)
        case .list(let l): return .array(l.map(json))
        case .record(let r): return .object(r.sorted { $0.key < $1.key }.map { (key: $0.key, value: json($0.value)) })
        case .tensor(let t):
            if t.count == 1, let d = v.number { return d.isFinite ? .double(d) : .null }
            return .object([("shape", .array(t.shape.map { .int(Int64($0)) }))])
        }
    }
}

extension JSON {
    /// Compact JSON in the given key order (events read better with "event" first).
    var canonicalInOrder: String {
        switch self {
        case .object(let m): return "{" + m.map { JSON.quote($0.key) + ":" + $0.value.canonicalInOrder }.joined(separator: ",") + "}"
        case .array(let a): return "[" + a.map(\.canonicalInOrder).joined(separator: ",") + "]"
        default: return canonical
        }
    }
}
