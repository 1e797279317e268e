import Foundation
import Testing
@testable import PGTensor

/// A fresh temporary directory per test, removed by the caller's `defer`.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("pgtensor-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Hand-built `.npy` bytes with any header, to feed the reader dtypes pgflow never writes.
func npyBytes(descr: String, shape: String, fortran: Bool = false, data: [UInt8], version: UInt8 = 1) -> Data {
    var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
    let prefix = version == 1 ? 10 : 12
    while (prefix + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var out = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0])
    let n = header.utf8.count
    if version == 1 {
        out.append(contentsOf: [UInt8(n & 0xFF), UInt8(n >> 8)])
    } else {
        out.append(contentsOf: [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), 0, 0])
    }
    out.append(contentsOf: Array(header.utf8))
    out.append(contentsOf: data)
    return out
}

func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}

/// Bitwise comparison, so NaN payloads and signed zeros count.
func sameBits(_ a: Tensor, _ b: Tensor) -> Bool {
    a.shape == b.shape && zip(a.scalars, b.scalars).allSatisfy { $0.bitPattern == $1.bitPattern }
}

@Test func npyRoundTripKeepsShapeAndEveryBit() throws {
    let shapes: [[Int]] = [[], [0], [5], [2, 3, 4], [1, 1, 1, 1, 2], [3, 0, 2]]
    for shape in shapes {
        let n = shape.reduce(1, *)
        var values = (0..<n).map { Float($0) * 0.37 - 2 }
        if n >= 4 { values[0] = .nan; values[1] = -0.0; values[2] = .infinity; values[3] = .leastNonzeroMagnitude }
        let t = Tensor(shape: shape, scalars: values)
        let bytes = t.npyData()
        #expect((bytes.count - n * 4) % 64 == 0, "data starts 64-byte aligned for shape \(shape)")
        let back = try Tensor(npy: bytes)
        #expect(sameBits(back, t), "round trip of shape \(shape)")
    }
}

@Test func npyHeaderMatchesNumPysSpelling() throws {
    func headerText(_ bytes: Data) -> String {
        let length = Int(bytes[8]) | Int(bytes[9]) << 8
        return String(decoding: bytes[10..<(10 + length)], as: UTF8.self)
    }
    let header = headerText(Tensor(zeros: [7]).npyData())
    #expect(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }"))
    #expect(header.hasSuffix(" \n"))
    #expect((10 + header.utf8.count) % 64 == 0)
    #expect(headerText(Tensor(scalar: 1).npyData()).contains("'shape': (), }"))
    #expect(headerText(Tensor(zeros: [2, 3]).npyData()).contains("'shape': (2, 3), }"))
}

@Test func npyReadsOtherDTypesAsFloat32() throws {
    let f8 = npyBytes(descr: "<f8", shape: "(3,)", data: littleEndianBytes([1.5, -2.25, 1e10].map { $0.bitPattern }))
    #expect(try Tensor(npy: f8) == Tensor(shape: [3], scalars: [1.5, -2.25, 1e10]))

    let i4 = npyBytes(descr: "<i4", shape: "(2, 2)", data: littleEndianBytes([Int32(-1), 2, -3, 400]))
    #expect(try Tensor(npy: i4) == Tensor(shape: [2, 2], scalars: [-1, 2, -3, 400]))

    let i8 = npyBytes(descr: "<i8", shape: "(2,)", data: littleEndianBytes([Int64(-7), 1 << 40]))
    #expect(try Tensor(npy: i8).scalars == [-7, Float(1 << 40)])

    let u1 = npyBytes(descr: "|u1", shape: "(3,)", data: [0, 128, 255])
    #expect(try Tensor(npy: u1).scalars == [0, 128, 255])

    let b1 = npyBytes(descr: "|b1", shape: "(4,)", data: [0, 1, 1, 0])
    #expect(try Tensor(npy: b1).scalars == [0, 1, 1, 0])

    // Big-endian float32, as written by `astype('>f4')`.
    let be = npyBytes(descr: ">f4", shape: "(2,)", data: [Float(3.5), -1].flatMap { v in
        withUnsafeBytes(of: v.bitPattern.bigEndian) { Array($0) }
    })
    #expect(try Tensor(npy: be).scalars == [3.5, -1])

    // float16: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF, smallest subnormal = 0x0001.
    let f2 = npyBytes(descr: "<f2", shape: "(4,)", data: littleEndianBytes([UInt16(0x3C00), 0xC000, 0x7BFF, 0x0001]))
    #expect(try Tensor(npy: f2).scalars == [1, -2, 65504, 0x1p-24])

    // Version 2.0 header (4-byte length), as NumPy writes for huge headers.
    let v2 = npyBytes(descr: "<f4", shape: "(1,)", data: littleEndianBytes([Float(9).bitPattern]), version: 2)
    #expect(try Tensor(npy: v2).scalars == [9])
}

