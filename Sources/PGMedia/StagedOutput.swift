import Foundation
import Synchronization

/// A file or folder written under a hidden temporary name beside its destination and renamed into
/// place only when complete, so a failed or interrupted write never leaves something that looks
/// finished. The temporary name is `.<name>.partial-<pid>-<random>[.<ext>]` (same folder, so the
/// rename is atomic and needs no copy); `discard()` removes it, and the next write to the same
/// destination removes what a killed process (its pid gone) left behind.
final class StagedOutput {
    /// Stagings this process has open, so that an immediate exit (a second Ctrl-C) can remove them.
    private static let inFlight = Mutex(Set<String>())

    let destination: URL
    let staging: URL
    let isFolder: Bool
    private(set) var committed = false

    /// Checks the destination, creates missing parent folders and the (empty) staging file or folder.
    /// - Parameter inputs: files or folders being read; writing over any of them is refused.
    init(destination: URL, folder: Bool, protecting inputs: [URL]) throws {
        let dest = destination.standardizedFileURL
        let path = dest.path
        self.destination = dest
        isFolder = folder
        try Self.refuseOverwritingInputs(dest, folder: folder, inputs: inputs)

        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDir) {
            if folder && !isDir.boolValue {
                throw MediaError.unwritable(path, "it is an existing file, and a PNG sequence is written to a folder")
            }
            if !folder && isDir.boolValue {
                throw MediaError.unwritable(path, "it is an existing folder, not a file")
            }
            if folder {
                let stray = (try? fm.contentsOfDirectory(atPath: path))?
                    .filter { !$0.hasPrefix(".") && !$0.lowercased().hasSuffix(".png") } ?? []
                if let first = stray.sorted().first {
                    throw MediaError.unwritable(path, "the folder exists and holds files that are not PNG frames "
                                                + "(such as '\(first)'); refusing to replace it")
                }
            }
        }
        let parent = dest.deletingLastPathComponent().path
        try Self.makeFolders(parent, for: path)

