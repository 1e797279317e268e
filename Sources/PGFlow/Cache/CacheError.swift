/// A cache operation that could not be carried out (writing an entry, hashing an input file).
///
/// Reading never throws: a missing or corrupt entry is a miss. What does throw is reported by
/// the scheduler as is, so `description` is a full sentence naming the file or entry.
public struct CacheError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// A file-system call failed (permissions, disk full, missing file).
        case io
        /// Bytes that should hold an encoded value do not (see `ValueCodec`).
        case malformed
        /// The cache folder itself cannot be created (a read-only graph folder, say).
        case unusable
    }

    public var code: Code
    /// The full sentence shown to the user.
    public var message: String
    /// The file or directory involved, when there is one.
    public var path: String?

    public init(_ code: Code, _ message: String, path: String? = nil) {
        self.code = code
        self.message = message
        self.path = path
    }

    public var description: String { message }
}
