import Crypto
import Foundation
import Synchronization

/// SHA-256 of a file's contents as 64 lowercase hex digits, streamed (any size).
/// For nodes that write files and report `File` values (`path` + `sha256`).
public func sha256Hex(ofFile url: URL) throws -> String {
    var hasher = SHA256()
    try POSIXFile.forEachChunk(path: url.path) { hasher.update(bufferPointer: $0) }
    return hexString(hasher.finalize())
}

/// SHA-256 of bytes in memory as 64 lowercase hex digits.
public func sha256Hex(of data: Data) -> String {
    hexString(SHA256.hash(data: data))
}

/// Content hashes of input files and folders, memoised so unchanged inputs are not re-read.
///
/// Cache keys take `path` params by content (docs/DESIGN.md §3), and hashing a video on every run would
/// cost seconds. A file's hash is reused while its absolute path, size, mtime and ctime (both in
/// nanoseconds) and inode all match what they were when it was hashed; any change means a
/// re-hash. The memo lives in `<dir>/file-digests` (JSON), shared by every process using the
/// cache: updates merge with what is on disk and replace the file atomically, so concurrent
/// processes can at worst lose each other's additions, which only costs a re-hash.
///
/// As in git's "racy clean" rule, a file modified (mtime or ctime) within the last few seconds
/// is hashed but not memoised: a second write in the same clock tick could leave every
/// recorded attribute unchanged.
///
/// A folder (e.g. a PNG sequence) hashes as a digest over the sorted relative paths and content
/// hashes of the regular files in it, recursively, skipping hidden names (`.DS_Store`, editors'
/// swap files) so they cannot invalidate results.
public final class FileDigest: Sendable {
    /// The memo file.
    public let indexURL: URL
    private let onWarning: @Sendable (String) -> Void
    private let state = Mutex(State())
    /// Files modified more recently than this are not memoised (see the type's comment).
    private let racyWindowNanoseconds: Int64

    struct Record: Codable, Equatable, Sendable {
        var size: Int64
        var mtime: Int64
        var ctime: Int64
        var inode: UInt64
        var sha256: String

        init(_ status: FileStatus, sha256: String) {
            size = status.size
            mtime = status.modifiedNanoseconds
            ctime = status.changedNanoseconds
            inode = status.inode
            self.sha256 = sha256
        }

        func matches(_ s: FileStatus) -> Bool {
            size == s.size && mtime == s.modifiedNanoseconds && ctime == s.changedNanoseconds && inode == s.inode
        }
    }

    private struct IndexFile: Codable {
        var format: Int
        var files: [String: Record]
    }

    struct State {
        var loaded = false
        var memo: [String: Record] = [:]
        /// Records added since the last save.
        var pending: [String: Record] = [:]
        var filesHashed = 0
    }

    /// `directory` is the cache directory; the memo is its `file-digests` file. `racyWindow`
    /// (seconds) is how recent a change must be for a file not to be memoised.
    public init(directory: URL, onWarning: @escaping @Sendable (String) -> Void = { _ in },
                racyWindow: TimeInterval = 3) {
        indexURL = directory.appendingPathComponent("file-digests")
        self.onWarning = onWarning
        racyWindowNanoseconds = Int64(racyWindow * 1e9)
    }

    /// How many files this instance actually read and hashed (memo misses), for `--explain`
    /// style reporting and tests.
    public var filesHashed: Int { state.withLock { $0.filesHashed } }

    /// The content hash of a file, or of a folder's files, as 64 lowercase hex digits.
    public func sha256(of url: URL) throws -> String {
        let path = url.standardizedFileURL.resolvingSymlinksInPath().path
        guard let status = FileStatus(path: path) else {
            throw CacheError(.io, "Cannot hash \(url.path): there is no such file or folder.", path: url.path)
        }
        loadIfNeeded()
        defer { save() }
        return status.isDirectory ? try folderDigest(path) : try fileDigest(path, status)
    }

    /// Forgets every memoised hash, on disk and in memory (`pgflow cache clear`).
    func reset() {
        state.withLock { $0 = State(loaded: true) }
        try? FileManager.default.removeItem(at: indexURL)
    }

