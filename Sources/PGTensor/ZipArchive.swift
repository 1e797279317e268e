private import CZlib
import Foundation

// The subset of PKWARE's zip format (APPNOTE.TXT) that `.npz` files use: members stored (0) or
// deflated (8), no encryption, ZIP64 extensions on read (NumPy's savez forces ZIP64 local
// headers for every member). The central directory is authoritative for sizes and CRCs, because
// streamed writers (Python's zipfile among them) leave placeholders in the local headers.

/// One member found in a zip archive's central directory.
struct ZipMember {
    var name: String
    var method: UInt16
    var flags: UInt16
    var crc32: UInt32
    var compressedSize: Int
    var uncompressedSize: Int
    var localHeaderOffset: Int
}

/// Reads members of a zip archive held in memory (usually a mapped file).
struct ZipReader {
    let data: Data
    let members: [ZipMember]

    init(_ data: Data) throws {
        self.data = data
        self.members = try ZipReader.centralDirectory(data)
    }

    // Little-endian field readers that report running off the end instead of trapping.
    private static func u16(_ d: Data, _ at: Int) throws -> Int {
        guard at >= 0, at + 2 <= d.count else { throw ArrayFileError(.badArchive, "a zip record runs past the end of the file") }
        let b = d.startIndex + at
        return Int(d[b]) | Int(d[b + 1]) << 8
    }
    private static func u32(_ d: Data, _ at: Int) throws -> Int {
        Int(try u16(d, at)) | Int(try u16(d, at + 2)) << 16
    }
    private static func u64(_ d: Data, _ at: Int) throws -> Int {
        let lo = try u32(d, at), hi = try u32(d, at + 4)
        guard hi < 0x8000_0000 else { throw ArrayFileError(.badArchive, "a ZIP64 size or offset is out of range") }
        return lo | hi << 32
    }

    private static func centralDirectory(_ d: Data) throws -> [ZipMember] {
        // End of central directory record: 22 bytes plus a comment of up to 65535 bytes.
        guard d.count >= 22 else { throw ArrayFileError(.badArchive, "it is too short to be a zip archive") }
        var eocd = -1
        var p = d.count - 22
        let lowest = max(0, d.count - 22 - 65535)
        while p >= lowest {
            if try u32(d, p) == 0x0605_4b50 { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else { throw ArrayFileError(.badArchive, "it is not a zip archive (no end-of-central-directory record)") }
        var count = try u16(d, eocd + 10)
        var cdSize = try u32(d, eocd + 12)
        var cdOffset = try u32(d, eocd + 16)
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // ZIP64: a locator just before the end record points at the ZIP64 end record.
            let locator = eocd - 20
            guard locator >= 0, try u32(d, locator) == 0x0706_4b50 else {
                throw ArrayFileError(.badArchive, "its ZIP64 end-of-central-directory locator is missing")
            }
            let record = try u64(d, locator + 8)
            guard try u32(d, record) == 0x0606_4b50 else {
                throw ArrayFileError(.badArchive, "its ZIP64 end-of-central-directory record is missing")
            }
            count = try u64(d, record + 32)
            cdSize = try u64(d, record + 40)
            cdOffset = try u64(d, record + 48)
        }
        guard cdOffset + cdSize <= d.count else {
            throw ArrayFileError(.badArchive, "its central directory lies outside the file (truncated?)")
        }
        var members: [ZipMember] = []
        members.reserveCapacity(min(count, 65536))
        var at = cdOffset
        for _ in 0..<count {
            guard try u32(d, at) == 0x0201_4b50 else {
                throw ArrayFileError(.badArchive, "its central directory is corrupt (bad entry signature)")
            }
            let flags = UInt16(try u16(d, at + 8))
            let method = UInt16(try u16(d, at + 10))
            let crc = UInt32(try u32(d, at + 16))
            var csize = try u32(d, at + 20)
            var usize = try u32(d, at + 24)
            let nameLength = try u16(d, at + 28)
            let extraLength = try u16(d, at + 30)
            let commentLength = try u16(d, at + 32)
            var offset = try u32(d, at + 42)
            let nameStart = at + 46
            guard nameStart + nameLength + extraLength <= d.count else {
                throw ArrayFileError(.badArchive, "its central directory is truncated")
            }
            let nameBytes = d[(d.startIndex + nameStart)..<(d.startIndex + nameStart + nameLength)]
            // Bit 11 marks UTF-8 names; others are nominally CP437, which is ASCII for NumPy's keys.
            let name = String(data: nameBytes, encoding: .utf8) ?? String(decoding: nameBytes, as: UTF8.self)
            // ZIP64 extra field: the 8-byte values present are exactly those saturated above.
            var e = nameStart + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = try u16(d, e), size = try u16(d, e + 2)
                if id == 0x0001 {
                    var f = e + 4
                    if usize == 0xFFFF_FFFF { usize = try u64(d, f); f += 8 }
                    if csize == 0xFFFF_FFFF { csize = try u64(d, f); f += 8 }
                    if offset == 0xFFFF_FFFF { offset = try u64(d, f); f += 8 }
                }
                e += 4 + size
            }
            members.append(ZipMember(name: name, method: method, flags: flags, crc32: crc,
                                     compressedSize: csize, uncompressedSize: usize, localHeaderOffset: offset))
            at = nameStart + nameLength + extraLength + commentLength
        }
        return members
    }

