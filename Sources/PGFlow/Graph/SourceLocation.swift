/// A position in a graph or catalog file, 1-based, counted in characters (UTF-8 sequences).
public struct SourceLocation: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) { self.line = line; self.column = column }
    public var description: String { "\(line):\(column)" }

    /// json-c reports byte offsets; people want line and column.
    public static func of(offset: Int, in bytes: [UInt8]) -> SourceLocation {
        var line = 1, column = 1
        var i = 0
        let end = min(offset, bytes.count)
        while i < end {
            let b = bytes[i]
            if b == UInt8(ascii: "\n") { line += 1; column = 1 }
            else if b & 0xC0 != 0x80 { column += 1 } // count a UTF-8 sequence once, at its lead byte
            i += 1
        }
        return SourceLocation(line: line, column: column)
    }
}

/// One problem found in a file, with where it is: JSON path and line:column.
public struct Diagnostic: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var path: String
    public var location: SourceLocation?
    public var message: String

    public init(file: String, path: String, location: SourceLocation?, message: String) {
        self.file = file
        self.path = path
        self.location = location
        self.message = message
    }

    public var description: String {
        let loc = location.map { ":\($0)" } ?? ""
        let at = path.isEmpty ? "" : "\(path): "
        return "\(file)\(loc): \(at)\(message)"
    }
}

/// Validation found problems: all of them, in file order.
public struct ValidationError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }
    public var description: String {
        let n = diagnostics.count
        return diagnostics.map(\.description).joined(separator: "\n")
            + "\n\(n) problem\(n == 1 ? "" : "s") found."
    }
}
