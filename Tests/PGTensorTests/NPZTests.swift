import Foundation
import Testing
@testable import PGTensor

private func sampleArrays() -> [(String, Tensor)] {
    [
        ("means", Tensor(shape: [4, 3], scalars: (0..<12).map { Float($0) * 0.5 - 3 })),
        ("opacity", Tensor(shape: [4], scalars: [0.1, -0.2, 7, 1e-8])),
        ("scalar", Tensor(scalar: 42)),
        ("empty", Tensor(zeros: [0, 3])),
        // Large and repetitive, so deflate has real work and output growth is exercised.
        ("big", Tensor(shape: [64, 1024], scalars: (0..<65536).map { Float($0 % 17) })),
    ]
}

@Test(arguments: [true, false])
func npzRoundTripKeepsNamesOrderAndValues(compressed: Bool) throws {
    let dir = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("a.npz")
    let arrays = sampleArrays()
    try NPZ.write(arrays, to: url, compressed: compressed)

    let ordered = try NPZ.readOrdered(url)
    #expect(ordered.map(\.name) == arrays.map(\.0))
    for ((name, expected), got) in zip(arrays, ordered) {
        #expect(got.tensor == expected, "array \(name)")
    }
    let byName = try NPZ.read(url)
    #expect(byName["means"] == arrays[0].1)

    let archive = try NPZArchive(url: url)
    #expect(archive.names == arrays.map(\.0))
    #expect(archive.contains("opacity") && !archive.contains("nope"))
    #expect(try archive.tensor("scalar").scalar == 42)
    do {
        _ = try archive.tensor("nope")
        Issue.record("a missing member was found")
    } catch let e as ArrayFileError {
        #expect(e.code == .missingMember)
        #expect(e.description.contains(url.path) && e.description.contains("nope.npy"))
    }
}

@Test func npzCompressedIsSmallerAndReproducible() throws {
    let a = try NPZ.data(sampleArrays(), compressed: true)
    let b = try NPZ.data(sampleArrays(), compressed: true)
    let stored = try NPZ.data(sampleArrays(), compressed: false)
    #expect(a == b, "same arrays give the same bytes (fixed timestamps)")
    #expect(a.count < stored.count / 4)
}

@Test func npzDetectsCorruptionByCRCAndNamesTheMember() throws {
    let arrays = [("first", Tensor(shape: [8], scalars: (0..<8).map(Float.init))),
                  ("second", Tensor(shape: [8], scalars: (0..<8).map { Float($0) * 2 }))]
    var bytes = try NPZ.data(arrays, compressed: false)
    // Flip one bit in the last float of "second" (14.0, a value "first" does not hold).
    let needle = withUnsafeBytes(of: Float(14).bitPattern.littleEndian) { Data($0) }
    let range = try #require(bytes.range(of: needle))
    bytes[range.lowerBound] ^= 0x01
    let archive = try NPZArchive(data: bytes, source: "/tmp/x.npz")
    #expect(try archive.tensor("first") == arrays[0].1, "the intact member still reads")
    do {
        _ = try archive.tensor("second")
        Issue.record("a bit flip went unnoticed")
    } catch let e as ArrayFileError {
        #expect(e.code == .checksumMismatch)
        #expect(e.description.contains("member 'second.npy' of /tmp/x.npz"))
    }

    // A deflated archive cut short fails cleanly as well.
    let deflated = try NPZ.data(arrays, compressed: true)
    #expect(throws: ArrayFileError.self) { try NPZArchive(data: deflated.prefix(deflated.count - 10)) }
    #expect(throws: ArrayFileError.self) { try NPZArchive(data: Data("PK nonsense".utf8)) }
}

@Test func npzRejectsDuplicateNames() {
    #expect(throws: ArrayFileError.self) {
        try NPZ.data([("a", Tensor(scalar: 1)), ("a", Tensor(scalar: 2))])
    }
}

// MARK: - Cross-checks against NumPy itself (skipped where python3 + numpy are missing)

private let numpyAvailable: Bool = (try? runPython("import numpy")) != nil

/// Runs a python3 snippet, returning stdout; throws when it exits non-zero.
@discardableResult
private func runPython(_ script: String, arguments: [String] = []) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", script] + arguments
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        struct PythonFailed: Error, CustomStringConvertible { var description: String }
        throw PythonFailed(description: String(decoding: stderr, as: UTF8.self))
    }
    return String(decoding: stdout, as: UTF8.self)
}