    /// The uncompressed, CRC-checked contents of one member.
    func contents(of member: ZipMember) throws -> Data {
        do {
            return try extract(member)
        } catch let e as ArrayFileError {
            throw e.at(member: member.name)
        }
    }

    private func extract(_ m: ZipMember) throws -> Data {
        if m.flags & 1 != 0 { throw ArrayFileError(.unsupportedCompression, "it is encrypted") }
        let at = m.localHeaderOffset
        guard try ZipReader.u32(data, at) == 0x0403_4b50 else {
            throw ArrayFileError(.badArchive, "its local header is missing (bad offset or truncated archive)")
        }
        let start = at + 30 + (try ZipReader.u16(data, at + 26)) + (try ZipReader.u16(data, at + 28))
        guard start + m.compressedSize <= data.count else {
            throw ArrayFileError(.truncated, "its \(m.compressedSize) bytes of data run past the end of the archive")
        }
        let raw = data[(data.startIndex + start)..<(data.startIndex + start + m.compressedSize)]
        let out: Data
        switch m.method {
        case 0:
            guard m.compressedSize == m.uncompressedSize else {
                throw ArrayFileError(.badArchive, "it is stored uncompressed but its sizes differ")
            }
            out = Data(raw)
        case 8:
            out = try Deflate.inflate(raw, expectedSize: m.uncompressedSize)
        default:
            throw ArrayFileError(.unsupportedCompression,
                                 "it uses zip compression method \(m.method); only stored (0) and deflate (8) are read")
        }
        let crc = Deflate.crc32(out)
        guard crc == m.crc32 else {
            throw ArrayFileError(.checksumMismatch,
                                 String(format: "its CRC-32 is %08x but the archive records %08x (corrupt file)", crc, m.crc32))
        }
        return out
    }
}

/// Writes a zip archive member by member, stored or deflated (no ZIP64, no data descriptors).
struct ZipWriter {
    /// Where the archive's bytes go, in order: a file, or a `Data` in memory.
    private let emit: (UnsafeRawBufferPointer) throws -> Void
    private var central = Data()
    private var count = 0
    private var offset = 0

    init(emit: @escaping (UnsafeRawBufferPointer) throws -> Void) { self.emit = emit }

    // A fixed timestamp (1980-01-01 00:00, the DOS epoch) keeps archives byte-for-byte
    // reproducible, so writing the same arrays twice yields the same content hash.
    private static let dosTime: UInt16 = 0
    private static let dosDate: UInt16 = (0 << 9) | (1 << 5) | 1

