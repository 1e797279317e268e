import Foundation
import Synchronization
import Testing
@testable import PGFlow
import PGTensor

/// Collects warnings from a store so tests can assert on them.
final class WarningLog: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    var handler: @Sendable (String) -> Void { { [self] line in lines.withLock { $0.append(line) } } }
}

private func key(_ name: String) -> CacheKey {
    var h = KeyHasher("test")
    h.add("name", name)
    return h.finalize()
}

private func info(_ node: String, frame: Int? = nil) -> EntryInfo {
    EntryInfo(nodeID: node, nodeType: "TestNode", frame: frame, graph: "g",
              created: Date(timeIntervalSince1970: 1_700_000_000))
}

private func flipBit(in path: String, at offset: Int) throws {
    let url = URL(fileURLWithPath: path)
    var data = try Data(contentsOf: url)
    data[offset] ^= 0x10
    try data.write(to: url)
}

@Suite struct CacheStoreTests {
    let dir: URL
    let log = WarningLog()
    let store: CacheStore

    init() throws {
        dir = try makeCacheTestDirectory()
        store = try CacheStore(directory: dir, onWarning: log.handler)
    }

    @Test func storeAndLoadEveryValueCase() throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let k = key("all")
        #expect(store.load(k) == nil, "empty store misses")
        #expect(!store.contains(k))
        try store.store(k, everyValueCase(), info: info("node", frame: 4))
        #expect(store.contains(k))
        let loaded = try #require(store.load(k))
        #expect(sameValue(.record(loaded), .record(everyValueCase())))
        #expect(store.info(for: k) == info("node", frame: 4))
        // An empty output set is a valid result too.
        try store.store(key("none"), [:], info: info("sink"))
        #expect(store.load(key("none")) == [:])
        #expect(log.all.isEmpty)

