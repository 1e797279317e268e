/// Everything that can go wrong reading or writing video and images.
///
/// The description is one full sentence that names the file and the problem, so the scheduler can
/// show it to the user as is (it adds the node id and frame). C return codes become a
/// `MediaError` in exactly one place per library: `MediaError.ffmpeg` (FFmpeg+Errors.swift) and
/// `MediaError.libpng` (PNGImage.swift).
public struct MediaError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        /// The file or folder does not exist.
        case fileNotFound
        /// The file exists but is not something FFmpeg or libpng can read.
        case notMedia
        /// A media file without a video stream (e.g. audio only).
        case noVideoStream
        /// The file ends before the frames its header promises.
        case truncated
        /// The codec rejected the data.
        case corrupt
        /// Nothing to read or nothing to write.
        case noFrames
        /// A requested frame index past the last frame.
        case rangePastEnd
        /// A pixel layout pgflow cannot convert (decoder output or frame channel count).
        case unsupportedPixelFormat
        /// Zero sizes, odd sizes where the format needs even ones, frames changing size.
        case badSize
        /// The output cannot be created or written.
        case unwritable
        /// The output path names an input being read.
        case overwritesInput
        /// No decoder or encoder for the format in this FFmpeg build.
        case codecUnavailable
        /// A setting that does not fit the rest (e.g. yuv444p with MPEG-4).
        case invalidSetting
        /// Any other failure reported by a library.
        case failed
    }

    public var code: Code
    /// The file or folder concerned, as the user named it (absolute after resolution).
    public var path: String
    /// The sentence without the library's own words, e.g. "Cannot read '/a/b.mp4': the file does not exist".
    public var message: String
    /// The underlying library message, e.g. FFmpeg's "Invalid data found when processing input".
    public var cause: String?

    public init(_ code: Code, path: String, _ message: String, cause: String? = nil) {
        self.code = code
        self.path = path
        self.message = message
        self.cause = cause
    }

    public var description: String {
        var s = message
        if let cause, !cause.isEmpty { s += " (\(cause))" }
        if !s.hasSuffix(".") { s += "." }
        return s
    }
}

// Constructors for the messages, so every site says the same thing the same way.
extension MediaError {
    static func notFound(_ path: String) -> MediaError {
        MediaError(.fileNotFound, path: path, "Cannot read '\(path)': no such file or folder")
    }

    static func noFrames(_ path: String, _ why: String = "it contains no video frames") -> MediaError {
        MediaError(.noFrames, path: path, "Cannot read '\(path)': \(why)")
    }

    static func truncated(_ path: String, decoded: Int, expected: Int, cause: String? = nil) -> MediaError {
        MediaError(.truncated, path: path,
                   "Cannot read '\(path)': the video ends after \(decoded) of the \(expected) frames its header "
                   + "promises; the file is truncated or damaged", cause: cause)
    }

    static func rangePastEnd(_ path: String, frame: Int, available: Int) -> MediaError {
        MediaError(.rangePastEnd, path: path,
                   "Cannot read frame \(frame) of '\(path)': it has only \(available) frame\(available == 1 ? "" : "s")"
                   + (available > 0 ? " (0…\(available - 1))" : ""))
    }

    static func unwritable(_ path: String, _ why: String, cause: String? = nil) -> MediaError {
        MediaError(.unwritable, path: path, "Cannot write '\(path)': \(why)", cause: cause)
    }

    static func badOutput(_ code: Code, _ path: String, _ why: String) -> MediaError {
        MediaError(code, path: path, "Cannot write '\(path)': \(why)")
    }
}