    private static func put16(_ v: Int, _ d: inout Data) { d.append(contentsOf: [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)]) }
    private static func put32(_ v: Int, _ d: inout Data) { put16(v & 0xFFFF, &d); put16((v >> 16) & 0xFFFF, &d) }

    mutating func add(name: String, contents: Data, compressed: Bool) throws {
        guard compressed else {
            try contents.withUnsafeBytes { try addStored(name: name, parts: [$0]) }
            return
        }
        let crc = Deflate.crc32(contents)
        let payload = try Deflate.deflate(contents)
        try payload.withUnsafeBytes { try addMember(name: name, crc: crc, size: contents.count, method: 8, payload: [$0]) }
    }

    /// A stored (uncompressed) member whose contents are `parts` one after the other, written
    /// from where they lie: a large tensor is never copied into an archive buffer.
    mutating func addStored(name: String, parts: [UnsafeRawBufferPointer]) throws {
        let crc = parts.reduce(Deflate.crc32Empty) { Deflate.crc32($0, $1) }
        try addMember(name: name, crc: crc, size: parts.reduce(0) { $0 + $1.count }, method: 0, payload: parts)
    }

    private mutating func addMember(name: String, crc: UInt32, size: Int, method: Int, payload: [UnsafeRawBufferPointer]) throws {
        let payloadSize = payload.reduce(0) { $0 + $1.count }
        guard size < 0xFFFF_FFFF, payloadSize < 0xFFFF_FFFF, offset < 0xFFFF_FFFF else {
            throw ArrayFileError(.tooLarge, "the archive would exceed 4 GiB, which needs ZIP64, and pgflow writes plain zip only",
                                 member: name)
        }
        let nameBytes = Array(name.utf8)
        let utf8Flag = nameBytes.allSatisfy { $0 < 0x80 } ? 0 : 1 << 11
        func common(_ d: inout Data) {
            ZipWriter.put16(20, &d)                     // version needed: 2.0 (deflate)
            ZipWriter.put16(utf8Flag, &d)
            ZipWriter.put16(method, &d)
            ZipWriter.put16(Int(ZipWriter.dosTime), &d)
            ZipWriter.put16(Int(ZipWriter.dosDate), &d)
            ZipWriter.put32(Int(crc), &d)
            ZipWriter.put32(payloadSize, &d)
            ZipWriter.put32(size, &d)
            ZipWriter.put16(nameBytes.count, &d)
            ZipWriter.put16(0, &d)                      // extra field length
        }
        var local = Data()
        ZipWriter.put32(0x0403_4b50, &local)
        common(&local)
        local.append(contentsOf: nameBytes)
        try local.withUnsafeBytes { try emit($0) }
        for part in payload where part.count > 0 { try emit(part) }

        ZipWriter.put32(0x0201_4b50, &central)
        ZipWriter.put16(3 << 8 | 20, &central)          // made by: Unix, zip 2.0 (so the mode below counts)
        common(&central)
        ZipWriter.put16(0, &central)                    // comment length
        ZipWriter.put16(0, &central)                    // disk number
        ZipWriter.put16(0, &central)                    // internal attributes
        ZipWriter.put32(0o100644 << 16, &central)       // external attributes: regular file, rw-r--r--
        ZipWriter.put32(offset, &central)
        central.append(contentsOf: nameBytes)
        offset += local.count + payloadSize
        count += 1
    }

    /// Ends the archive: central directory, end record.
    mutating func finish() throws {
        guard count < 0xFFFF, offset + central.count < 0xFFFF_FFFF else {
            throw ArrayFileError(.tooLarge, "the archive would hold \(count) members or exceed 4 GiB, which needs ZIP64")
        }
        var out = central
        ZipWriter.put32(0x0605_4b50, &out)
        ZipWriter.put16(0, &out)
        ZipWriter.put16(0, &out)
        ZipWriter.put16(count, &out)
        ZipWriter.put16(count, &out)
        ZipWriter.put32(central.count, &out)
        ZipWriter.put32(offset, &out)
        ZipWriter.put16(0, &out)
        try out.withUnsafeBytes { try emit($0) }
    }
}

/// zlib's raw deflate and CRC-32, mapped to ArrayFileError in this one place.
enum Deflate {
    /// zlib counts in 32-bit `uInt`, so larger buffers are fed in slices of this size.
    private static let slice = 1 << 30

    static func crc32(_ d: Data) -> UInt32 {
        d.withUnsafeBytes { crc32(crc32Empty, $0) }
    }

    /// The CRC-32 of no bytes: where a running CRC starts.
    static let crc32Empty = UInt32(truncatingIfNeeded: CZlib.crc32(0, nil, 0))