        let file = store.path(for: k)
        #expect(file.hasSuffix("/objects/\(k.hex.prefix(2))/\(k.hex)"))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        #expect(bytes.prefix(4) == Data("PGFC".utf8))
    }

    @Test func truncatedEntryIsAMissWithAWarning() throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let k = key("t")
        try store.store(k, ["rgb": .tensor(Tensor(repeating: 0.25, shape: [3, 8, 8]))], info: info("render", frame: 2))
        let path = store.path(for: k)
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        for cut in [full.count - 1, full.count / 2, 30, 3, 0] {
            try full.prefix(cut).write(to: URL(fileURLWithPath: path))
            #expect(store.load(k) == nil, "cut to \(cut) bytes")
            #expect(!FileManager.default.fileExists(atPath: path), "the corrupt entry is removed")
        }
        #expect(log.all.count == 5)
        #expect(log.all.allSatisfy { $0.contains(k.short) && $0.contains("corrupt") })
        #expect(log.all[0].contains("node 'render' (TestNode), frame 2"), "the warning names the entry: \(log.all[0])")
        #expect(log.all[0].contains("truncated"))
    }

    @Test func flippedBitsAreMissesWithAWarning() throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let k = key("bits")
        let outputs: [String: Value] = ["x": .tensor(Tensor(shape: [64], scalars: (0..<64).map(Float.init)))]
        let path = store.path(for: k)
        try store.store(k, outputs, info: info("n"))
        let entry = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerLength = Int(entry[8]) | Int(entry[9]) << 8
        let places = [
            ("payload", entry.count - 1),
            ("header", 12 + headerLength / 2),
            ("digest", 12 + headerLength + 8 + 5),
            ("payload length", 12 + headerLength),
            ("magic", 1),
        ]
        for (what, offset) in places {
            try store.store(k, outputs, info: info("n"))
            try flipBit(in: path, at: offset)
            #expect(store.load(k) == nil, "a flipped bit in the \(what) is a miss")
            #expect(!FileManager.default.fileExists(atPath: path))
        }
        #expect(log.all.count == places.count)
        #expect(log.all[0].contains("checksum") && log.all[0].contains(k.short), "\(log.all[0])")
        // After a miss the entry can be written again and read back intact.
        try store.store(k, outputs, info: info("n"))
        #expect(store.load(k) == outputs)
    }

    @Test func anEntryUnderTheWrongKeyIsAMiss() throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        try store.store(key("a"), ["v": .number(1)], info: info("a"))
        let wrong = store.path(for: key("b"))
        try FileManager.default.createDirectory(atPath: (wrong as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: store.path(for: key("a")), toPath: wrong)
        #expect(store.load(key("b")) == nil)
        #expect(log.all.count == 1 && log.all[0].contains("holds the entry for key"))
        #expect(store.load(key("a")) == ["v": .number(1)])
    }

    @Test func verifyFindsAndOptionallyRemovesCorruptEntries() throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        for i in 0..<4 { try store.store(key("\(i)"), ["i": .number(Double(i))], info: info("n\(i)")) }
        let victim = store.path(for: key("2"))
        try flipBit(in: victim, at: try Data(contentsOf: URL(fileURLWithPath: victim)).count - 1)
        let report = store.verify()
        #expect(report.checked == 4)
        #expect(report.corrupt.map(\.key) == [key("2")])
        #expect(report.corrupt.first?.info?.nodeID == "n2")
        #expect(report.removed == 0 && FileManager.default.fileExists(atPath: store.path(for: key("2"))))
        let fixing = store.verify(removeCorrupt: true)
        #expect(fixing.removed == 1)
        #expect(store.verify().isClean)
        #expect(store.entries().count == 3)
    }

    @Test func entriesListHeadersSizesAndTotals() throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        try store.store(key("s"), ["v": .tensor(Tensor(zeros: [100]))], info: info("static"))
        try store.store(key("f"), ["v": .number(1)], info: info("perframe", frame: 9))
        let list = store.entries()
        #expect(Set(list.map(\.key)) == [key("s"), key("f")])
        let f = try #require(list.first { $0.key == key("f") })
        #expect(f.info == info("perframe", frame: 9))
        #expect(f.size == Int64(try Data(contentsOf: URL(fileURLWithPath: store.path(for: key("f")))).count))
        #expect(store.totalBytes == list.reduce(0) { $0 + $1.size })
        #expect(abs(f.lastUsed.timeIntervalSinceNow) < 60)
        #expect(store.clear() == 2)
        #expect(store.entries().isEmpty && store.totalBytes == 0)
        #expect(store.load(key("s")) == nil && log.all.isEmpty)
    }

    @Test func gcKeepsTheMostRecentlyUsedWithinTheLimit() throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let now = Int64(Date().timeIntervalSince1970 * 1e9)
        for i in 0..<6 {
            try store.store(key("\(i)"), ["v": .tensor(Tensor(repeating: Float(i), shape: [256]))], info: info("n\(i)"))
            // Entry i was last used 60 - i minutes ago; then 0 and 3 are read now.
            POSIXFile.setModified(path: store.path(for: key("\(i)")), nanoseconds: now - Int64(60 - i) * 60_000_000_000)
        }
        _ = try #require(store.load(key("0")))
        _ = try #require(store.load(key("3")))
        let entrySize = store.entries()[0].size
        let before = store.totalBytes
        let result = store.gc(maxBytes: 2 * entrySize + entrySize / 2)
        #expect(result.removed == 4)
        #expect(result.freedBytes == before - store.totalBytes)
        #expect(Set(store.entries().map(\.key)) == [key("0"), key("3")])
        #expect(store.gc(maxBytes: 1 << 40).removed == 0, "nothing to do under the limit")
        #expect(store.gc(maxBytes: 0).removed == 2)
    }

    @Test func gcSweepsOldTemporaryFilesOfCrashedWriters() throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        try store.store(key("x"), ["v": .number(1)], info: info("x"))
        let shard = (store.path(for: key("x")) as NSString).deletingLastPathComponent
        let stale = shard + "/.tmp-crashed-1-abc", fresh = shard + "/.tmp-writing-2-def"
        try Data("partial".utf8).write(to: URL(fileURLWithPath: stale))
        try Data("partial".utf8).write(to: URL(fileURLWithPath: fresh))
        POSIXFile.setModified(path: stale, nanoseconds: Int64(Date().timeIntervalSince1970 - 7200) * 1_000_000_000)
        #expect(store.entries().count == 1, "temp files are not entries")
        _ = store.gc(maxBytes: 1 << 40)
        #expect(!FileManager.default.fileExists(atPath: stale))
        #expect(FileManager.default.fileExists(atPath: fresh), "a writer may still be busy with it")
        #expect(store.load(key("x")) == ["v": .number(1)])
    }

    @Test func concurrentWritersOfOneKeyLeaveAValidEntry() throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let k = key("contended")
        let n = 1 << 16  // 256 KiB per entry, so a torn write would be visible
        let failures = Mutex<[String]>([])
        // Separate store instances stand in for separate processes: nothing is shared in memory.
        DispatchQueue.concurrentPerform(iterations: 6) { worker in
            do {
                let mine = try CacheStore(directory: dir, onWarning: log.handler)
                for round in 0..<6 {
                    if worker % 3 == 2 {
                        // Readers see either nothing or one writer's complete value.
                        if let v = mine.load(k)?["v"]?.tensor, Set(v.scalars).count != 1 {
                            failures.withLock { $0.append("torn read in round \(round)") }
                        }
                    } else {
                        try mine.store(k, ["v": .tensor(Tensor(repeating: Float(worker), shape: [n]))],
                                       info: info("w\(worker)"))
                    }
                }
            } catch {
                failures.withLock { $0.append("worker \(worker): \(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        #expect(log.all.isEmpty, "no reader saw a corrupt entry: \(log.all)")
        let v = try #require(store.load(k)?["v"]?.tensor)
        #expect(v.count == n && Set(v.scalars).count == 1)
        #expect(store.verify().isClean)
        let shard = (store.path(for: k) as NSString).deletingLastPathComponent
        #expect(try FileManager.default.contentsOfDirectory(atPath: shard) == [k.hex], "no temp files left behind")
    }

    @Test func storeFailuresThrowSentencesNamingTheNode() throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let k = key("blocked")
        // A file where the shard folder should be makes the write fail.
        let shard = (store.path(for: k) as NSString).deletingLastPathComponent
        try Data().write(to: URL(fileURLWithPath: shard))
        do {
            try store.store(k, ["v": .number(1)], info: info("blocked", frame: 1))
            Issue.record("storing into a blocked folder succeeded")
        } catch let e as CacheError {
            #expect(e.code == .io)
            #expect(e.description.contains("node 'blocked' (TestNode), frame 1"), "\(e)")
        }
    }
}
