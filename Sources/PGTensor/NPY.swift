import Foundation

// NumPy's `.npy` format (numpy/lib/format.py): the magic `\x93NUMPY`, a major/minor version,
// a little-endian header length (2 bytes in 1.0, 4 bytes in 2.0/3.0), an ASCII (3.0: UTF-8)
// Python dict literal with `descr`, `fortran_order` and `shape`, space-padded and ending in
// '\n' so that the data starts 64-byte aligned, then the raw array data.

extension Tensor {
    /// Parses a `.npy` file's bytes. Float32 is read as is; float16/64, signed and unsigned
    /// integers and bool (either byte order) are converted to Float32, which is what every
    /// kernel consumes (int64 above 2^24 loses precision, as it would in `astype(np.float32)`).
    /// Fortran-ordered, structured, string, object and complex arrays are rejected.
    public init(npy data: Data) throws {
        let header = try NPYHeader.parse(data)
        self = try header.decodeTensor(data)
    }

    /// Reads a `.npy` file. Float32 in host order, the common case, is read from the file
    /// straight into the tensor (a 32-channel 512² probe is 32 MB: no second buffer, no copy);
    /// every other dtype goes through `init(npy:)`.
    public init(npyFile url: URL) throws {
        do {
            let file = try FileHandle(forReadingFrom: url)
            defer { try? file.close() }
            let head = try file.read(upToCount: 1 << 16) ?? Data()
            if head.count < 1 << 16 {   // the whole file
                try self.init(npy: head)
                return
            }
            if let header = try? NPYHeader.parse(head), header.isHostFloat32,
               let size = try? file.seekToEnd(), header.dataOffset <= Int(size) {
                let count = try header.elementCount()
                let available = Int(size) - header.dataOffset
                guard count * 4 <= available else { throw header.truncation(available: available) }
                try file.seek(toOffset: UInt64(header.dataOffset))
                let scalars = try [Float](unsafeUninitializedCapacity: count) { out, initialized in
                    guard let n = readFully(file.fileDescriptor, into: UnsafeMutableRawBufferPointer(out)) else {
                        throw ArrayFileError(.io, "it cannot be read (\(String(cString: strerror(errno))))")
                    }
                    guard n == count * 4 else { throw header.truncation(available: n) }
                    initialized = count
                }
                self.init(shape: header.shape, scalars: scalars)
                return
            }
            try self.init(npy: try Data(contentsOf: url, options: .mappedIfSafe))
        } catch let e as ArrayFileError {
            throw e.at(file: url.path)
        } catch {
            throw ArrayFileError(.io, "it cannot be read (\(error.localizedDescription))", file: url.path)
        }
    }

    /// The tensor as a version 1.0 (2.0 for huge shapes) `.npy` file: little-endian float32, C order.
    public func npyData() -> Data {
        var out = NPYHeader.encode(shape: shape)
        out.reserveCapacity(out.count + count * 4)
        appendLittleEndianFloats(scalars, to: &out)
        return out
    }

    /// Writes the tensor as a `.npy` file (atomically: readers never see a half-written file).
    public func writeNPY(to url: URL) throws {
        do { try npyData().write(to: url, options: .atomic) } catch {
            throw ArrayFileError(.io, "it cannot be written (\(error.localizedDescription))", file: url.path)
        }
    }
}

/// Appends Float32 values as little-endian bytes; a plain copy on little-endian hosts.
func appendLittleEndianFloats(_ values: [Float], to out: inout Data) {
    #if _endian(little)
    values.withUnsafeBytes { out.append(contentsOf: $0) }
    #else
    for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
    #endif
}

