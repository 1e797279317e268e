import Foundation
@testable import PGMedia
import Testing

/// What a `kill -9` leaves mid-write (a hidden staging file nobody will discard) is removed by the
/// next write to the same destination; a staging file of a process that still runs is left alone.
@Suite struct StagedOutputTests {
    /// The pid of a process that has exited (and been reaped).
    static func deadPID() throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run()
        p.waitUntilExit()
        return p.processIdentifier
    }

    @Test func aKilledWritersStagingIsRemovedByTheNextWrite() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let dead = try Self.deadPID()
        let abandoned = ".report.json.partial-\(dead)-1f2e3d"
        let running = ".report.json.partial-1-4c5b6a"            // pid 1 always runs
        let other = ".other.json.partial-\(dead)-777"              // another destination's: not ours to judge
        for name in [abandoned, running, other] { try Data("half".utf8).write(to: dir.file(name)) }
        try AtomicWrite.write(Data("{}".utf8), to: dir.file("report.json"))
        #expect(dir.contents() == [running, other, "report.json"].sorted())
        #expect(try Data(contentsOf: dir.file("report.json")) == Data("{}".utf8))
    }

    @Test func anAbandonedPNGFolderStagingGoesToo() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let abandoned = dir.file(".frames.partial-\(try Self.deadPID())-99")
        try FileManager.default.createDirectory(at: abandoned, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: abandoned.appendingPathComponent("frame_000000.png"))
        let staged = try StagedOutput(destination: dir.file("frames"), folder: true, protecting: [])
        try staged.commit()
        #expect(dir.contents() == ["frames"])
    }
}
