import Foundation
import PGTensor

/// A 3D Gaussian Splatting point cloud in the `.ply` layout of the 3DGS reference code (and of
/// gsplat, SuperSplat and most viewers): one `vertex` element with the properties
///
/// - `x y z`: mean, world units;
/// - `nx ny nz`: normals (unused by 3DGS, written as zeros by it);
/// - `f_dc_0..2`, `f_rest_0..K-1`: spherical-harmonic colour coefficients (degree-0 and the rest);
/// - `opacity`: opacity *logit* (sigmoid gives the opacity);
/// - `scale_0..2`: *log* standard deviations per axis; only `scale_0` means isotropic;
/// - `rot_0..3`: rotation quaternion (w, x, y, z), not necessarily normalised;
/// - `f_feat_0..F-1`: pgflow's extra channels for neural features (PortraitGen's Neural Gaussian
///   Texture); other tools ignore them.
///
/// Reads `binary_little_endian`, `binary_big_endian` and `ascii` with any PLY scalar type; writes
/// float32 `binary_little_endian` (default) or `ascii`. Unknown vertex properties and elements
/// other than `vertex` are skipped. Malformed files raise a `MediaError` naming the file and what
/// is wrong with it.
public struct GaussianPLY: Sendable, Equatable {
    public var means: Tensor                     // [N, 3]
    public var normals: Tensor?                  // [N, 3]
    public var sphericalHarmonicsDC: Tensor?     // [N, 3]
    public var sphericalHarmonicsRest: Tensor?   // [N, K]
    public var opacityLogits: Tensor             // [N]
    public var logScales: Tensor                 // [N, 3], or [N, 1] when isotropic
    public var quats: Tensor?                    // [N, 4] (w, x, y, z)
    public var features: Tensor?                 // [N, F]

    public var count: Int { opacityLogits.count }
    public var isotropic: Bool { logScales.shape.last == 1 }

    public enum Format: String, Sendable, CaseIterable {
        case binaryLittleEndian = "binary_little_endian"
        case binaryBigEndian = "binary_big_endian"
        case ascii
    }

    public init(means: Tensor, normals: Tensor? = nil, sphericalHarmonicsDC: Tensor? = nil,
                sphericalHarmonicsRest: Tensor? = nil, opacityLogits: Tensor, logScales: Tensor,
                quats: Tensor? = nil, features: Tensor? = nil) {
        let n = opacityLogits.count
        precondition(opacityLogits.shape == [n], "opacity logits should be [N], got \(opacityLogits.shape)")
        precondition(means.shape == [n, 3], "means should be [\(n), 3], got \(means.shape)")
        precondition(logScales.shape == [n, 3] || logScales.shape == [n, 1],
                     "log-scales should be [\(n), 3] or [\(n), 1], got \(logScales.shape)")
        precondition(normals == nil || normals!.shape == [n, 3], "normals should be [\(n), 3]")
        precondition(sphericalHarmonicsDC == nil || sphericalHarmonicsDC!.shape == [n, 3], "f_dc should be [\(n), 3]")
        precondition(sphericalHarmonicsRest == nil || (sphericalHarmonicsRest!.rank == 2 && sphericalHarmonicsRest!.shape[0] == n),
                     "f_rest should be [\(n), K]")
        precondition(quats == nil || quats!.shape == [n, 4], "quaternions should be [\(n), 4]")
        precondition(features == nil || (features!.rank == 2 && features!.shape[0] == n), "features should be [\(n), F]")
        self.means = means
        self.normals = normals
        self.sphericalHarmonicsDC = sphericalHarmonicsDC
        self.sphericalHarmonicsRest = sphericalHarmonicsRest
        self.opacityLogits = opacityLogits
        self.logScales = logScales
        self.quats = quats
        self.features = features
    }

    /// The degree-0 spherical-harmonic constant: colour = 0.5 + C0 · f_dc.
    public static let shC0: Float = 0.28209479177387814

    /// Colours from `f_dc` as the 3DGS renderer computes them at degree 0 (clamped below at 0),
    /// [N, 3]; nil when the file has no `f_dc`.
    public var rgb: Tensor? {
        guard let dc = sphericalHarmonicsDC else { return nil }
        return Tensor(shape: dc.shape, scalars: dc.scalars.map { max(0, 0.5 + Self.shC0 * $0) })
    }
}

// MARK: - Reading