/// The parsed header of one `.npy` array.
struct NPYHeader {
    enum Kind: Character { case float = "f", int = "i", uint = "u", bool = "b" }
    var kind: Kind
    var itemSize: Int
    var bigEndian: Bool
    var shape: [Int]
    /// Byte offset of the array data.
    var dataOffset: Int
    var descr: String

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    static func parse(_ data: Data) throws -> NPYHeader {
        guard data.count >= 10 else {
            throw ArrayFileError(data.starts(with: magic) ? .truncated : .notNPY,
                                 "it holds \(data.count) bytes, too few for a .npy header")
        }
        guard data.starts(with: magic) else {
            throw ArrayFileError(.notNPY, "it does not start with NumPy's .npy magic bytes")
        }
        let base = data.startIndex
        let major = data[base + 6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(data[base + 8]) | Int(data[base + 9]) << 8
            headerStart = 10
        case 2, 3:
            guard data.count >= 12 else { throw ArrayFileError(.truncated, "the header length is cut off") }
            headerLength = (0..<4).reduce(0) { $0 | Int(data[base + 8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw ArrayFileError(.badHeader, "it uses .npy format version \(major).\(data[base + 7]), which pgflow does not know")
        }
        guard data.count >= headerStart + headerLength else {
            throw ArrayFileError(.truncated, "the header announces \(headerLength) bytes but the data ends before them")
        }
        let headerBytes = data[(base + headerStart)..<(base + headerStart + headerLength)]
        guard let text = String(data: headerBytes, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw ArrayFileError(.badHeader, "the header is not valid text")
        }
        let literal: PyLiteral
        var parser = PyLiteralParser(text)
        do { literal = try parser.parseTop() } catch let e as PyLiteralParser.Failure {
            throw ArrayFileError(.badHeader, "the header dictionary cannot be parsed (\(e.message))")
        }
        guard case .dict(let entries) = literal else {
            throw ArrayFileError(.badHeader, "the header is not a dictionary")
        }
        func entry(_ name: String) -> PyLiteral? {
            entries.first { if case .str(name) = $0.0 { return true }; return false }?.1
        }
        guard let descrValue = entry("descr"), let fortranValue = entry("fortran_order"),
              let shapeValue = entry("shape") else {
            throw ArrayFileError(.badHeader, "the header lacks one of 'descr', 'fortran_order' and 'shape'")
        }
        guard case .str(let descr) = descrValue else {
            throw ArrayFileError(.unsupportedDType,
                                 "it is a structured array (dtype \(descrValue)); only plain numeric arrays convert to Float32")
        }
        guard case .bool(let fortran) = fortranValue else {
            throw ArrayFileError(.badHeader, "'fortran_order' is not True or False")
        }
        guard case .seq(let dims) = shapeValue else {
            throw ArrayFileError(.badHeader, "'shape' is not a tuple")
        }
        var shape: [Int] = []
        for d in dims {
            guard case .int(let n) = d, n >= 0 else {
                throw ArrayFileError(.badHeader, "'shape' \(shapeValue) holds something other than non-negative integers")
            }
            shape.append(n)
        }
        if fortran {
            throw ArrayFileError(.fortranOrder,
                                 "the array (shape \(shape)) is stored in Fortran order; re-save it in C order, e.g. with numpy.ascontiguousarray")
        }
        let (kind, size, bigEndian) = try parseDescr(descr)
        return NPYHeader(kind: kind, itemSize: size, bigEndian: bigEndian, shape: shape,
                         dataOffset: headerStart + headerLength, descr: descr)
    }

    /// Splits a dtype string such as `<f4`, `|u1`, `>i8` into kind, item size and byte order.
    static func parseDescr(_ descr: String) throws -> (Kind, Int, Bool) {
        var chars = Substring(descr)
        var bigEndian = false
        if let first = chars.first, "<>|=".contains(first) {
            bigEndian = first == ">"
            #if _endian(big)
            if first == "=" { bigEndian = true }
            #endif
            chars = chars.dropFirst()
        }
        let supported = "float16/32/64, int8/16/32/64, uint8/16/32/64 and bool"
        guard let k = chars.first, let kind = Kind(rawValue: k), let size = Int(chars.dropFirst()) else {
            throw ArrayFileError(.unsupportedDType, "its dtype '\(descr)' cannot be converted to Float32 (supported: \(supported))")
        }
        let sizes: [Kind: Set<Int>] = [.float: [2, 4, 8], .int: [1, 2, 4, 8], .uint: [1, 2, 4, 8], .bool: [1]]
        guard sizes[kind]!.contains(size) else {
            throw ArrayFileError(.unsupportedDType, "its dtype '\(descr)' cannot be converted to Float32 (supported: \(supported))")
        }
        return (kind, size, bigEndian)
    }

    /// Float32 in this machine's byte order: the bytes are the tensor's scalars as they are.
    var isHostFloat32: Bool { kind == .float && itemSize == 4 && bigEndian == hostIsBigEndian }

    /// The number of elements `shape` announces.
    func elementCount() throws -> Int {
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, !p.multipliedReportingOverflow(by: itemSize).overflow else {
                throw ArrayFileError(.badHeader, "'shape' \(shape) is too large")
            }
            count = p
        }
        return count
    }

    /// The error for data that ends `available` bytes after the header.
    func truncation(available: Int) -> ArrayFileError {
        let needed = shape.reduce(1, *) * itemSize
        return ArrayFileError(.truncated,
                              "the array of shape \(shape) and dtype '\(descr)' needs \(needed) bytes of data but only \(available) follow the header")
    }

    /// Reads the array data that follows the header into a Float32 tensor.
    func decodeTensor(_ data: Data) throws -> Tensor {
        let count = try elementCount()
        let needed = count * itemSize
        let available = data.count - dataOffset
        guard needed <= available else { throw truncation(available: available) }
        let scalars = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> [Float] in
            let src = UnsafeRawBufferPointer(rebasing: raw[dataOffset..<(dataOffset + needed)])
            return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                convert(src, count: count, into: out)
                initialized = count
            }
        }
        return Tensor(shape: shape, scalars: scalars)
    }

