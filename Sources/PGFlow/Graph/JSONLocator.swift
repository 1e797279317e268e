import Foundation

/// A strict-JSON scanner over the bytes json-c already parsed. It records where every value and
/// key starts, reports duplicate keys, and rejects what json-c's strict mode lets through
/// (NaN, Infinity, single-quoted strings, numbers that overflow a Double).
struct JSONLocator {
    let bytes: [UInt8]
    let file: String
    var i = 0
    var locations: [String: SourceLocation] = [:]
    var keyLocations: [String: SourceLocation] = [:]
    var duplicates: [Diagnostic] = []
    // Line bookkeeping as we go, so positions cost O(1) each.
    private var line = 1
    private var lineStart = 0

    init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    mutating func run() throws {
        skipSpace()
        try value(path: "")
        skipSpace()
        if i < bytes.count { throw fail("unexpected text after the end of the document") }
    }

    private var here: SourceLocation {
        var col = 1
        var k = lineStart
        while k < i { if bytes[k] & 0xC0 != 0x80 { col += 1 }; k += 1 }
        return SourceLocation(line: line, column: col)
    }

    private func fail(_ message: String) -> ValidationError {
        ValidationError([Diagnostic(file: file, path: "", location: SourceLocation.of(offset: i, in: bytes),
                                    message: "invalid JSON: " + message)])
    }

    private mutating func skipSpace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0D: i += 1
            case 0x0A: i += 1; line += 1; lineStart = i
            default: return
            }
        }
    }

    private mutating func value(path: String) throws {
        guard i < bytes.count else { throw fail("unexpected end of file") }
        locations[path] = here
        switch bytes[i] {
        case UInt8(ascii: "{"): try object(path: path)
        case UInt8(ascii: "["): try array(path: path)
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
        case UInt8(ascii: "'"): throw fail("strings must use double quotes")
        case UInt8(ascii: "N"), UInt8(ascii: "I"): throw fail("NaN and Infinity are not JSON numbers")
        default: throw fail("unexpected character '\(Character(UnicodeScalar(bytes[i])))'")
        }
    }

    private mutating func object(path: String) throws {
        i += 1
        skipSpace()
        var seen: [String: SourceLocation] = [:]
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a quoted key") }
            let keyAt = here
            let key = try string()
            let child = path.isEmpty ? key : path + "." + key
            if let first = seen[key] {
                duplicates.append(Diagnostic(file: file, path: child, location: keyAt,
                                             message: "duplicate key \"\(key)\" (first at \(first))"))
            }
            seen[key] = keyAt
            keyLocations[child] = keyAt
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':' after a key") }
            i += 1
            skipSpace()
            try value(path: child)
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of file in an object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func array(path: String) throws {
        i += 1
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return }
        var n = 0
        while true {
            skipSpace()
            try value(path: "\(path)[\(n)]")
            n += 1
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of file in an array") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return }
            throw fail("expected ',' or ']'")
        }
    }

    /// Scans a string and returns its decoded value (keys need it).
    private mutating func string() throws -> String {
        i += 1
        var out = [UInt8]()
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { i += 1; return String(decoding: out, as: UTF8.self) }
            if b < 0x20 { throw fail("control character in a string") }
            if b == UInt8(ascii: "\\") {
                guard i + 1 < bytes.count else { break }
                let e = bytes[i + 1]
                switch e {
                case UInt8(ascii: "u"):
                    guard i + 5 < bytes.count,
                          let v = UInt32(String(decoding: bytes[(i + 2)...(i + 5)], as: UTF8.self), radix: 16)
                    else { throw fail("bad \\u escape") }
                    out.append(contentsOf: Array(String(UnicodeScalar(v).map(Character.init) ?? "\u{FFFD}").utf8))
                    i += 6
                    continue
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                default: throw fail("bad escape in a string")
                }
                i += 2
                continue
            }
            out.append(b)
            i += 1
        }
        throw fail("unterminated string")
    }

    private mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == w else {
            throw fail("expected \(word)")
        }
        i += w.count
    }

    private mutating func number() throws {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        func digits() -> Int {
            let s = i
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
            return i - s
        }
        guard i < bytes.count else { throw fail("bad number") }
        if bytes[i] == UInt8(ascii: "I") { throw fail("NaN and Infinity are not JSON numbers") }
        if bytes[i] == UInt8(ascii: "0") { i += 1 } else if digits() == 0 { throw fail("bad number") }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            if digits() == 0 { throw fail("bad number") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            if digits() == 0 { throw fail("bad number") }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if let d = Double(text), !d.isFinite {
            i = start
            throw fail("number \(text) is too large for a Double")
        }
    }
}
