import Foundation
import PGFlow
import PGTensor

/// Writes per-frame tracking, cameras and (optionally) 2D landmarks as a pgflow tracking file
/// (`"format": "pgflow-tracking"`, version 1), JSON or NPZ by the path's extension, the format the
/// Tracker node imports. See `Nodes/TrackingExport.json` for the layout.
public struct TrackingExport: FrameSink {
    public static let type = "TrackingExport"
    public static let version = 1

    let url: URL

    public init(params: Params) throws {
        url = try params.url("path").standardizedFileURL
        guard ["json", "npz"].contains(url.pathExtension.lowercased()) else {
            throw OperatorError("param 'path' should end in .json or .npz, got '\(url.lastPathComponent)'")
        }
    }

    public func consume(_ frames: FrameStream, inputs: Inputs, context: RunContext) throws -> [String: Value] {
        var collected: [TrackedFrame] = []
        while let (t, frameInputs) = try frames.next() {
            try context.checkCancelled()
            do {
                var landmarks: [Float]?
                if let value = frameInputs["landmarks"] {
                    guard let l = value.tensor, l.rank == 2, l.shape[1] == 2 else {
                        throw OperatorError("input 'landmarks' should be a [L, 2] tensor, got \(value.summary)")
                    }
                    landmarks = l.scalars
                }
                let frame = try TrackedFrame(tracking: try frameInputs.value("tracking"), camera: try frameInputs.value("camera"),
                                             landmarks: landmarks)
                // One clip, one file: what the format could hold per frame must still agree here.
                if let first = collected.first {
                    guard frame.tracking.model == first.tracking.model else {
                        throw OperatorError("tracking model \"\(frame.tracking.model)\" differs from frame 0's \"\(first.tracking.model)\"; a tracking file holds one model")
                    }
                    guard frame.camera.width == first.camera.width && frame.camera.height == first.camera.height else {
                        throw OperatorError("the camera is \(frame.camera.width)×\(frame.camera.height), frame 0's \(first.camera.width)×\(first.camera.height); a tracking file holds one image size")
                    }
                    guard frame.landmarks?.count == first.landmarks?.count else {
                        throw OperatorError("\(frame.landmarks.map { "\($0.count / 2)" } ?? "no") landmarks, frame 0 has \(first.landmarks.map { "\($0.count / 2)" } ?? "none")")
                    }
                }
                collected.append(frame)
            } catch { throw OperatorError("frame \(t): \(error)") }
            context.progress(collected.count, of: frames.count)
        }
        guard let first = collected.first else { throw OperatorError("no frames to write to '\(url.path)'") }
        let data = try TrackingFile.data(collected, model: relativeModelName(first.tracking.model), for: url)
        return ["file": try AtomicFile.write(data, to: url)]
    }

    /// A model file named by an absolute path is written relative to the tracking file's folder, as
    /// the format says; `builtin:` names and relative paths stay as they are.
    func relativeModelName(_ model: String) -> String {
        guard model.hasPrefix("/") else { return model }
        let from = url.deletingLastPathComponent().pathComponents, to = URL(fileURLWithPath: model).standardizedFileURL.pathComponents
        var common = 0
        while common < min(from.count, to.count) && from[common] == to[common] { common += 1 }
        return (Array(repeating: "..", count: from.count - common) + to[common...]).joined(separator: "/")
    }
}
