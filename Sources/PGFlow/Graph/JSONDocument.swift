internal import CJSONC
import Foundation

/// A strict JSON file parsed by json-c, with the line:column of every value and key so that
/// validation can point at the exact place in the user's file.
public struct JSONDocument: Sendable {
    public let file: String
    public let root: JSON
    /// JSON path (`nodes.splat.in.camera`, `stages[0].name`) → where its value starts.
    public let locations: [String: SourceLocation]
    /// JSON path of an object member → where its key starts (for "unknown key" messages).
    public let keyLocations: [String: SourceLocation]
    /// Keys that appeared twice in one object (json-c keeps the last silently).
    public let duplicateKeys: [Diagnostic]

    public func location(_ path: String) -> SourceLocation? { locations[path] }
    public func keyLocation(_ path: String) -> SourceLocation? { keyLocations[path] ?? locations[path] }

    public init(file: String, root: JSON) {
        self.file = file
        self.root = root
        self.locations = [:]
        self.keyLocations = [:]
        self.duplicateKeys = []
    }

    public static func load(_ url: URL) throws -> JSONDocument {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ValidationError([Diagnostic(file: url.path, path: "", location: nil,
                                              message: "cannot read the file: \(error.localizedDescription)")])
        }
        return try parse(data, file: url.path)
    }

    /// Parses `data`; a syntax error throws a `ValidationError` with file:line:column.
    public static func parse(_ data: Data, file: String) throws -> JSONDocument {
        let bytes = [UInt8](data)
        let root = try parseWithJSONC(bytes, file: file)
        // json-c's strict mode still accepts NaN, Infinity, single-quoted strings and duplicate
        // keys; the locator scans the same bytes with strict JSON grammar and records positions.
        var locator = JSONLocator(bytes: bytes, file: file)
        try locator.run()
        return JSONDocument(file: file, root: root, locations: locator.locations,
                            keyLocations: locator.keyLocations, duplicateKeys: locator.duplicates)
    }

    private init(file: String, root: JSON, locations: [String: SourceLocation],
                 keyLocations: [String: SourceLocation], duplicateKeys: [Diagnostic]) {
        self.file = file
        self.root = root
        self.locations = locations
        self.keyLocations = keyLocations
        self.duplicateKeys = duplicateKeys
    }

    private static func parseWithJSONC(_ bytes: [UInt8], file: String) throws -> JSON {
        guard let tok = json_tokener_new_ex(256) else { fatalError("json-c could not allocate a tokener") }
        defer { json_tokener_free(tok) }
        json_tokener_set_flags(tok, Int32(JSON_TOKENER_STRICT))
        // A trailing newline ends a top-level number ("3" alone would leave json-c waiting for
        // more digits); it changes no offsets.
        let terminated = bytes + [0x0A]
        let obj: OpaquePointer? = terminated.withUnsafeBufferPointer { buf in
            buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buf.count) {
                json_tokener_parse_ex(tok, $0, Int32(buf.count))
            }
        }
        let err = json_tokener_get_error(tok)
        let end = Int(json_tokener_get_parse_end(tok))
        guard let obj, err == json_tokener_success else {
            let message: String
            if err == json_tokener_continue || (err == json_tokener_success && obj == nil) {
                message = "unexpected end of file: the JSON is incomplete"
            } else {
                message = "invalid JSON: " + String(cString: json_tokener_error_desc(err))
                    + (end < bytes.count && bytes[end] >= 0x20 && bytes[end] < 0x7F
                       ? " (found '\(Character(UnicodeScalar(bytes[end])))')" : "")
            }
            // json-c's parse end is the offending byte itself.
            let at = err == json_tokener_continue ? bytes.count : end
            throw ValidationError([Diagnostic(file: file, path: "",
                                              location: SourceLocation.of(offset: at, in: bytes),
                                              message: message)])
        }
        defer { json_object_put(obj) }
        // Anything but whitespace after the top-level value is an error in strict JSON.
        var i = end
        while i < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[i]) { i += 1 }
        if i < bytes.count {
            throw ValidationError([Diagnostic(file: file, path: "", location: SourceLocation.of(offset: i, in: bytes),
                                              message: "invalid JSON: unexpected text after the end of the document")])
        }
        return convert(obj)
    }

    private static func convert(_ o: OpaquePointer?) -> JSON {
        guard let o else { return .null }
        switch json_object_get_type(o) {
        case json_type_null: return .null
        case json_type_boolean: return .bool(json_object_get_boolean(o) != 0)
        case json_type_int: return .int(json_object_get_int64(o))
        case json_type_double: return .double(json_object_get_double(o))
        case json_type_string:
            let n = Int(json_object_get_string_len(o))
            let p = json_object_get_string(o)!
            let s = p.withMemoryRebound(to: UInt8.self, capacity: n) {
                String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
            }
            return .string(s)
        case json_type_array:
            let n = json_object_array_length(o)
            return .array((0..<n).map { convert(json_object_array_get_idx(o, $0)) })
        case json_type_object:
            var members: [(key: String, value: JSON)] = []
            var it = json_object_iter_begin(o)
            var end = json_object_iter_end(o)
            while json_object_iter_equal(&it, &end) == 0 {
                let key = String(cString: json_object_iter_peek_name(&it))
                members.append((key, convert(json_object_iter_peek_value(&it))))
                json_object_iter_next(&it)
            }
            return .object(members)
        default: return .null
        }
    }
}
