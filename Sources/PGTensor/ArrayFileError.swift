/// Why a `.npy` / `.npz` file could not be read or written.
///
/// One error type for the whole array-file area, so callers (model loaders, importers) can
/// report it as is: the description is a full sentence naming the file and the archive member.
public struct ArrayFileError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        /// The bytes do not start with NumPy's `\x93NUMPY` magic.
        case notNPY
        /// The header dictionary cannot be parsed or lacks `descr` / `fortran_order` / `shape`.
        case badHeader
        /// A dtype pgflow cannot turn into Float32 (strings, objects, structured arrays, complex).
        case unsupportedDType
        /// The array is stored in Fortran (column-major) order.
        case fortranOrder
        /// The data ends before the header or the array it announces.
        case truncated
        /// The zip container is malformed (no end record, bad offsets, bad local header).
        case badArchive
        /// A member uses a zip compression method other than stored or deflate.
        case unsupportedCompression
        /// A member's CRC-32 does not match its contents.
        case checksumMismatch
        /// zlib refused the deflate stream.
        case compression
        /// The requested member is not in the archive.
        case missingMember
        /// Reading or writing the file failed at the file-system level.
        case io
        /// The archive would need ZIP64 (a member or the archive over 4 GiB), which the writer omits.
        case tooLarge
    }

    public var code: Code
    /// What went wrong, as a clause ("the header says Fortran order").
    public var detail: String
    /// The file, when known (a path); nil for in-memory data.
    public var file: String?
    /// The archive member (e.g. `means.npy`), when the problem is inside an `.npz`.
    public var member: String?

    public init(_ code: Code, _ detail: String, file: String? = nil, member: String? = nil) {
        self.code = code
        self.detail = detail
        self.file = file
        self.member = member
    }

    /// The same error with the file / member filled in where it was not known yet, so inner
    /// parsers can throw without knowing where their bytes came from.
    public func at(file: String? = nil, member: String? = nil) -> ArrayFileError {
        var e = self
        if e.file == nil { e.file = file }
        if e.member == nil { e.member = member }
        return e
    }

    public var description: String {
        let what: String
        switch (member, file) {
        case let (m?, f?): what = "member '\(m)' of \(f)"
        case let (m?, nil): what = "archive member '\(m)'"
        case let (nil, f?): what = f
        case (nil, nil): what = "in-memory array data"
        }
        return "Cannot use \(what): \(detail)."
    }
}
