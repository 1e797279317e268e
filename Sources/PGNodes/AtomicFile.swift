import Foundation
import PGFlow

/// Small files written the way every pgflow output is: under a hidden temporary name beside the
/// destination, flushed, then renamed, so a failed or interrupted run never leaves a file that
/// looks finished.
enum AtomicFile {
    /// Writes under a hidden temporary name in the destination's folder, flushes, then renames, so a
    /// failed run never leaves a file that looks finished.
    static func write(_ data: Data, to url: URL) throws {
        let fm = FileManager.default
        let path = url.path
        let folder = url.deletingLastPathComponent()
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw OperatorError("Cannot write '\(path)': it is an existing folder, not a file")
        }
        do { try fm.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw OperatorError("Cannot write '\(path)': its folder cannot be created (\(error.localizedDescription))")
        }
        let staging = folder.appendingPathComponent(".\(url.lastPathComponent).partial-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))")
        guard fm.createFile(atPath: staging.path, contents: data) else {
            throw OperatorError("Cannot write '\(path)': a file cannot be created in '\(folder.path)'")
        }
        let fd = open(staging.path, O_RDONLY)
        if fd >= 0 { _ = fsync(fd); close(fd) }
        if rename(staging.path, path) != 0 {
            let cause = String(cString: strerror(errno))
            try? fm.removeItem(at: staging)
            throw OperatorError("Cannot write '\(path)': the finished file cannot be moved into place (\(cause))")
        }
        let dirFD = open(folder.path, O_RDONLY)
        if dirFD >= 0 { _ = fsync(dirFD); close(dirFD) }
    }
}
