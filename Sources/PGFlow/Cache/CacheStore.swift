import Crypto
import Foundation
import PGTensor

/// What a cache entry records about where it came from, kept in the entry's header so
/// `pgflow cache ls` can list entries without decoding their payloads.
public struct EntryInfo: Sendable, Equatable, Codable {
    /// The node id in the graph (or the stage name for stage checkpoints).
    public var nodeID: String
    /// The node type (or e.g. "stage" for stage checkpoints).
    public var nodeType: String
    /// The frame index of a per-frame result; nil for static results.
    public var frame: Int?
    /// The graph's `name`.
    public var graph: String
    public var created: Date

    public init(nodeID: String, nodeType: String, frame: Int? = nil, graph: String, created: Date = Date()) {
        self.nodeID = nodeID
        self.nodeType = nodeType
        self.frame = frame
        self.graph = graph
        self.created = created
    }

    /// "node 'splat' (Splat), frame 12" — how messages name the entry's origin.
    public var origin: String {
        "node '\(nodeID)' (\(nodeType))" + (frame.map { ", frame \($0)" } ?? "") + (graph.isEmpty ? "" : " of graph '\(graph)'")
    }
}

/// One entry as `entries()` lists it.
public struct CacheEntrySummary: Sendable, Equatable {
    public var key: CacheKey
    /// nil when the header cannot be read (`verify()` says why).
    public var info: EntryInfo?
    /// Bytes on disk.
    public var size: Int64
    /// When the entry was last written or read (its mtime).
    public var lastUsed: Date
}

/// What `verify()` found.
public struct VerifyReport: Sendable {
    public struct Problem: Sendable {
        /// nil for a file whose name is not a key (a stray file in the store).
        public var key: CacheKey?
        public var path: String
        public var reason: String
        public var info: EntryInfo?
    }
    /// Entries checked.
    public var checked: Int = 0
    public var corrupt: [Problem] = []
    /// How many corrupt entries were removed (only with `removeCorrupt: true`).
    public var removed: Int = 0
    public var isClean: Bool { corrupt.isEmpty }
}

/// The content-addressed result store on disk (docs/DESIGN.md §3 "Caching").
///
/// Layout: `<dir>/objects/<first 2 hex digits>/<key>`, one file per entry:
///
/// | bytes | field |
/// | --- | --- |
/// | 4 | magic `PGFC` |
/// | 4 | format version (u32 LE), covering this layout and `ValueCodec`'s |
/// | 4 | header length H (u32 LE) |
/// | H | header: JSON with the key and the `EntryInfo` |
/// | 8 | payload length P (u64 LE) |
/// | 32 | SHA-256 of header bytes followed by payload bytes |
/// | P | payload: the outputs, `ValueCodec.encode(outputs:)`; from format 2 behind one byte: `0` and
/// |   | the encoding as is, or `1`, the encoding's length (u64 LE) and the encoding raw-deflated |
///
/// Large payloads are deflated (zlib level 1) when that saves at least a tenth: decoded video
/// frames shrink about 8× (Float32 copies of 8-bit samples over flat backgrounds), renders little.
/// Format 1 entries (no encoding byte) are still read.
///
/// Reads never throw: a missing entry is a miss; an entry that fails any check (length, magic,
/// version, checksum, key, decoding) is removed, reported through `onWarning` and also a miss,
/// so a damaged cache costs recomputation, never a crash or a wrong value. Writes are atomic
/// (unique temp file, fsync, rename), so concurrent processes writing the same key both succeed
/// and leave one complete entry. Reads touch the mtime, which `gc` uses as "last used".
public final class CacheStore: Sendable {
    public static let formatVersion: UInt32 = 2
    /// Payloads at least this large are tried compressed.
    static let compressFrom = 64 << 10
    /// Payloads of at least four spans are first tried on three spans (start, middle, end).
    static let sampleSpan = 64 << 10
    private static let magic = Data("PGFC".utf8)
    /// Fixed bytes around the header: magic, version, header length, payload length, digest.
    private static let overhead = 4 + 4 + 4 + 8 + 32
    /// Leftover temp files of crashed writers older than this are swept by `gc` and `clear`.
    private static let staleTemporaryAge: TimeInterval = 3600

    public let directory: URL
    /// Memoised content hashes of input files, kept in the same directory.
    public let fileDigests: FileDigest
    private let objects: String
    private let onWarning: @Sendable (String) -> Void

