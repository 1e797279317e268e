import Foundation

/// An opened `.npz` archive: the member list is read up front, arrays are decoded on demand.
///
/// Model files (SMPL-X, FLAME) often carry members pgflow cannot convert (strings, pickled
/// objects); opening the archive and asking only for the arrays a loader needs keeps those
/// from failing the whole load.
public struct NPZArchive: Sendable {
    /// Where the archive came from, for error messages (a path, or a caller-chosen label).
    public let source: String
    /// Array names in archive order, without the `.npy` suffix (as `numpy.load` shows them).
    public let names: [String]
    private let data: Data
    private let members: [String: ZipMember]

    public init(url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw ArrayFileError(.io, "it cannot be read (\(error.localizedDescription))", file: url.path)
        }
        try self.init(data: data, source: url.path)
    }

    public init(data: Data, source: String = "in-memory .npz data") throws {
        self.source = source
        self.data = data
        let reader: ZipReader
        do { reader = try ZipReader(data) } catch let e as ArrayFileError { throw e.at(file: source) }
        var names: [String] = []
        var members: [String: ZipMember] = [:]
        // numpy.savez names every member `<key>.npy`; other members (directories, stray files)
        // are not arrays and are left out, as NumPy's own loader leaves them out of its keys.
        for m in reader.members where m.name.hasSuffix(".npy") {
            let key = String(m.name.dropLast(4))
            if members[key] == nil { names.append(key) }
            members[key] = m
        }
        self.names = names
        self.members = members
    }

    public func contains(_ name: String) -> Bool { members[name] != nil }

    /// Decodes one array (converted to Float32, see `Tensor(npy:)`).
    public func tensor(_ name: String) throws -> Tensor {
        guard let m = members[name] else {
            throw ArrayFileError(.missingMember,
                                 "the archive has no array named '\(name)' (it has: \(names.joined(separator: ", ")))",
                                 file: source, member: name + ".npy")
        }
        do {
            let bytes = try ZipReader(trusted: data, members: []).contents(of: m)
            return try Tensor(npy: bytes)
        } catch let e as ArrayFileError {
            throw e.at(file: source, member: m.name)
        }
    }

    /// Every array, in archive order.
    public func tensors() throws -> [(name: String, tensor: Tensor)] {
        try names.map { ($0, try tensor($0)) }
    }
}

extension ZipReader {
    /// A reader over data whose directory was already parsed, to extract single members.
    init(trusted data: Data, members: [ZipMember]) {
        self.data = data
        self.members = members
    }
}

/// NumPy `.npz` archives: a zip of `.npy` members, one per named array.
public enum NPZ {
    /// All arrays by name. Use `readOrdered` for archive order, `NPZArchive` for a subset.
    public static func read(_ url: URL) throws -> [String: Tensor] {
        Dictionary(try readOrdered(url).map { ($0.name, $0.tensor) }, uniquingKeysWith: { _, last in last })
    }

    /// All arrays in the order they are stored.
    public static func readOrdered(_ url: URL) throws -> [(name: String, tensor: Tensor)] {
        try NPZArchive(url: url).tensors()
    }

    /// The archive bytes for these arrays, each written as float32 `<name>.npy`.
    /// Deflated like `numpy.savez_compressed` by default; `compressed: false` matches `numpy.savez`.
    public static func data(_ arrays: [(String, Tensor)], compressed: Bool = true) throws -> Data {
        final class Bytes { var data = Data() }
        let out = Bytes()
        try archive(arrays, compressed: compressed) { out.data.append(contentsOf: $0) }
        return out.data
    }

    /// Writes an `.npz` atomically (a reader never sees a partial archive), through a
    /// `StagedFile`: stored members go from each tensor's storage to the file, with no archive
    /// held in memory (17 MB of gradients for `pgflow grad` on a 100k-Gaussian cloud).
    public static func write(_ arrays: [(String, Tensor)], to url: URL, compressed: Bool = true) throws {
        do {
            try StagedFile.replace(url.path, durable: false) { file in
                try archive(arrays, compressed: compressed) { try file.write($0) }
            }
        } catch let e as ArrayFileError {
            throw e.at(file: url.path)
        } catch let f as FileFailure {
            throw ArrayFileError(.io, "it cannot be written (\(f.reason))", file: url.path)
        }
    }

    /// Each array as a float32 `<name>.npy` member, in order, to `emit`.
    private static func archive(_ arrays: [(String, Tensor)], compressed: Bool,
                                emit: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        var zip = ZipWriter(emit: emit)
        var seen = Set<String>()
        for (name, tensor) in arrays {
            guard seen.insert(name).inserted else {
                throw ArrayFileError(.badArchive, "the array name '\(name)' is used twice", member: name + ".npy")
            }
            #if _endian(little)
            if !compressed {
                let header = NPYHeader.encode(shape: tensor.shape)
                try header.withUnsafeBytes { h in
                    try tensor.withUnsafeBufferPointer { try zip.addStored(name: name + ".npy", parts: [h, UnsafeRawBufferPointer($0)]) }
                }
                continue
            }
            #endif
            try zip.add(name: name + ".npy", contents: tensor.npyData(), compressed: compressed)
        }
        try zip.finish()
    }
}