extension GaussianPLY {
    public static func read(_ url: URL) throws -> GaussianPLY {
        let path = url.path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
            throw MediaError(.fileNotFound, path: path, "Cannot read '\(path)': no such file")
        }
        // Mapped, not read: parsing copies every value into its tensor anyway, and a fresh
        // process pays for each megabyte of new memory it touches (a 100k-Gaussian cloud is
        // 24 MB); the mapping is dropped when parsing returns.
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw MediaError(.fileNotFound, path: path, "Cannot read '\(path)'", cause: "\(error.localizedDescription)")
        }
        return try parse(data, path: path)
    }

    /// Parses the bytes of a `.ply` file; `path` only names it in errors.
    public static func parse(_ data: Data, path: String) throws -> GaussianPLY {
        try data.withUnsafeBytes { raw in
            try PLYReader(bytes: raw, path: path).read()
        }
    }
}

/// PLY scalar types.
enum PLYType: String {
    case int8, uint8, int16, uint16, int32, uint32, float32, float64

    init?(name: String) {
        switch name {
        case "char", "int8": self = .int8
        case "uchar", "uint8": self = .uint8
        case "short", "int16": self = .int16
        case "ushort", "uint16": self = .uint16
        case "int", "int32": self = .int32
        case "uint", "uint32": self = .uint32
        case "float", "float32": self = .float32
        case "double", "float64": self = .float64
        default: return nil
        }
    }

    var size: Int {
        switch self {
        case .int8, .uint8: return 1
        case .int16, .uint16: return 2
        case .int32, .uint32, .float32: return 4
        case .float64: return 8
        }
    }
}

private struct PLYElement {
    var name: String
    var count: Int
    var properties: [(name: String, type: PLYType)] = []
    var hasList = false
    var stride: Int { properties.reduce(0) { $0 + $1.type.size } }
}

private struct PLYReader {
    let bytes: UnsafeRawBufferPointer
    let path: String

    func fail(_ code: MediaError.Code, _ what: String) -> MediaError {
        MediaError(code, path: path, "Cannot read '\(path)' as a 3DGS point cloud: \(what)")
    }

    func read() throws -> GaussianPLY {
        // Header: ASCII lines up to and including "end_header\n".
        let marker = Array("end_header".utf8)
        guard bytes.count >= 4, bytes[0] == UInt8(ascii: "p"), bytes[1] == UInt8(ascii: "l"), bytes[2] == UInt8(ascii: "y"),
              bytes[3] == 10 || bytes[3] == 13 else {
            throw MediaError(.notMedia, path: path, "Cannot read '\(path)': it is not a PLY file (it does not start with 'ply')")
        }
        // Scan line by line (headers are small; a missing end_header must not read a whole file).
        var headerEnd = -1
        var lineStart = 0
        let limit = min(bytes.count, 1 << 20)
        while lineStart < limit {
            var lineEnd = lineStart
            while lineEnd < bytes.count && bytes[lineEnd] != 10 { lineEnd += 1 }
            var textEnd = lineEnd
            while textEnd > lineStart && (bytes[textEnd - 1] == 13 || bytes[textEnd - 1] == 32) { textEnd -= 1 }
            if textEnd - lineStart == marker.count && marker.indices.allSatisfy({ bytes[lineStart + $0] == marker[$0] }) {
                headerEnd = min(lineEnd + 1, bytes.count)
                break
            }
            lineStart = lineEnd + 1
        }
        guard headerEnd > 0 else { throw fail(.corrupt, "the header has no 'end_header' line") }
        guard let header = String(bytes: bytes[0..<headerEnd], encoding: .ascii) else {
            throw fail(.corrupt, "the header is not ASCII text")
        }

        var format: GaussianPLY.Format?
        var elements: [PLYElement] = []
        for (number, rawLine) in header.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let keyword = words.first else { continue }
            let at = "header line \(number + 1)"
            switch keyword {
            case "ply", "comment", "obj_info", "end_header": continue
            case "format":
                guard words.count == 3, let f = GaussianPLY.Format(rawValue: words[1]) else {
                    throw fail(.corrupt, "\(at): unknown format '\(words.dropFirst().joined(separator: " "))' "
                               + "(expected ascii, binary_little_endian or binary_big_endian)")
                }
                guard words[2] == "1.0" else { throw fail(.corrupt, "\(at): unsupported PLY version \(words[2])") }
                format = f
            case "element":
                guard words.count == 3, let count = Int(words[2]), count >= 0 else {
                    throw fail(.corrupt, "\(at): expected 'element <name> <count>', got '\(line)'")
                }
                elements.append(PLYElement(name: words[1], count: count))
            case "property":
                guard !elements.isEmpty else { throw fail(.corrupt, "\(at): a property before any element") }
                if words.count == 5 && words[1] == "list" {
                    guard PLYType(name: words[2]) != nil, PLYType(name: words[3]) != nil else {
                        throw fail(.corrupt, "\(at): unknown list types in '\(line)'")
                    }
                    elements[elements.count - 1].hasList = true
                    continue
                }
                guard words.count == 3, let type = PLYType(name: words[1]) else {
                    throw fail(.corrupt, "\(at): expected 'property <type> <name>', got '\(line)'")
                }
                if elements[elements.count - 1].properties.contains(where: { $0.name == words[2] }) {
                    throw fail(.corrupt, "\(at): property '\(words[2])' appears twice")
                }
                elements[elements.count - 1].properties.append((words[2], type))
            default:
                throw fail(.corrupt, "\(at): unexpected '\(keyword)'")
            }
        }
        guard let format else { throw fail(.corrupt, "the header has no 'format' line") }
        guard let vertexAt = elements.firstIndex(where: { $0.name == "vertex" }) else {
            throw fail(.corrupt, "there is no 'vertex' element")
        }
        let vertex = elements[vertexAt]
        if vertex.hasList { throw fail(.invalidSetting, "the vertex element has list properties, which 3DGS files never have") }