    /// Converts `count` elements of this dtype to Float32.
    private func convert(_ src: UnsafeRawBufferPointer, count: Int, into out: UnsafeMutableBufferPointer<Float>) {
        let swap = bigEndian != hostIsBigEndian
        // The common case, float32 in host order, is a plain copy.
        if kind == .float, itemSize == 4, !swap {
            if count > 0 { UnsafeMutableRawBufferPointer(out).copyMemory(from: src) }
            return
        }
        func load<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T {
            let v = src.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self)
            return swap ? v.byteSwapped : v
        }
        for i in 0..<count {
            let value: Float
            switch (kind, itemSize) {
            case (.float, 2): value = floatFromHalf(load(i, UInt16.self))
            case (.float, 4): value = Float(bitPattern: load(i, UInt32.self))
            case (.float, 8): value = Float(Double(bitPattern: load(i, UInt64.self)))
            case (.int, 1): value = Float(Int8(bitPattern: src[i]))
            case (.int, 2): value = Float(load(i, Int16.self))
            case (.int, 4): value = Float(load(i, Int32.self))
            case (.int, 8): value = Float(load(i, Int64.self))
            case (.uint, 1): value = Float(src[i])
            case (.uint, 2): value = Float(load(i, UInt16.self))
            case (.uint, 4): value = Float(load(i, UInt32.self))
            case (.uint, 8): value = Float(load(i, UInt64.self))
            case (.bool, _): value = src[i] != 0 ? 1 : 0
            default: preconditionFailure("dtype \(descr) passed parseDescr but has no conversion")
            }
            out[i] = value
        }
    }

    /// The header block for a little-endian float32 C-order array: padded so the data starts on
    /// a 64-byte boundary, as NumPy itself writes it.
    static func encode(shape: [Int]) -> Data {
        let dims = shape.map(String.init)
        let shapeText = dims.count == 1 ? "(\(dims[0]),)" : "(" + dims.joined(separator: ", ") + ")"
        var dict = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // Version 1.0 holds headers up to 65535 bytes; beyond that (absurd ranks) use 2.0.
        let v1 = (10 + dict.utf8.count + 1 + 63) / 64 * 64 - 10 <= 65535
        let prefix = v1 ? 10 : 12
        let total = (prefix + dict.utf8.count + 1 + 63) / 64 * 64
        dict += String(repeating: " ", count: total - prefix - dict.utf8.count - 1) + "\n"
        var out = Data(magic)
        out.append(contentsOf: [v1 ? 1 : 2, 0])
        let length = dict.utf8.count
        if v1 {
            out.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        } else {
            out.append(contentsOf: (0..<4).map { UInt8((length >> (8 * $0)) & 0xFF) })
        }
        out.append(contentsOf: Array(dict.utf8))
        return out
    }
}