        let name = dest.lastPathComponent
        let ext = dest.pathExtension
        Self.removeAbandonedStagings(of: name, in: parent)
        let token = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        var stagingName = ".\(name).partial-\(getpid())-\(token)"
        if !folder && !ext.isEmpty { stagingName += ".\(ext)" }   // FFmpeg picks the container from it
        staging = URL(fileURLWithPath: parent).appendingPathComponent(stagingName)
        if folder {
            if mkdir(staging.path, 0o755) != 0 {
                throw MediaError.unwritable(path, "a folder cannot be created in '\(parent)'", cause: Self.lastError())
            }
        } else {
            let fd = open(staging.path, O_CREAT | O_EXCL | O_WRONLY, 0o644)
            if fd < 0 { throw MediaError.unwritable(path, "a file cannot be created in '\(parent)'", cause: Self.lastError()) }
            close(fd)
        }
        Self.inFlight.withLock { _ = $0.insert(staging.path) }
    }

    deinit { if !committed { discard() } }

    /// Flushes to disk and moves the staging name onto the destination (replacing an earlier result).
    func commit() throws {
        let path = destination.path
        if isFolder {
            let fm = FileManager.default
            var old: String?
            if fm.fileExists(atPath: path) {
                // rename(2) cannot replace a non-empty folder: move the old one aside first.
                let aside = destination.deletingLastPathComponent()
                    .appendingPathComponent(".\(destination.lastPathComponent).old-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))").path
                if rename(path, aside) != 0 {
                    throw MediaError.unwritable(path, "the earlier PNG folder cannot be moved aside", cause: Self.lastError())
                }
                old = aside
            }
            if rename(staging.path, path) != 0 {
                let cause = Self.lastError()
                if let old { _ = rename(old, path) }
                throw MediaError.unwritable(path, "the finished PNG folder cannot be moved into place", cause: cause)
            }
            if let old { try? fm.removeItem(atPath: old) }
        } else {
            let fd = open(staging.path, O_RDONLY)
            if fd >= 0 { _ = fsync(fd); close(fd) }
            if rename(staging.path, path) != 0 {
                throw MediaError.unwritable(path, "the finished file cannot be moved into place", cause: Self.lastError())
            }
        }
        let dirFD = open(destination.deletingLastPathComponent().path, O_RDONLY)
        if dirFD >= 0 { _ = fsync(dirFD); close(dirFD) }
        committed = true
        Self.inFlight.withLock { _ = $0.remove(staging.path) }
    }

    /// Removes every staging this process still has open: for a process about to exit without
    /// unwinding (a second Ctrl-C). Returns how many there were.
    @discardableResult
    static func discardAllInFlight() -> Int {
        let paths = inFlight.withLock { set -> Set<String> in defer { set.removeAll() }; return set }
        for p in paths { try? FileManager.default.removeItem(atPath: p) }
        return paths.count
    }

    /// Stagings of `name` whose writer no longer runs (killed mid-write: no deinit, no discard).
    /// A process that still runs keeps its own, even if it writes the same destination.
    static func removeAbandonedStagings(of name: String, in folder: String) {
        let prefix = ".\(name).partial-"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where entry.hasPrefix(prefix) {
            guard let pid = Int32(entry.dropFirst(prefix.count).prefix { $0 != "-" }), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                try? FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent(entry))
            }
        }
    }

    /// Removes the staging file or folder (after a failure or cancellation).
    func discard() {
        guard !committed else { return }
        try? FileManager.default.removeItem(at: staging)
        Self.inFlight.withLock { _ = $0.remove(staging.path) }
    }

    /// Creates `folder` and its missing parents, reporting the first component that cannot be made.
    private static func makeFolders(_ folder: String, for path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isDir) {
            if !isDir.boolValue { throw MediaError.unwritable(path, "'\(folder)' is a file, not a folder") }
            return
        }
        let parent = (folder as NSString).deletingLastPathComponent
        if parent != folder && !parent.isEmpty { try makeFolders(parent, for: path) }
        if mkdir(folder, 0o755) != 0 && errno != EEXIST {
            throw MediaError.unwritable(path, "its folder '\(folder)' cannot be created", cause: lastError())
        }
    }

    /// Writing over an input would destroy the data being read (and, for a folder, delete it).
    private static func refuseOverwritingInputs(_ dest: URL, folder: Bool, inputs: [URL]) throws {
        let destReal = dest.resolvingSymlinksInPath().path
        for input in inputs {
            let inReal = input.standardizedFileURL.resolvingSymlinksInPath().path
            let same = inReal == destReal || sameFile(inReal, destReal)
            let inside = folder && inReal.hasPrefix(destReal.hasSuffix("/") ? destReal : destReal + "/")
            if same || inside {
                throw MediaError(.overwritesInput, path: dest.path,
                                 "Refusing to write '\(dest.path)': it would overwrite the input '\(input.standardizedFileURL.path)' "
                                 + "that is being read; choose another output path")
            }
        }
    }

    /// Same device and inode: catches hard links and paths spelled differently.
    private static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    static func lastError() -> String { String(cString: strerror(errno)) }
}

/// Small whole files (reports, tracking, point clouds) written the way every pgflow output is:
/// staged beside the destination, flushed, renamed into place.
public enum AtomicWrite {
    /// Removes the half-written outputs of this process (before an immediate exit); see
    /// `StagedOutput.discardAllInFlight`.
    @discardableResult
    public static func discardInFlight() -> Int { StagedOutput.discardAllInFlight() }

    public static func write(_ data: Data, to url: URL, protecting inputs: [URL] = []) throws {
        let staged = try StagedOutput(destination: url, folder: false, protecting: inputs)
        do {
            try data.write(to: staged.staging)
        } catch {
            staged.discard()
            throw MediaError.unwritable(url.path, "the file cannot be written", cause: error.localizedDescription)
        }
        try staged.commit()
    }
}
