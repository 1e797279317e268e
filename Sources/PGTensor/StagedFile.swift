import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a file-system call failed, as a clause ("cannot write: No space left on device"); callers
/// wrap it in their own error type with the file's name.
public struct FileFailure: Error, Sendable {
    public let reason: String
}

/// A file written next to its destination and renamed over it when complete: readers see the old
/// file or the whole new one, never a mix, and concurrent writers each rename a complete file of
/// their own. The cache's entries and `NPZ.write` both go through it, chunk by chunk, so nothing
/// has to be assembled in memory first.
public struct StagedFile {
    public let path: String
    let temporary: String
    let fd: Int32

    public init(replacing path: String) throws(FileFailure) {
        self.path = path
        temporary = (path as NSString).deletingLastPathComponent + "/" + Self.temporaryName(for: (path as NSString).lastPathComponent)
        fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileFailure(reason: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
    }

    /// Appends `bytes`. On failure the caller calls `abandon()`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(FileFailure) {
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw FileFailure(reason: "cannot write: \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    /// Renames the staged file over `path`; on failure the staged file is removed. `durable`
    /// flushes it to disk first, so a crash never leaves a renamed but empty file (the cache
    /// needs that; a user's output can skip it).
    public func commit(durable: Bool) throws(FileFailure) {
        func failure(_ what: String) -> FileFailure { FileFailure(reason: "\(what): \(String(cString: strerror(errno)))") }
        if durable, fsync(fd) != 0 {
            let f = failure("cannot flush to disk")
            abandon()
            throw f
        }
        guard close(fd) == 0 else { let f = failure("cannot close"); unlink(temporary); throw f }
        guard rename(temporary, path) == 0 else { let f = failure("cannot rename into place"); unlink(temporary); throw f }
    }

    /// Writes `path` whole or not at all: `body` writes the staged file, which is committed when
    /// it returns and abandoned when it throws (its error is rethrown; a failure of the file
    /// itself is a `FileFailure`).
    public static func replace(_ path: String, durable: Bool, _ body: (StagedFile) throws -> Void) throws {
        let file = try StagedFile(replacing: path)
        do { try body(file) } catch {
            file.abandon()
            throw error
        }
        try file.commit(durable: durable)
    }

    /// Gives up before `commit`: closes and removes the staged file.
    public func abandon() {
        close(fd)
        unlink(temporary)
    }

    /// Names start with ".tmp-" so listings skip them and the cache's gc can sweep leftovers of
    /// crashed writers; pid plus a random number keeps concurrent writers (threads or processes) apart.
    public static func temporaryName(for name: String) -> String {
        ".tmp-\(name.prefix(16))-\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
    }
}

/// Reads from `fd` until `buffer` is full or the file ends: the number of bytes read, or nil
/// (with `errno` set) when a read fails.
public func readFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int? {
    var done = 0
    while done < buffer.count {
        let n = systemRead(fd, buffer.baseAddress! + done, buffer.count - done)
        if n < 0 { if errno == EINTR { continue }; return nil }
        if n == 0 { break }
        done += n
    }
    return done
}

// Unqualified `read`/`write` would resolve to the methods above.
@inline(__always) private func systemRead(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ n: Int) -> Int { read(fd, p, n) }
@inline(__always) private func systemWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }
