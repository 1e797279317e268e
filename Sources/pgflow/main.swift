import ArgumentParser
import Foundation
import PGFlow

// The `pgflow` command: see `pgflow --help`.
// A command line that does not parse exits 2, like every other invalid request (the README's
// exit statuses); ArgumentParser's own default for usage errors is 64 (EX_USAGE).
LargeBuffers.reuse()
do {
    var command = try PGFlowCommand.parseAsRoot()
    try command.run()
} catch {
    if PGFlowCommand.exitCode(for: error) == .validationFailure {
        FileHandle.standardError.write(Data((PGFlowCommand.fullMessage(for: error) + "\n").utf8))
        exit(2)
    }
    PGFlowCommand.exit(withError: error)
}
