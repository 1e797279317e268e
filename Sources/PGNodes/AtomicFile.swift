import Foundation
import PGFlow
import PGMedia

/// Small files written the way every pgflow output is (PGMedia's `AtomicWrite`: staged under a
/// hidden name, flushed, renamed), with the failure as a node error.
enum AtomicFile {
    static func write(_ data: Data, to url: URL) throws {
        do { try AtomicWrite.write(data, to: url) } catch { throw OperatorError("\(error)") }
    }
}