@Test(.enabled(if: numpyAvailable, "python3 with numpy is not installed"))
func numpyLoadsWhatSwiftWrites() throws {
    let dir = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let t = Tensor(shape: [2, 3, 4], scalars: (0..<24).map { Float($0) * 0.5 - 3 })
    try t.writeNPY(to: dir.appendingPathComponent("t.npy"))
    try NPZ.write(sampleArrays(), to: dir.appendingPathComponent("c.npz"), compressed: true)
    try NPZ.write(sampleArrays(), to: dir.appendingPathComponent("s.npz"), compressed: false)
    let script = """
    import sys, numpy as np
    d = sys.argv[1]
    t = np.load(d + '/t.npy')
    assert t.dtype == np.float32 and t.shape == (2, 3, 4), (t.dtype, t.shape)
    assert np.array_equal(t, (np.arange(24, dtype=np.float32) * 0.5 - 3).reshape(2, 3, 4))
    for name in ('c.npz', 's.npz'):
        z = np.load(d + '/' + name)
        assert list(z.keys()) == ['means', 'opacity', 'scalar', 'empty', 'big'], list(z.keys())
        assert np.array_equal(z['means'], (np.arange(12, dtype=np.float32) * 0.5 - 3).reshape(4, 3))
        assert z['scalar'].shape == () and z['scalar'] == 42
        assert z['empty'].shape == (0, 3)
        assert np.array_equal(z['big'], (np.arange(65536) % 17).astype(np.float32).reshape(64, 1024))
        assert np.array_equal(z['opacity'], np.array([0.1, -0.2, 7, 1e-8], dtype=np.float32))
    print('ok')
    """
    #expect(try runPython(script, arguments: [dir.path]).contains("ok"))
}

@Test(.enabled(if: numpyAvailable, "python3 with numpy is not installed"))
func swiftReadsWhatNumpyWrites() throws {
    let dir = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let script = """
    import sys, numpy as np
    d = sys.argv[1]
    a = dict(
        f32=(np.arange(12, dtype=np.float32) / 4).reshape(3, 4),
        f64=np.array([[1.5, -2.0], [3.25, 1e6]]),
        i32=np.array([-5, 0, 7], dtype=np.int32),
        i64=np.arange(6, dtype=np.int64).reshape(2, 3) - 2,
        u8=np.array([0, 1, 255], dtype=np.uint8),
        b=np.array([True, False, True]),
        scalar=np.float32(3.5),
        faces=np.array([[0, 1, 2], [2, 3, 0]], dtype=np.uint32),
    )
    np.savez(d + '/plain.npz', **a)
    np.savez_compressed(d + '/packed.npz', **a)
    np.save(d + '/one.npy', a['f64'])
    np.save(d + '/fortran.npy', np.asfortranarray(a['f32']))
    """
    try runPython(script, arguments: [dir.path])
    for name in ["plain.npz", "packed.npz"] {
        let z = try NPZArchive(url: dir.appendingPathComponent(name))
        #expect(z.names == ["f32", "f64", "i32", "i64", "u8", "b", "scalar", "faces"], "\(name)")
        #expect(try z.tensor("f32") == Tensor(shape: [3, 4], scalars: (0..<12).map { Float($0) / 4 }))
        #expect(try z.tensor("f64") == Tensor(shape: [2, 2], scalars: [1.5, -2, 3.25, 1e6]))
        #expect(try z.tensor("i32").scalars == [-5, 0, 7])
        #expect(try z.tensor("i64") == Tensor(shape: [2, 3], scalars: [-2, -1, 0, 1, 2, 3]))
        #expect(try z.tensor("u8").scalars == [0, 1, 255])
        #expect(try z.tensor("b").scalars == [1, 0, 1])
        #expect(try z.tensor("scalar") == Tensor(scalar: 3.5))
        #expect(try z.tensor("faces").scalars == [0, 1, 2, 2, 3, 0])
    }
    #expect(try Tensor(npyFile: dir.appendingPathComponent("one.npy")).scalars == [1.5, -2, 3.25, 1e6])
    #expect(throws: ArrayFileError.self) { try Tensor(npyFile: dir.appendingPathComponent("fortran.npy")) }
}

/// `NPZ.write` streams each member to a temporary file and renames it: the file holds exactly
/// the bytes `NPZ.data` builds in memory, nothing is left beside it, and a folder that does not
/// exist is an error naming the file.
@Test func writtenArchiveIsTheInMemoryArchive() throws {
    let dir = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    for compressed in [false, true] {
        let url = dir.appendingPathComponent("w.npz")
        try NPZ.write(sampleArrays(), to: url, compressed: compressed)
        #expect(try Data(contentsOf: url) == NPZ.data(sampleArrays(), compressed: compressed))
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["w.npz"])
    let nowhere = dir.appendingPathComponent("no/such/folder/x.npz")
    do {
        try NPZ.write(sampleArrays(), to: nowhere)
        Issue.record("wrote into a folder that does not exist")
    } catch let e as ArrayFileError {
        #expect(e.code == .io && e.file == nowhere.path, "\(e)")
    }
}
