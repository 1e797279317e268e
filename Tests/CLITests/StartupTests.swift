import Foundation
import Testing

/// What a pgflow process pays before it does anything (issue 16).
@Suite struct StartupTests {
    /// FFmpeg and the ~130 libraries behind it cost ~30 ms of dynamic loading, so they are opened
    /// on first use (Sources/CFFmpeg/loader.c). A command that never touches a video must not load
    /// them; glibc's loader names every object it maps when LD_DEBUG=files.
    @Test func validateDoesNotLoadFFmpeg() throws {
        let graphs = repositoryNodes.deletingLastPathComponent().appendingPathComponent("Graphs")
        let r = try pgflow(["validate", "transcode.json"], in: graphs, environment: ["LD_DEBUG": "files"])
        #expect(r.status == 0, "\(r.err.suffix(2000))")
        #expect(r.err.contains("file=libjson-c"), "LD_DEBUG=files printed no loader trace: \(r.err.prefix(500))")
        for lib in ["libavformat", "libavcodec", "libavutil", "libswscale"] {
            #expect(!r.err.contains("file=\(lib)"), "`pgflow validate` loaded \(lib)")
        }
    }
}