@Test func npyRejectsWhatItCannotConvertWithClearErrors() throws {
    func failure(_ data: Data) -> ArrayFileError? {
        do { _ = try Tensor(npy: data); return nil } catch let e as ArrayFileError { return e } catch { return nil }
    }
    let fortran = failure(npyBytes(descr: "<f4", shape: "(2, 2)", fortran: true, data: Array(repeating: 0, count: 16)))
    #expect(fortran?.code == .fortranOrder)
    #expect(fortran?.description.contains("Fortran order") == true)

    #expect(failure(npyBytes(descr: "|O", shape: "(1,)", data: Array(repeating: 0, count: 8)))?.code == .unsupportedDType)
    #expect(failure(npyBytes(descr: "<U5", shape: "(1,)", data: Array(repeating: 0, count: 20)))?.code == .unsupportedDType)
    #expect(failure(npyBytes(descr: "<c8", shape: "(1,)", data: Array(repeating: 0, count: 8)))?.code == .unsupportedDType)

    let full = Tensor(zeros: [4, 4]).npyData()
    #expect(failure(full.prefix(full.count - 1))?.code == .truncated)
    #expect(failure(full.prefix(20))?.code == .truncated)
    #expect(failure(Data("not an array".utf8))?.code == .notNPY)
    #expect(failure(npyBytes(descr: "<f4", shape: "(2, 'x')", data: []))?.code == .badHeader)
}

@Test func npyFileErrorsNameTheFile() throws {
    let dir = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("bad.npy")
    try npyBytes(descr: "<f4", shape: "(2,)", fortran: true, data: Array(repeating: 0, count: 8)).write(to: url)
    do {
        _ = try Tensor(npyFile: url)
        Issue.record("a Fortran-ordered file was accepted")
    } catch let e as ArrayFileError {
        #expect(e.file == url.path)
        #expect(e.description.hasPrefix("Cannot use \(url.path): "))
        #expect(e.description.hasSuffix("."))
    }
    let t = Tensor(shape: [2], scalars: [1, 2])
    let good = dir.appendingPathComponent("good.npy")
    try t.writeNPY(to: good)
    #expect(try Tensor(npyFile: good) == t)
}

/// Files past the first 64 KB take the direct path (float32 read straight into the tensor) or,
/// for other dtypes, the whole-file path; both read the same values and report truncation.
@Test func largeNPYFilesReadDirectlyAndReportTruncation() throws {
    let dir = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    var rng = SplitMix64(seed: 11)
    let t = Tensor(shape: [200, 100], scalars: (0..<20_000).map { _ in Float(rng.uniformOpen() - 0.5) })
    let url = dir.appendingPathComponent("big.npy")
    try t.writeNPY(to: url)
    #expect(try Tensor(npyFile: url) == t)

    let full = try Data(contentsOf: url)
    try full.prefix(full.count - 4).write(to: url)
    #expect(throws: ArrayFileError.self) { try Tensor(npyFile: url) }
    do { _ = try Tensor(npyFile: url) } catch let e as ArrayFileError {
        #expect(e.code == .truncated && e.file == url.path, "\(e)")
    }

    // Big-endian float32: the same values through the converting path.
    let swapped = t.scalars.flatMap { v -> [UInt8] in withUnsafeBytes(of: v.bitPattern.bigEndian) { Array($0) } }
    try npyBytes(descr: ">f4", shape: "(200, 100)", data: swapped).write(to: url)
    #expect(try Tensor(npyFile: url) == t)

    #expect(throws: ArrayFileError.self) { try Tensor(npyFile: dir.appendingPathComponent("missing.npy")) }
}
