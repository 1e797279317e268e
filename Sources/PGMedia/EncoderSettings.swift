/// How frames are stored.
public enum VideoCodec: String, Sendable, CaseIterable {
    /// H.264 through libx264 (MP4/MOV/MKV); falls back to `mpeg4` when this FFmpeg lacks libx264.
    case h264
    /// MPEG-4 Part 2 through FFmpeg's own encoder; yuv420p only.
    case mpeg4
    /// A folder of PNG files, `frame_000000.png`, 8 or 16 bits per sample.
    case png
}

/// Chroma layout of encoded video. `yuv420p` stores colour at half resolution in both directions
/// and plays everywhere, but needs even frame sizes; `yuv444p` keeps full-resolution colour
/// (H.264 High 4:4:4, not every player) and accepts any size.
public enum ChromaFormat: String, Sendable, CaseIterable {
    case yuv420p, yuv444p
}

public struct EncoderSettings: Sendable, Equatable {
    public var codec: VideoCodec
    /// x264 constant rate factor 0…51 (lower is better, 18 ≈ visually lossless). For the MPEG-4
    /// fallback it is mapped to a fixed quantiser, `max(2, crf / 6)`.
    public var crf: Int
    /// x264 speed/size trade-off, `ultrafast` … `veryslow`.
    public var preset: String
    public var chroma: ChromaFormat
    /// Bits per PNG sample: 8 or 16.
    public var bits: Int
    /// Frames per second written into the file's timestamps.
    public var fps: Double
    /// Encoder threads.
    public var threads: Int

    public init(codec: VideoCodec = .h264, crf: Int = 18, preset: String = "medium", chroma: ChromaFormat = .yuv420p,
                bits: Int = 8, fps: Double = VideoInfo.defaultFPS, threads: Int = 2) {
        self.codec = codec
        self.crf = crf
        self.preset = preset
        self.chroma = chroma
        self.bits = bits
        self.fps = fps
        self.threads = threads
    }

    public static let presets = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]
}
