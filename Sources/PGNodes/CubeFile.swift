import Foundation
import PGFlow
import PGKernels
import PGTensor
import Synchronization

/// Reads Adobe/Resolve `.cube` 3D LUT files: `TITLE`, `LUT_3D_SIZE N`, optional `DOMAIN_MIN` /
/// `DOMAIN_MAX` (or Resolve's `LUT_3D_INPUT_RANGE lo hi`), `#` comments, then N³ lines of
/// `r g b` with red varying fastest. Anything else is rejected with its line number.
public enum CubeFile {
    public static func read(_ url: URL) throws -> ColorLUT {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw OperatorError("cannot read the LUT file \(url.path)")
        }
        return try parse(String(decoding: data, as: UTF8.self), file: url.path)
    }

    public static func parse(_ text: String, file: String) throws -> ColorLUT {
        var size: Int?
        var lo = SIMD3<Float>.zero, hi = SIMD3<Float>.one
        var table: [Float] = []
        func fail(_ line: Int, _ why: String) -> OperatorError { OperatorError("\(file):\(line): \(why)") }
        func triple(_ words: [Substring], _ line: Int) throws -> SIMD3<Float> {
            let v = words.compactMap { Float($0) }
            guard words.count == 3, v.count == 3, v.allSatisfy(\.isFinite) else {
                throw fail(line, "expected three finite numbers, got \"\(words.joined(separator: " "))\"")
            }
            return SIMD3(v[0], v[1], v[2])
        }
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = i + 1
            let content = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard let head = words.first else { continue }
            let rest = Array(words.dropFirst())
            switch head {
            case "TITLE": continue
            case "LUT_1D_SIZE":
                throw fail(line, "1D LUTs are not supported (only LUT_3D_SIZE); convert it to a 3D LUT")
            case "LUT_3D_SIZE":
                guard size == nil else { throw fail(line, "LUT_3D_SIZE given twice") }
                guard table.isEmpty else { throw fail(line, "LUT_3D_SIZE must come before the table") }
                guard rest.count == 1, let n = Int(rest[0]), (2...256).contains(n) else {
                    throw fail(line, "LUT_3D_SIZE must be one integer 2…256, got \"\(rest.joined(separator: " "))\"")
                }
                size = n
            case "DOMAIN_MIN": lo = try triple(rest, line)
            case "DOMAIN_MAX": hi = try triple(rest, line)
            case "LUT_3D_INPUT_RANGE":
                guard rest.count == 2, let a = Float(rest[0]), let b = Float(rest[1]) else {
                    throw fail(line, "LUT_3D_INPUT_RANGE takes two numbers")
                }
                lo = SIMD3(repeating: a); hi = SIMD3(repeating: b)
            default:
                guard Float(head) != nil else { throw fail(line, "unknown keyword \"\(head)\"") }
                guard let n = size else { throw fail(line, "table data before LUT_3D_SIZE") }
                guard table.count < n * n * n * 3 else { throw fail(line, "more than \(n * n * n) entries for LUT_3D_SIZE \(n)") }
                let v = try triple(words, line)
                table += [v.x, v.y, v.z]
            }
        }
        guard let n = size else { throw OperatorError("\(file): no LUT_3D_SIZE line: not a 3D .cube LUT") }
        guard table.count == n * n * n * 3 else {
            throw OperatorError("\(file): \(table.count / 3) entries, but LUT_3D_SIZE \(n) needs \(n * n * n)")
        }
        guard all(lo .< hi) else { throw OperatorError("\(file): DOMAIN_MIN must be below DOMAIN_MAX in every channel") }
        return ColorLUT(size: n, table: table, domainMin: lo, domainMax: hi)
    }
}

/// Editors built into pgflow: no process, no Python. Each has a manifest with `"builtin": true`
/// in `Nodes/plugins` so graphs name and validate it like any other editor.
final class BuiltinEditors: Sendable {
    /// Parsed LUT files by path: a run reads each once, not once per frame (a 17³ LUT is 4913
    /// lines). Its content cannot change during the run: it was hashed into the key at the start.
    private let luts = Mutex<[String: ColorLUT]>([:])

    func edit(_ name: String, image: Tensor, params: [String: JSON]) throws -> Tensor {
        switch name {
        case "lut":
            guard let path = params["lut"]?.string else { throw OperatorError("plugin \"lut\" needs param lut (a .cube file)") }
            let lut = try luts.withLock { $0[path] } ?? {
                let parsed = try CubeFile.read(URL(fileURLWithPath: path))
                luts.withLock { $0[path] = parsed }
                return parsed
            }()
            return lut.apply(image, strength: Float(params["strength"]?.double ?? 1))
        default:
            throw OperatorError("plugin \"\(name)\" is marked builtin, but this build of pgflow has no editor of that name")
        }
    }
}
