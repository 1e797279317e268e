import Foundation
import Testing
@testable import PGFlow

/// Writes a file and dates its mtime `minutesAgo` in the past. (Its ctime stays "now", so tests
/// that want memoisation use `racyWindow: 0`.)
private func write(_ text: String, to url: URL, minutesAgo: Int64) throws {
    try Data(text.utf8).write(to: url)
    let ns = (Int64(Date().timeIntervalSince1970) - minutesAgo * 60) * 1_000_000_000
    #expect(POSIXFile.setModified(path: url.path, nanoseconds: ns))
}

@Suite struct CacheFileDigestTests {
    @Test func memoisedHashIsReusedUntilTheFileChanges() throws {
        let dir = try makeCacheTestDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("input.mp4")
        try write("frame data v1", to: file, minutesAgo: 10)

        let digests = FileDigest(directory: dir, racyWindow: 0)
        let first = try digests.sha256(of: file)
        #expect(first == sha256Hex(of: Data("frame data v1".utf8)))
        #expect(try digests.sha256(of: file) == first)
        #expect(digests.filesHashed == 1, "the second call used the memo")

        // Another process (a new instance) reads the memo from disk instead of re-hashing.
        let other = FileDigest(directory: dir, racyWindow: 0)
        #expect(try other.sha256(of: file) == first)
        #expect(other.filesHashed == 0)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("file-digests").path))

        // Same size, new content and mtime: re-hashed.
        try write("frame data v2", to: file, minutesAgo: 5)
        let second = try other.sha256(of: file)
        #expect(second == sha256Hex(of: Data("frame data v2".utf8)))
        #expect(other.filesHashed == 1)

        // New size, mtime set back to the memoised one: still re-hashed (size differs).
        try write("frame data, version three", to: file, minutesAgo: 5)
        #expect(try other.sha256(of: file) == sha256Hex(of: Data("frame data, version three".utf8)))
        #expect(other.filesHashed == 2)

        // A path given differently (relative components) shares the memo entry.
        let roundabout = dir.appendingPathComponent("sub/../input.mp4")
        #expect(try other.sha256(of: roundabout) == sha256Hex(of: Data("frame data, version three".utf8)))
        #expect(other.filesHashed == 2)
    }

    @Test func recentlyModifiedFilesAreHashedButNotMemoised() throws {
        let dir = try makeCacheTestDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("fresh.txt")
        // An old mtime does not help: the ctime of the write is recent.
        try write("just written", to: file, minutesAgo: 10)
        let digests = FileDigest(directory: dir)
        #expect(try digests.sha256(of: file) == sha256Hex(of: Data("just written".utf8)))
        #expect(try digests.sha256(of: file) == sha256Hex(of: Data("just written".utf8)))
        #expect(digests.filesHashed == 2, "a file in the racy window is re-read every time")
    }

    @Test func foldersHashTheirFilesInNameOrder() throws {
        let dir = try makeCacheTestDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let frames = dir.appendingPathComponent("frames")
        try FileManager.default.createDirectory(at: frames.appendingPathComponent("nested"), withIntermediateDirectories: true)
        for i in 0..<3 { try write("png \(i)", to: frames.appendingPathComponent("\(i).png"), minutesAgo: 10) }
        try write("deep", to: frames.appendingPathComponent("nested/x.png"), minutesAgo: 10)

        let digests = FileDigest(directory: dir.appendingPathComponent("cache"), racyWindow: 0)
        let a = try digests.sha256(of: frames)
        #expect(digests.filesHashed == 4)
        #expect(try digests.sha256(of: frames) == a)
        #expect(digests.filesHashed == 4, "member files come from the memo")

        try write("noise", to: frames.appendingPathComponent(".DS_Store"), minutesAgo: 10)
        #expect(try digests.sha256(of: frames) == a, "hidden files do not count")

        try write("png X", to: frames.appendingPathComponent("1.png"), minutesAgo: 1)
        let b = try digests.sha256(of: frames)
        #expect(b != a, "a changed frame changes the folder's hash")
        #expect(digests.filesHashed == 5, "only the changed file is re-read")

        try FileManager.default.moveItem(at: frames.appendingPathComponent("2.png"), to: frames.appendingPathComponent("3.png"))
        #expect(try digests.sha256(of: frames) != b, "renaming a frame changes the folder's hash")
        #expect(try digests.sha256(of: frames) != sha256Hex(of: Data()), "folders do not hash like files")
    }

    @Test func missingInputsThrowASentence() throws {
        let dir = try makeCacheTestDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let digests = FileDigest(directory: dir)
        do {
            _ = try digests.sha256(of: dir.appendingPathComponent("nope.mp4"))
            Issue.record("a missing file was hashed")
        } catch let e as CacheError {
            #expect(e.description == "Cannot hash \(dir.appendingPathComponent("nope.mp4").path): there is no such file or folder.")
        }
    }

    @Test func aCorruptMemoIsIgnoredWithAWarning() throws {
        let dir = try makeCacheTestDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("{not json".utf8).write(to: dir.appendingPathComponent("file-digests"))
        let log = WarningLog()
        let file = dir.appendingPathComponent("a.txt")
        try write("a", to: file, minutesAgo: 10)
        let digests = FileDigest(directory: dir, onWarning: log.handler, racyWindow: 0)
        #expect(try digests.sha256(of: file) == sha256Hex(of: Data("a".utf8)))
        #expect(log.all.count >= 1 && log.all[0].contains("file-digest memo"))
        // The rewritten memo is valid again.
        let again = FileDigest(directory: dir, racyWindow: 0)
        #expect(try again.sha256(of: file) == sha256Hex(of: Data("a".utf8)))
        #expect(again.filesHashed == 0)
    }

    @Test func storeClearForgetsFileDigests() throws {
        let dir = try makeCacheTestDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try CacheStore(directory: dir.appendingPathComponent("cache"))
        let file = dir.appendingPathComponent("in.bin")
        try write("x", to: file, minutesAgo: 10)
        // The store's own FileDigest uses the real racy window, so a separate one fills the memo.
        let filler = FileDigest(directory: store.directory, racyWindow: 0)
        _ = try filler.sha256(of: file)
        #expect(store.fileDigests.indexURL == filler.indexURL)
        #expect(FileManager.default.fileExists(atPath: filler.indexURL.path))
        store.clear()
        #expect(!FileManager.default.fileExists(atPath: filler.indexURL.path))
        let after = FileDigest(directory: store.directory, racyWindow: 0)
        _ = try after.sha256(of: file)
        #expect(after.filesHashed == 1, "the memo is gone, so the file is read again")
    }
}