    /// The default location, `.pgflow/cache` beside the graph file.
    public static func defaultDirectory(forGraphAt graphFile: URL) -> URL {
        graphFile.deletingLastPathComponent().appendingPathComponent(".pgflow/cache", isDirectory: true)
    }

    /// Opens (creating if needed) the store at `directory`. `onWarning` receives one sentence per
    /// problem found and handled (a corrupt entry removed, an unreadable file); the default
    /// prints it to standard error.
    /// - Parameter create: make the folder when it is missing; false for commands that only look
    ///   (`cache ls`), which then see an empty store and leave the disk alone.
    public init(directory: URL, create: Bool = true,
                onWarning: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data("warning: \($0)\n".utf8)) }) throws {
        self.directory = directory.standardizedFileURL
        self.onWarning = onWarning
        self.objects = self.directory.appendingPathComponent("objects", isDirectory: true).path
        self.fileDigests = FileDigest(directory: self.directory, onWarning: onWarning)
        guard create else { return }
        do { try POSIXFile.createFolders(objects) } catch let e as CacheError {
            throw CacheError(.unusable, "Cannot use \(self.directory.path) as the cache: \(e.message).", path: objects)
        }
        // The standard tag (bford.info/cachedir) tells backup tools the folder can be skipped.
        let tag = self.directory.appendingPathComponent("CACHEDIR.TAG").path
        if !FileManager.default.fileExists(atPath: tag) {
            try? POSIXFile.writeAtomically([Data("""
                Signature: 8a477f597d28d172789f06886806bc55
                # This file is a cache directory tag created by pgflow; its results can be recomputed.

                """.utf8)], to: tag)
        }
    }

    /// Where an entry lives.
    public func path(for key: CacheKey) -> String {
        "\(objects)/\(key.hex.prefix(2))/\(key.hex)"
    }

    // MARK: - Reading and writing

    /// Whether an entry exists (without checking it), e.g. for `dot --status`.
    public func contains(_ key: CacheKey) -> Bool {
        FileStatus(path: path(for: key))?.isRegularFile == true
    }

    /// The outputs stored under `key`, or nil on a miss (absent, or corrupt and now removed).
    public func load(_ key: CacheKey) -> [String: Value]? {
        let path = path(for: key)
        let read: (data: Data, status: FileStatus)?
        do { read = try POSIXFile.read(path: path) } catch {
            onWarning("Cache entry \(key.short) cannot be read (\(error)); treating it as a miss.")
            return nil
        }
        guard let (data, status) = read else { return nil }
        let outputs: [String: Value]
        switch Self.check(data, expectedKey: key) {
        case .failure(let problem):
            discard(key: key, path: path, status: status, problem: problem)
            return nil
        case .success(let entry):
            do {
                outputs = try Self.decodePayload(data, entry)
            } catch {
                discard(key: key, path: path, status: status,
                        problem: EntryProblem(reason: "its payload cannot be decoded (\(error))", info: entry.info))
                return nil
            }
        }
        // Touching marks the entry as recently used for gc; a failure only makes gc less precise.
        POSIXFile.setModified(path: path)
        return outputs
    }

    /// The header of an entry (without reading or checking its payload).
    public func info(for key: CacheKey) -> EntryInfo? {
        Self.readHeader(path: path(for: key)).flatMap { $0.key == key ? $0.info : nil }
    }

    /// Stores `outputs` under `key`, replacing any previous entry, atomically.
    public func store(_ key: CacheKey, _ outputs: [String: Value], info: EntryInfo) throws {
        let payload = Self.storedPayload(ValueCodec.encode(outputs: outputs))
        let header = try Self.encodeHeader(key: key, info: info)
        let digest = Self.checksum(header, payload)

        var prefix = Self.magic
        prefix.reserveCapacity(Self.overhead + header.count)
        withUnsafeBytes(of: Self.formatVersion.littleEndian) { prefix.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(header.count).littleEndian) { prefix.append(contentsOf: $0) }
        prefix.append(header)
        withUnsafeBytes(of: UInt64(payload.count).littleEndian) { prefix.append(contentsOf: $0) }
        prefix.append(contentsOf: digest)

        let path = path(for: key)
        let shard = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: shard, withIntermediateDirectories: true)
        } catch {
            throw CacheError(.io, "Cannot create the cache folder \(shard) for \(info.origin): \(error.localizedDescription).",
                             path: shard)
        }
        do {
            try POSIXFile.writeAtomically([prefix, payload], to: path)
        } catch let e as CacheError {
            throw CacheError(.io, "Cannot store the result of \(info.origin) in the cache: \(e.message)", path: path)
        }
    }

    // MARK: - Management

    /// Every entry with its header and size, most recently used first.
    public func entries() -> [CacheEntrySummary] {
        var result: [CacheEntrySummary] = []
        for (key, path, status) in entryFiles() {
            let header = Self.readHeader(path: path)
            result.append(CacheEntrySummary(key: key, info: header?.key == key ? header?.info : nil,
                                            size: status.size, lastUsed: status.modified))
        }
        return result.sorted { ($0.lastUsed, $1.key) > ($1.lastUsed, $0.key) }
    }

    /// Bytes used by all entries.
    public var totalBytes: Int64 { entryFiles().reduce(0) { $0 + $1.status.size } }

    /// Checks every entry completely (checksum and decoding). With `removeCorrupt`, deletes the
    /// corrupt ones; stray files that are not entries are reported but never deleted here.
    public func verify(removeCorrupt: Bool = false) -> VerifyReport {
        var report = VerifyReport()
        for shard in POSIXFile.list(objects).sorted() {
            for name in POSIXFile.list(objects + "/" + shard).sorted() where !name.hasPrefix(".") {
                let path = "\(objects)/\(shard)/\(name)"
                guard let key = CacheKey(hex: name), key.hex.prefix(2) == shard else {
                    report.corrupt.append(.init(key: nil, path: path, reason: "it is not a cache entry (unexpected name)"))
                    continue
                }
                report.checked += 1
                let read: (data: Data, status: FileStatus)?
                do { read = try POSIXFile.read(path: path) } catch {
                    report.corrupt.append(.init(key: key, path: path, reason: "it cannot be read (\(error))"))
                    continue
                }
                guard let (data, status) = read else { report.checked -= 1; continue }  // removed meanwhile
                var problem: EntryProblem?
                switch Self.check(data, expectedKey: key) {
                case .failure(let p): problem = p
                case .success(let entry):
                    do {
                        _ = try Self.decodePayload(data, entry)
                    } catch {
                        problem = EntryProblem(reason: "its payload cannot be decoded (\(error))", info: entry.info)
                    }
                }
                guard let problem else { continue }
                report.corrupt.append(.init(key: key, path: path, reason: problem.reason, info: problem.info))
                if removeCorrupt, POSIXFile.unlink(path: path, ifStill: status) { report.removed += 1 }
            }
        }
        return report
    }

    /// Removes least recently used entries until the store holds at most `maxBytes`
    /// (and sweeps temp files left by crashed writers).
    @discardableResult
    public func gc(maxBytes: Int64) -> (removed: Int, freedBytes: Int64) {
        var removed = 0
        var freed: Int64 = 0
        let (swept, sweptBytes) = sweepTemporaries(olderThan: Self.staleTemporaryAge)
        removed += swept
        freed += sweptBytes
        var files = entryFiles()
        var total = files.reduce(0) { $0 + $1.status.size }
        guard total > maxBytes else { return (removed, freed) }
        files.sort { ($0.status.modifiedNanoseconds, $0.key) < ($1.status.modifiedNanoseconds, $1.key) }
        for file in files where total > maxBytes {
            if POSIXFile.unlink(path: file.path, ifStill: file.status) {
                removed += 1
                freed += file.status.size
            }
            // Counted as gone either way: if another process replaced it, that one is new.
            total -= file.status.size
        }
        return (removed, freed)
    }

    /// Removes every entry and the file-digest memo. Folders are kept so that a process writing
    /// at the same moment does not fail. Returns how many entries were removed.
    @discardableResult
    public func clear() -> Int {
        var removed = 0
        for file in entryFiles() where POSIXFile.unlink(path: file.path, ifStill: nil) { removed += 1 }
        sweepTemporaries(olderThan: 0)
        fileDigests.reset()
        return removed
    }

    // MARK: - Internals

    /// Every file that is named like an entry, with its metadata.
    private func entryFiles() -> [(key: CacheKey, path: String, status: FileStatus)] {
        var files: [(CacheKey, String, FileStatus)] = []
        for shard in POSIXFile.list(objects) where shard.utf8.count == 2 {
            for name in POSIXFile.list(objects + "/" + shard) {
                guard let key = CacheKey(hex: name), key.hex.hasPrefix(shard) else { continue }
                let path = "\(objects)/\(shard)/\(name)"
                if let status = FileStatus(path: path), status.isRegularFile { files.append((key, path, status)) }
            }
        }
        return files
    }

    @discardableResult
    private func sweepTemporaries(olderThan age: TimeInterval) -> (Int, Int64) {
        let cutoff = Int64((Date().timeIntervalSince1970 - age) * 1e9)
        var count = 0
        var bytes: Int64 = 0
        for shard in POSIXFile.list(objects) {
            for name in POSIXFile.list(objects + "/" + shard) where name.hasPrefix(".tmp-") {
                let path = "\(objects)/\(shard)/\(name)"
                guard let status = FileStatus(path: path), status.modifiedNanoseconds <= cutoff else { continue }
                if POSIXFile.unlink(path: path, ifStill: status) { count += 1; bytes += status.size }
            }
        }
        return (count, bytes)
    }

    private func discard(key: CacheKey, path: String, status: FileStatus, problem: EntryProblem) {
        let origin = problem.info.map { " (\($0.origin))" } ?? ""
        let removed = POSIXFile.unlink(path: path, ifStill: status)
        onWarning("Cache entry \(key.short)\(origin) at \(path) is corrupt: \(problem.reason); "
                  + (removed ? "removed it, and the result will be recomputed." : "the result will be recomputed."))
    }

    struct EntryProblem: Error {
        var reason: String
        var info: EntryInfo?
    }

    /// The header as stored: the key guards against an entry renamed or copied to the wrong place.
    private struct Header: Codable {
        var key: CacheKey
        var node: String
        var type: String
        var frame: Int?
        var graph: String
        var created: Double

        var info: EntryInfo {
            EntryInfo(nodeID: node, nodeType: type, frame: frame, graph: graph,
                      created: Date(timeIntervalSince1970: created))
        }
    }

    static func encodeHeader(key: CacheKey, info: EntryInfo) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(Header(key: key, node: info.nodeID, type: info.nodeType, frame: info.frame,
                                         graph: info.graph, created: info.created.timeIntervalSince1970))
    }

    private static func decodeHeader(_ data: Data) -> (key: CacheKey, info: EntryInfo)? {
        guard let h = try? JSONDecoder().decode(Header.self, from: data) else { return nil }
        return (h.key, h.info)
    }

    private static func u32(_ d: Data, _ at: Int) -> Int {
        d.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
    }
    private static func u64(_ d: Data, _ at: Int) -> UInt64 {
        d.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
    }

    /// Reads just the header of an entry file (for listings); nil if it cannot be read or parsed.
    private static func readHeader(path: String) -> (key: CacheKey, info: EntryInfo)? {
        guard let start = POSIXFile.readPrefix(path: path, count: 4096), start.count >= 12,
              start.prefix(4) == magic, u32(start, 4) == Int(formatVersion) else { return nil }
        let length = u32(start, 8)
        guard length <= 1 << 20 else { return nil }
        let bytes = 12 + length <= start.count ? start : (POSIXFile.readPrefix(path: path, count: 12 + length) ?? Data())
        guard bytes.count >= 12 + length else { return nil }
        return decodeHeader(bytes.subdata(in: 12..<(12 + length)))
    }

    /// Checks everything but the payload's decoding; returns the header and the payload's byte
    /// offsets (offsets from the first byte, whatever `d.startIndex` is).
    /// What an entry records to check itself: SHA-256 of the header bytes, then the payload's.
    static func checksum(_ header: Data, _ payload: Data) -> Data {
        var hasher = SHA256()
        hasher.update(data: header)
        hasher.update(data: payload)
        return Data(hasher.finalize())
    }

    /// The payload as stored: the encoding behind its encoding byte, deflated when that pays.
    /// Large payloads are judged by a sample first: trained floats (a stage's parameters and Adam
    /// moments) shrink by a few percent at ~100 MB/s, which was most of a short stage's end.
    static func storedPayload(_ encoded: Data) -> Data {
        if encoded.count >= 4 * sampleSpan {
            let b = encoded.startIndex, n = encoded.count
            var sample = Data()
            for at in [0, n / 2, n - sampleSpan] { sample.append(encoded[(b + at)..<(b + at + sampleSpan)]) }
            guard let packed = try? RawDeflate.compress(sample, level: 1), packed.count < sample.count - sample.count / 10 else {
                return Data([0]) + encoded
            }
        }
        if encoded.count >= compressFrom, let packed = try? RawDeflate.compress(encoded, level: 1),
           packed.count + 9 < encoded.count - encoded.count / 10 {
            var out = Data([1])
            withUnsafeBytes(of: UInt64(encoded.count).littleEndian) { out.append(contentsOf: $0) }
            out.append(packed)
            return out
        }
        return Data([0]) + encoded
    }

    /// Decodes a checked entry's payload (format 1: the encoding itself; 2: behind its byte).
    static func decodePayload(_ data: Data, _ entry: (info: EntryInfo, payload: Range<Int>, version: Int)) throws -> [String: Value] {
        let base = data.startIndex
        let range = (base + entry.payload.lowerBound)..<(base + entry.payload.upperBound)
        if entry.version == 1 {
            return try data.withUnsafeBytes { try ValueCodec.decode(outputs: UnsafeRawBufferPointer(rebasing: $0[entry.payload])) }
        }
        guard let kind = range.isEmpty ? nil : data[range.lowerBound] else { throw CacheError(.malformed, "the payload is empty") }
        switch kind {
        case 0:
            return try data.withUnsafeBytes {
                try ValueCodec.decode(outputs: UnsafeRawBufferPointer(rebasing: $0[(entry.payload.lowerBound + 1)..<entry.payload.upperBound]))
            }
        case 1:
            guard range.count >= 9 else { throw CacheError(.malformed, "the compressed payload is truncated") }
            let size = Int(u64(Data(data[(range.lowerBound + 1)..<(range.lowerBound + 9)]), 0))
            guard size <= 1 << 40 else { throw CacheError(.malformed, "the compressed payload claims \(size) bytes") }
            let raw = try RawDeflate.decompress(Data(data[(range.lowerBound + 9)..<range.upperBound]), size: size)
            return try raw.withUnsafeBytes { try ValueCodec.decode(outputs: $0) }
        default:
            throw CacheError(.malformed, "unknown payload encoding \(kind)")
        }
    }

    static func check(_ d: Data, expectedKey: CacheKey) -> Result<(info: EntryInfo, payload: Range<Int>, version: Int), EntryProblem> {
        let d = d.startIndex == 0 ? d : Data(d)
        guard d.count >= overhead else {
            return .failure(EntryProblem(reason: "it is truncated (\(d.count) bytes, shorter than any entry)"))
        }
        guard d.prefix(4) == magic else { return .failure(EntryProblem(reason: "it does not start with the PGFC magic")) }
        let version = u32(d, 4)
        guard version == Int(formatVersion) || version == 1 else {
            return .failure(EntryProblem(reason: "it was written in cache format \(version), this pgflow reads \(formatVersion)"))
        }
        let headerLength = u32(d, 8)
        guard 12 + headerLength + 40 <= d.count else {
            return .failure(EntryProblem(reason: "it is truncated (the header runs past the end)"))
        }
        let headerRange = 12..<(12 + headerLength)
        // Parsed before the checksum is checked, only so that warnings can name the entry's
        // node; nothing else trusts it until the checksum matches.
        let parsed = decodeHeader(d.subdata(in: headerRange))
        let payloadLength = u64(d, 12 + headerLength)
        let payloadStart = 12 + headerLength + 40
        let available = UInt64(d.count - payloadStart)
        guard payloadLength == available else {
            return .failure(EntryProblem(reason: payloadLength > available
                ? "it is truncated (\(available) of \(payloadLength) payload bytes present)"
                : "it has \(available - payloadLength) bytes beyond its payload", info: parsed?.info))
        }
        let payloadRange = payloadStart..<d.count
        let recorded = d.subdata(in: (12 + headerLength + 8)..<payloadStart)
        var hasher = SHA256()
        hasher.update(data: d[headerRange])
        hasher.update(data: d[payloadRange])
        guard Data(hasher.finalize()) == recorded else {
            return .failure(EntryProblem(reason: "its SHA-256 checksum does not match its contents", info: parsed?.info))
        }
        guard let header = parsed else {
            return .failure(EntryProblem(reason: "its header cannot be parsed"))
        }
        guard header.key == expectedKey else {
            return .failure(EntryProblem(reason: "it holds the entry for key \(header.key.short)", info: header.info))
        }
        return .success((header.info, payloadRange, version))
    }
}