        let layout = try VertexLayout(vertex.properties, fail: fail)
        let n = vertex.count
        var columns = [Float](repeating: 0, count: n * layout.wanted.count)   // [N, wanted]

        var offset = headerEnd
        if format == .ascii {
            var scanner = ASCIIScanner(bytes: bytes, position: offset)
            for e in elements[..<vertexAt] {     // skip whole lines of earlier elements
                for _ in 0..<e.count { scanner.skipLine() }
            }
            var values = [Float](repeating: 0, count: vertex.properties.count)
            for v in 0..<n {
                for p in 0..<values.count {
                    guard let token = scanner.next() else {
                        throw MediaError(.truncated, path: path, "Cannot read '\(path)': the file ends in vertex \(v) of "
                                         + "the \(n) its header promises; it is truncated")
                    }
                    guard let value = Float(token) else {
                        throw fail(.corrupt, "vertex \(v), property '\(vertex.properties[p].name)': '\(token)' is not a number")
                    }
                    values[p] = value
                }
                for (k, source) in layout.wanted.enumerated() { columns[v * layout.wanted.count + k] = values[source] }
            }
        } else {
            for e in elements[..<vertexAt] {
                if e.hasList { throw fail(.invalidSetting, "element '\(e.name)' before 'vertex' has list properties") }
                offset += e.count * e.stride
            }
            let stride = vertex.stride
            let available = max(0, bytes.count - offset)
            guard available >= n * stride else {
                throw MediaError(.truncated, path: path,
                                 "Cannot read '\(path)': it holds \(available / max(stride, 1)) of the \(n) vertices its "
                                 + "header promises (\(stride) bytes each); the file is truncated")
            }
            var propertyOffsets: [Int] = []
            var o = 0
            for p in vertex.properties { propertyOffsets.append(o); o += p.type.size }
            let big = format == .binaryBigEndian
            let base = bytes.baseAddress! + offset
            let wanted = layout.wanted.map { (propertyOffsets[$0], vertex.properties[$0].type) }
            let w = wanted.count
            let offsets = wanted.map(\.0)
            columns.withUnsafeMutableBufferPointer { out in
                offsets.withUnsafeBufferPointer { offsets in
                    if !big && wanted.allSatisfy({ $0.1 == .float32 }) {
                        // What 3DGS tools write: little-endian float32 throughout, read without a
                        // type switch per value (a 100k-Gaussian cloud in a few milliseconds).
                        for v in 0..<n {
                            let record = base + v * stride
                            for k in 0..<w { out[v * w + k] = Float(bitPattern: UInt32(littleEndian: (record + offsets[k]).loadUnaligned(as: UInt32.self))) }
                        }
                        return
                    }
                    for v in 0..<n {
                        let record = base + v * stride
                        for (k, (po, type)) in wanted.enumerated() {
                            out[v * w + k] = load(record + po, type, bigEndian: big)
                        }
                    }
                }
            }
        }
        return layout.assemble(columns, count: n)
    }
}