    /// `crc` (of earlier bytes) continued over `raw`.
    static func crc32(_ crc: UInt32, _ raw: UnsafeRawBufferPointer) -> UInt32 {
        var crc = uLong(crc)
        var at = 0
        while at < raw.count {
            let n = min(slice, raw.count - at)
            crc = CZlib.crc32(crc, raw.baseAddress!.advanced(by: at).assumingMemoryBound(to: Bytef.self), uInt(n))
            at += n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    static func deflate(_ input: Data, level: Int32 = 6) throws -> Data {
        var stream = z_stream()
        guard pg_deflate_init_raw(&stream, level) == Z_OK else {
            throw ArrayFileError(.compression, "zlib could not start a deflate stream")
        }
        defer { deflateEnd(&stream) }
        var output = Data(count: Int(deflateBound(&stream, uLong(min(input.count, Int(UInt32.max))))) + 64)
        var produced = 0
        try input.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
            var consumed = 0
            while true {
                if stream.avail_in == 0, consumed < src.count {
                    let n = min(slice, src.count - consumed)
                    stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress!.advanced(by: consumed)
                        .assumingMemoryBound(to: Bytef.self))
                    stream.avail_in = uInt(n)
                    consumed += n
                }
                if produced == output.count { output.count += max(1 << 16, output.count / 2) }
                let flush = consumed == src.count ? Z_FINISH : Z_NO_FLUSH
                let status: Int32 = output.withUnsafeMutableBytes { dst in
                    stream.next_out = dst.baseAddress!.advanced(by: produced).assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(min(slice, dst.count - produced))
                    let before = stream.avail_out
                    let s = CZlib.deflate(&stream, flush)
                    produced += Int(before - stream.avail_out)
                    return s
                }
                if status == Z_STREAM_END { break }
                guard status == Z_OK || status == Z_BUF_ERROR else {
                    throw ArrayFileError(.compression, "zlib's deflate failed with status \(status)")
                }
            }
        }
        output.count = produced
        return output
    }

    static func inflate(_ input: Data, expectedSize: Int) throws -> Data {
        var stream = z_stream()
        guard pg_inflate_init_raw(&stream) == Z_OK else {
            throw ArrayFileError(.compression, "zlib could not start an inflate stream")
        }
        defer { inflateEnd(&stream) }
        var output = Data(count: expectedSize)
        var produced = 0
        try input.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
            var consumed = 0
            while true {
                if stream.avail_in == 0, consumed < src.count {
                    let n = min(slice, src.count - consumed)
                    stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress!.advanced(by: consumed)
                        .assumingMemoryBound(to: Bytef.self))
                    stream.avail_in = uInt(n)
                    consumed += n
                }
                // One spare byte of room beyond the expected size lets an over-long stream show itself.
                if produced == output.count { output.count += 1 }
                let status: Int32 = output.withUnsafeMutableBytes { dst in
                    stream.next_out = dst.baseAddress!.advanced(by: produced).assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(min(slice, dst.count - produced))
                    let before = stream.avail_out
                    let s = CZlib.inflate(&stream, Z_NO_FLUSH)
                    produced += Int(before - stream.avail_out)
                    return s
                }
                if status == Z_STREAM_END { break }
                if produced > expectedSize {
                    throw ArrayFileError(.checksumMismatch, "it inflates to more than the \(expectedSize) bytes the archive records")
                }
                if status == Z_BUF_ERROR, stream.avail_in == 0, consumed == src.count {
                    throw ArrayFileError(.truncated, "its deflate stream ends early")
                }
                guard status == Z_OK || status == Z_BUF_ERROR else {
                    throw ArrayFileError(.compression, "its deflate stream is corrupt (zlib status \(status))")
                }
            }
        }
        guard produced == expectedSize else {
            throw ArrayFileError(.checksumMismatch,
                                 "it inflates to \(produced) bytes but the archive records \(expectedSize)")
        }
        output.count = produced
        return output
    }
}

/// Raw deflate (RFC 1951) through zlib, for other modules that store compressed bytes (the
/// result cache); the same streams ZIP members use.
public enum RawDeflate {
    public static func compress(_ input: Data, level: Int32 = 1) throws -> Data { try Deflate.deflate(input, level: level) }
    public static func decompress(_ input: Data, size: Int) throws -> Data { try Deflate.inflate(input, expectedSize: size) }
}
