import Foundation
import Testing

/// What a pgflow process pays before it does anything (issue 16).
@Suite struct StartupTests {
    /// FFmpeg and the ~130 libraries behind it cost ~30 ms of dynamic loading, so they are opened
    /// on first use (Sources/CFFmpeg/loader.c); OpenBLAS, loaded, starts a thread that spins for
    /// ~0.1 s (Sources/CBLAS/loader.c). A command that never touches a video or a GEMM must load
    /// neither; glibc's loader names every object it maps when LD_DEBUG=files.
    @Test func validateLoadsNeitherFFmpegNorOpenBLAS() throws {
        let graphs = repositoryNodes.deletingLastPathComponent().appendingPathComponent("Graphs")
        let r = try pgflow(["validate", "transcode.json"], in: graphs, environment: ["LD_DEBUG": "files"])
        #expect(r.status == 0, "\(r.err.suffix(2000))")
        #expect(r.err.contains("file=libjson-c"), "LD_DEBUG=files printed no loader trace: \(r.err.prefix(500))")
        for lib in ["libavformat", "libavcodec", "libavutil", "libswscale", "libopenblas"] {
            #expect(!r.err.contains("file=\(lib)"), "`pgflow validate` loaded \(lib)")
        }
    }
}
