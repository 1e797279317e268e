import Foundation
import PGFlow
import PGMedia

/// Small files written the way every pgflow output is (PGMedia's `AtomicWrite`: staged under a
/// hidden name, flushed, renamed), with the failure as a node error.
enum AtomicFile {
    /// Writes `data` and returns the File record a node outputs (absolute path and the SHA-256 of
    /// the bytes, hashed from memory: the file is not read back).
    @discardableResult
    static func write(_ data: Data, to url: URL) throws -> Value {
        do { try AtomicWrite.write(data, to: url) } catch { throw OperatorError("\(error)") }
        return .record(["path": .string(url.path), "sha256": .string(sha256Hex(of: data))])
    }
}