@inline(__always)
private func load(_ p: UnsafeRawPointer, _ type: PLYType, bigEndian: Bool) -> Float {
    switch type {
    case .int8: return Float(p.loadUnaligned(as: Int8.self))
    case .uint8: return Float(p.loadUnaligned(as: UInt8.self))
    case .int16:
        let v = p.loadUnaligned(as: Int16.self)
        return Float(bigEndian ? Int16(bigEndian: v) : Int16(littleEndian: v))
    case .uint16:
        let v = p.loadUnaligned(as: UInt16.self)
        return Float(bigEndian ? UInt16(bigEndian: v) : UInt16(littleEndian: v))
    case .int32:
        let v = p.loadUnaligned(as: Int32.self)
        return Float(bigEndian ? Int32(bigEndian: v) : Int32(littleEndian: v))
    case .uint32:
        let v = p.loadUnaligned(as: UInt32.self)
        return Float(bigEndian ? UInt32(bigEndian: v) : UInt32(littleEndian: v))
    case .float32:
        let v = p.loadUnaligned(as: UInt32.self)
        return Float(bitPattern: bigEndian ? UInt32(bigEndian: v) : UInt32(littleEndian: v))
    case .float64:
        let v = p.loadUnaligned(as: UInt64.self)
        return Float(Double(bitPattern: bigEndian ? UInt64(bigEndian: v) : UInt64(littleEndian: v)))
    }
}

/// Which vertex properties fill which tensor, checked for completeness.
private struct VertexLayout {
    /// Indices into the vertex properties, in the order of `groups`' columns.
    var wanted: [Int] = []
    /// (group, first column in `wanted`, width)
    var groups: [(name: String, start: Int, width: Int)] = []

    init(_ properties: [(name: String, type: PLYType)], fail: (MediaError.Code, String) -> MediaError) throws {
        let index = Dictionary(properties.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        func add(_ group: String, _ names: [String]) {
            groups.append((group, wanted.count, names.count))
            wanted += names.map { index[$0]! }
        }
        /// The properties prefix0, prefix1, … present, which must be numbered without gaps.
        func numbered(_ prefix: String) throws -> [String] {
            let numbers = properties.compactMap { p -> Int? in
                guard p.name.hasPrefix(prefix) else { return nil }
                return Int(p.name.dropFirst(prefix.count))
            }.sorted()
            for (i, k) in numbers.enumerated() where i != k {
                throw fail(.corrupt, "the properties \(prefix)* skip \(prefix)\(i) (found \(numbers.map { "\(prefix)\($0)" }.prefix(6).joined(separator: ", "))…)")
            }
            return numbers.map { "\(prefix)\($0)" }
        }
        /// All of `names` or none of them.
        func allOrNone(_ names: [String], _ what: String) throws -> Bool {
            let present = names.filter { index[$0] != nil }
            if present.isEmpty { return false }
            if present.count != names.count {
                let missing = names.filter { index[$0] == nil }
                throw fail(.corrupt, "\(what) is incomplete: missing \(missing.map { "'\($0)'" }.joined(separator: ", "))")
            }
            return true
        }

        for required in ["x", "y", "z", "opacity"] where index[required] == nil {
            throw fail(.corrupt, "the vertex element has no '\(required)' property")
        }
        add("means", ["x", "y", "z"])
        add("opacity", ["opacity"])
        let scales = try numbered("scale_")
        guard scales.count == 3 || scales.count == 1 else {
            throw fail(.corrupt, scales.isEmpty ? "the vertex element has no 'scale_0' property"
                                              : "expected scale_0..2 (or only scale_0 for isotropic Gaussians), found \(scales.count)")
        }
        add("scales", scales)
        if try allOrNone(["rot_0", "rot_1", "rot_2", "rot_3"], "the rotation rot_0..3") {
            add("quats", ["rot_0", "rot_1", "rot_2", "rot_3"])
        }
        if try allOrNone(["nx", "ny", "nz"], "the normal nx ny nz") { add("normals", ["nx", "ny", "nz"]) }
        if try allOrNone(["f_dc_0", "f_dc_1", "f_dc_2"], "the colour f_dc_0..2") { add("dc", ["f_dc_0", "f_dc_1", "f_dc_2"]) }
        let rest = try numbered("f_rest_")
        if !rest.isEmpty { add("rest", rest) }
        let features = try numbered("f_feat_")
        if !features.isEmpty { add("features", features) }
    }

    func assemble(_ columns: [Float], count n: Int) -> GaussianPLY {
        let w = wanted.count
        var tensors: [String: Tensor] = [:]
        columns.withUnsafeBufferPointer { columns in
            for g in groups {
                tensors[g.name] = Tensor(shape: g.name == "opacity" ? [n] : [n, g.width]) { t in
                    for v in 0..<n { for k in 0..<g.width { t[v * g.width + k] = columns[v * w + g.start + k] } }
                }
            }
        }
        return GaussianPLY(means: tensors["means"]!, normals: tensors["normals"], sphericalHarmonicsDC: tensors["dc"],
                           sphericalHarmonicsRest: tensors["rest"], opacityLogits: tensors["opacity"]!,
                           logScales: tensors["scales"]!, quats: tensors["quats"], features: tensors["features"])
    }
}

/// Whitespace-separated tokens of an ASCII PLY body.
private struct ASCIIScanner {
    let bytes: UnsafeRawBufferPointer
    var position: Int

