import Foundation
import PGTensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The cache needs things Foundation does not expose: fsync before rename (so a crash never
// leaves a renamed but empty entry), nanosecond mtimes and inode numbers (for the file-digest
// memo), and touching mtimes (for LRU). These thin wrappers map errno to CacheError here only.

/// The metadata of one file as `stat(2)` reports it (following symlinks).
struct FileStatus: Equatable {
    var size: Int64
    var modifiedNanoseconds: Int64
    var changedNanoseconds: Int64
    var inode: UInt64
    var device: UInt64
    var isDirectory: Bool
    var isRegularFile: Bool

    init(_ st: stat) {
        size = Int64(st.st_size)
        #if canImport(Darwin)
        modifiedNanoseconds = Int64(st.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(st.st_mtimespec.tv_nsec)
        changedNanoseconds = Int64(st.st_ctimespec.tv_sec) * 1_000_000_000 + Int64(st.st_ctimespec.tv_nsec)
        #else
        modifiedNanoseconds = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        changedNanoseconds = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        #endif
        inode = UInt64(st.st_ino)
        device = UInt64(st.st_dev)
        isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
        isRegularFile = (st.st_mode & S_IFMT) == S_IFREG
    }

    /// nil when the path does not exist (or cannot be looked at).
    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        self.init(st)
    }

    init?(fd: Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        self.init(st)
    }

    var modified: Date { Date(timeIntervalSince1970: Double(modifiedNanoseconds) / 1e9) }
}

enum POSIXFile {
    static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    /// Creates `folder` and its missing parents. On failure, a sentence naming the first folder
    /// that could not be made and why ("… cannot be created in /a (read-only): Permission denied").
    static func createFolders(_ folder: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isDir) {
            if !isDir.boolValue { throw CacheError(.io, "\(folder) is a file, not a folder", path: folder) }
            return
        }
        let parent = (folder as NSString).deletingLastPathComponent
        if parent != folder && !parent.isEmpty { try createFolders(parent) }
        if mkdir(folder, 0o755) != 0 && errno != EEXIST {
            let why = errorText()
            let readOnly = access(parent, W_OK) != 0 ? " (\(parent) is not writable)" : ""
            throw CacheError(.io, "the folder \(folder) cannot be created\(readOnly): \(why)", path: folder)
        }
    }

    /// Writes `data` to `path` (staged and renamed), creating missing folders; failures are one
    /// sentence that names the file and the reason.
    static func writeFile(_ data: Data, to path: String) throws {
        try createFolders((path as NSString).deletingLastPathComponent)
        do { try writeAtomically([data], to: path) } catch let e as CacheError {
            let dir = (path as NSString).deletingLastPathComponent
            let why = access(dir, W_OK) != 0 ? "its folder \(dir) is not writable" : e.message
            throw CacheError(.io, "\(path) cannot be written: \(why)", path: path)
        }
    }

    /// Reads a whole file: nil when it does not exist, throws for any other failure.
    static func read(path: String) throws -> (data: Data, status: FileStatus)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return nil }
            throw CacheError(.io, "Cannot open \(path): \(errorText(code)).", path: path)
        }
        defer { close(fd) }
        guard let status = FileStatus(fd: fd) else {
            throw CacheError(.io, "Cannot look at \(path): \(errorText()).", path: path)
        }
        var data = Data(count: Int(max(0, status.size)))
        // A file that shrank under us reads short: the format checks catch the count.
        guard let done = data.withUnsafeMutableBytes({ readFully(fd, into: $0) }) else {
            throw CacheError(.io, "Cannot read \(path): \(errorText()).", path: path)
        }
        data.count = done
        return (data, status)
    }

    /// Streams a file through `body` in 1 MiB chunks (for hashing files of any size).
    static func forEachChunk(path: String, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CacheError(.io, "Cannot open \(path): \(errorText()).", path: path) }
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            guard let n = readFully(fd, into: buffer) else {
                throw CacheError(.io, "Cannot read \(path): \(errorText()).", path: path)
            }
            if n > 0 { body(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
            if n < buffer.count { return }   // the end of the file
        }
    }

    /// Reads at most `count` bytes from the start of a file.
    static func readPrefix(path: String, count: Int) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data = Data(count: count)
        data.count = data.withUnsafeMutableBytes { readFully(fd, into: $0) } ?? 0
        return data
    }

    /// Writes `chunks` to a new file next to `path` and renames it over `path`: readers see the
    /// old file or the complete new one, never a mix; concurrent writers each rename their own
    /// complete temp file, so the last rename wins and every state in between is valid.
    static func writeAtomically(_ chunks: [Data], to path: String) throws {
        do {
            try StagedFile.replace(path, durable: true) { file in
                for chunk in chunks { try chunk.withUnsafeBytes { try file.write($0) } }
            }
        } catch let failure as FileFailure {
            throw CacheError(.io, "Cannot write \(path): \(failure.reason).", path: path)
        }
        // The directory itself is not fsynced: after a crash the rename may be lost, which only
        // turns into a cache miss; the entry itself can never be seen half-written.
    }

    /// Sets a file's mtime (now when nil); atime is left alone.
    @discardableResult
    static func setModified(path: String, nanoseconds: Int64? = nil) -> Bool {
        // <sys/stat.h> defines these as expressions, which Swift does not import.
        #if canImport(Darwin)
        let utimeNow = -1, utimeOmit = -2
        #else
        let utimeNow = (1 << 30) - 1, utimeOmit = (1 << 30) - 2
        #endif
        var times = [timespec(tv_sec: 0, tv_nsec: utimeOmit), timespec(tv_sec: 0, tv_nsec: utimeNow)]
        if let ns = nanoseconds {
            times[1] = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
        }
        return utimensat(AT_FDCWD, path, times, 0) == 0
    }

    /// Removes `path` only if it is still the file described by `status`, so a valid entry
    /// renamed into place by another process after we read a corrupt one is not deleted.
    @discardableResult
    static func unlink(path: String, ifStill status: FileStatus?) -> Bool {
        if let status, let now = FileStatus(path: path),
           now.inode != status.inode || now.device != status.device {
            return false
        }
        return Glibc_unlink(path) == 0
    }

    /// Names in a directory (without "." and ".."), empty when it cannot be read.
    static func list(_ directory: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    }
}

// Unqualified `unlink` would resolve to the static method above.
#if canImport(Glibc) || canImport(Musl)
@inline(__always) private func Glibc_unlink(_ path: String) -> Int32 { unlink(path) }
#else
@inline(__always) private func Glibc_unlink(_ path: String) -> Int32 { Darwin.unlink(path) }
#endif