    private func fileDigest(_ path: String, _ status: FileStatus) throws -> String {
        if let r = state.withLock({ $0.memo[path] }), r.matches(status) { return r.sha256 }
        guard status.isRegularFile else {
            throw CacheError(.io, "Cannot hash \(path): it is not a regular file.", path: path)
        }
        let hex = try sha256Hex(ofFile: URL(fileURLWithPath: path))
        // Memoise only if the file did not change while it was read and is not "racy".
        let now = Int64(Date().timeIntervalSince1970 * 1e9)
        let after = FileStatus(path: path)
        let lastChange = max(status.modifiedNanoseconds, status.changedNanoseconds)
        let stable = after == status && lastChange < now - racyWindowNanoseconds
        state.withLock {
            $0.filesHashed += 1
            if stable {
                $0.memo[path] = Record(status, sha256: hex)
                $0.pending[path] = Record(status, sha256: hex)
            }
        }
        return hex
    }

    private func folderDigest(_ path: String) throws -> String {
        try Self.folderDigest(path) { try fileDigest($0, $1) }
    }

    /// The content hash pgflow gives a file or folder, computed afresh (no memo): what a node that
    /// has just written an output records, so the cache's later check of that output agrees.
    public static func contentDigest(of url: URL) throws -> String {
        let path = url.standardizedFileURL.resolvingSymlinksInPath().path
        guard let status = FileStatus(path: path) else {
            throw CacheError(.io, "Cannot hash \(url.path): there is no such file or folder.", path: url.path)
        }
        return status.isDirectory ? try folderDigest(path) { p, _ in try sha256Hex(ofFile: URL(fileURLWithPath: p)) }
            : try sha256Hex(ofFile: URL(fileURLWithPath: path))
    }

    /// Every regular file below `path` (hidden names skipped) in byte order of their relative
    /// names, each as its name and its content hash.
    private static func folderDigest(_ path: String, _ fileDigest: (String, FileStatus) throws -> String) throws -> String {
        let subpaths: [String]
        do { subpaths = try FileManager.default.subpathsOfDirectory(atPath: path) } catch {
            throw CacheError(.io, "Cannot list the folder \(path): \(error.localizedDescription).", path: path)
        }
        var files: [(name: String, status: FileStatus)] = []
        for sub in subpaths where !sub.split(separator: "/").contains(where: { $0.hasPrefix(".") }) {
            if let s = FileStatus(path: path + "/" + sub), s.isRegularFile { files.append((sub, s)) }
        }
        files.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var sink = SHA256Sink()
        sink.writeString("pgflow-folder-v1")
        sink.writeUInt64(UInt64(files.count))
        for file in files {
            sink.writeString(file.name)
            sink.writeString(try fileDigest(path + "/" + file.name, file.status))
        }
        return hexString(sink.hasher.finalize())
    }

    private func loadIfNeeded() {
        guard !state.withLock({ $0.loaded }) else { return }
        let onDisk = readIndex()
        state.withLock { s in
            guard !s.loaded else { return }
            s.memo.merge(onDisk) { mine, _ in mine }
            s.loaded = true
        }
    }

    private func readIndex() -> [String: Record] {
        guard let data = try? Data(contentsOf: indexURL) else { return [:] }
        guard let index = try? JSONDecoder().decode(IndexFile.self, from: data), index.format == 1 else {
            onWarning("The file-digest memo \(indexURL.path) cannot be read; input files will be hashed again.")
            return [:]
        }
        return index.files
    }

    /// Merges new records into the memo file (read, merge, atomic replace).
    private func save() {
        let pending = state.withLock { s -> [String: Record] in
            defer { s.pending = [:] }
            return s.pending
        }
        guard !pending.isEmpty else { return }
        var files = readIndex()
        files.merge(pending) { _, new in new }
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data = try encoder.encode(IndexFile(format: 1, files: files))
            try FileManager.default.createDirectory(at: indexURL.deletingLastPathComponent(),
                                                    withIntermediateDirectories: true)
            try POSIXFile.writeAtomically([data], to: indexURL.path)
        } catch {
            onWarning("The file-digest memo \(indexURL.path) cannot be updated (\(error)); input files will be hashed again next run.")
        }
        state.withLock { s in s.memo.merge(files) { mine, _ in mine } }
    }
}