    static func isSpace(_ b: UInt8) -> Bool { b == 32 || b == 9 || b == 10 || b == 13 }

    mutating func next() -> Substring? {
        while position < bytes.count && Self.isSpace(bytes[position]) { position += 1 }
        guard position < bytes.count else { return nil }
        let start = position
        while position < bytes.count && !Self.isSpace(bytes[position]) { position += 1 }
        return Substring(decoding: bytes[start..<position], as: UTF8.self)
    }

    mutating func skipLine() {
        while position < bytes.count && Self.isSpace(bytes[position]) { position += 1 }
        while position < bytes.count && bytes[position] != 10 { position += 1 }
    }
}

// MARK: - Writing

extension GaussianPLY {
    /// The property names and values in file order: x y z, nx ny nz, f_dc_*, f_rest_*, opacity,
    /// scale_*, rot_*, f_feat_* (the 3DGS reference order, pgflow's features last).
    private var columns: [(names: [String], tensor: Tensor)] {
        var c: [(names: [String], tensor: Tensor)] = [(["x", "y", "z"], means)]
        if let normals { c.append((["nx", "ny", "nz"], normals)) }
        if let sphericalHarmonicsDC { c.append((["f_dc_0", "f_dc_1", "f_dc_2"], sphericalHarmonicsDC)) }
        if let r = sphericalHarmonicsRest { c.append(((0..<r.shape[1]).map { "f_rest_\($0)" }, r)) }
        c.append((["opacity"], opacityLogits))
        c.append(((0..<logScales.shape[1]).map { "scale_\($0)" }, logScales))
        if let quats { c.append((["rot_0", "rot_1", "rot_2", "rot_3"], quats)) }
        if let f = features { c.append(((0..<f.shape[1]).map { "f_feat_\($0)" }, f)) }
        return c
    }

    /// The file's bytes.
    public func encoded(format: Format = .binaryLittleEndian) -> Data {
        let cols = columns
        let names = cols.flatMap(\.names)
        var header = "ply\nformat \(format.rawValue) 1.0\ncomment written by pgflow\nelement vertex \(count)\n"
        for name in names { header += "property float \(name)\n" }
        header += "end_header\n"
        var data = Data(header.utf8)
        let n = count, w = names.count
        var row = [Float](repeating: 0, count: n * w)
        var k = 0
        for col in cols {
            let width = col.names.count
            col.tensor.withUnsafeBufferPointer { t in
                for v in 0..<n { for j in 0..<width { row[v * w + k + j] = t[v * width + j] } }
            }
            k += width
        }
        switch format {
        case .ascii:
            var text = ""
            text.reserveCapacity(n * w * 10)
            for v in 0..<n {
                for j in 0..<w {
                    if j > 0 { text += " " }
                    text += "\(row[v * w + j])"   // shortest text that reads back to the same Float
                }
                text += "\n"
            }
            data.append(contentsOf: text.utf8)
        case .binaryLittleEndian, .binaryBigEndian:
            let big = format == .binaryBigEndian
            let bits = row.map { big ? $0.bitPattern.bigEndian : $0.bitPattern.littleEndian }
            bits.withUnsafeBytes { data.append(contentsOf: $0) }
        }
        return data
    }

    /// Writes atomically: a temporary file beside `url`, renamed into place when complete.
    public func write(to url: URL, format: Format = .binaryLittleEndian) throws {
        try AtomicWrite.write(encoded(format: format), to: url)
    }
}