private let hostIsBigEndian: Bool = {
    #if _endian(big)
    return true
    #else
    return false
    #endif
}()

/// IEEE 754 binary16 → binary32, written out because `Float16` is not available on every
/// platform the package may be built on.
func floatFromHalf(_ h: UInt16) -> Float {
    let sign = UInt32(h >> 15) << 31
    let exponent = Int((h >> 10) & 0x1F)
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0x1F {  // inf / nan
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    }
    if exponent == 0 {  // zero / subnormal: mantissa · 2^-24
        let magnitude = Float(mantissa) * 0x1p-24
        return sign != 0 ? -magnitude : magnitude
    }
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
}

// MARK: - Python literal parsing (just what .npy headers use)

indirect enum PyLiteral: CustomStringConvertible, Equatable {
    case str(String)
    case int(Int)
    case bool(Bool)
    case none
    case seq([PyLiteral])
    case dict([(PyLiteral, PyLiteral)])

    static func == (a: PyLiteral, b: PyLiteral) -> Bool { a.description == b.description }

    var description: String {
        switch self {
        case .str(let s): return "'\(s)'"
        case .int(let i): return String(i)
        case .bool(let b): return b ? "True" : "False"
        case .none: return "None"
        case .seq(let items): return "(" + items.map(\.description).joined(separator: ", ") + ")"
        case .dict(let items): return "{" + items.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + "}"
        }
    }
}

struct PyLiteralParser {
    struct Failure: Error { var message: String }
    private let chars: [Character]
    private var i = 0

    init(_ text: String) { chars = Array(text) }

    mutating func parseTop() throws -> PyLiteral {
        let v = try value(depth: 0)
        skipSpace()
        guard i == chars.count else { throw Failure(message: "unexpected text after the dictionary") }
        return v
    }

    private mutating func skipSpace() { while i < chars.count, chars[i].isWhitespace { i += 1 } }

    private mutating func value(depth: Int) throws -> PyLiteral {
        guard depth < 32 else { throw Failure(message: "nested too deeply") }
        skipSpace()
        guard i < chars.count else { throw Failure(message: "unexpected end") }
        let c = chars[i]
        switch c {
        case "'", "\"": return .str(try string(quote: c))
        case "{":
            i += 1
            var items: [(PyLiteral, PyLiteral)] = []
            while true {
                skipSpace()
                if i < chars.count, chars[i] == "}" { i += 1; return .dict(items) }
                let k = try value(depth: depth + 1)
                skipSpace()
                guard i < chars.count, chars[i] == ":" else { throw Failure(message: "expected ':' after \(k)") }
                i += 1
                items.append((k, try value(depth: depth + 1)))
                skipSpace()
                if i < chars.count, chars[i] == "," { i += 1; continue }
                guard i < chars.count, chars[i] == "}" else { throw Failure(message: "expected ',' or '}'") }
            }
        case "(", "[":
            let close: Character = c == "(" ? ")" : "]"
            i += 1
            var items: [PyLiteral] = []
            while true {
                skipSpace()
                if i < chars.count, chars[i] == close { i += 1; return .seq(items) }
                items.append(try value(depth: depth + 1))
                skipSpace()
                if i < chars.count, chars[i] == "," { i += 1; continue }
                guard i < chars.count, chars[i] == close else { throw Failure(message: "expected ',' or '\(close)'") }
            }
        default:
            var word = ""
            while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "-" || chars[i] == "_" {
                word.append(chars[i]); i += 1
            }
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default:
                // Python 2 wrote long integers as `3L`.
                let digits = word.hasSuffix("L") ? String(word.dropLast()) : word
                guard let n = Int(digits) else { throw Failure(message: "unexpected '\(word.isEmpty ? String(c) : word)'") }
                return .int(n)
            }
        }
    }

    private mutating func string(quote: Character) throws -> String {
        i += 1
        var s = ""
        while i < chars.count {
            let c = chars[i]
            i += 1
            if c == quote { return s }
            if c == "\\", i < chars.count { s.append(chars[i]); i += 1; continue }
            s.append(c)
        }
        throw Failure(message: "unterminated string")
    }
}
