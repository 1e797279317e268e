/// What a video file or PNG folder holds, read without decoding pictures.
public struct VideoInfo: Sendable, Equatable {
    /// Absolute path of the file or folder.
    public var path: String
    /// Stored picture size in pixels (before any resize).
    public var width: Int
    public var height: Int
    /// Frames per second: the stream's average rate; 25 for PNG folders, which carry no rate.
    public var fps: Double
    /// Number of frames: from the container when it records one (MP4, MOV), else counted.
    public var frameCount: Int
    /// `frameCount / fps` in seconds.
    public var duration: Double
    /// Codec name as FFmpeg spells it (`h264`, `hevc`, `vp9`, `av1`, `mpeg4`, …), or `png`.
    public var codec: String
    /// Stored pixel format as FFmpeg spells it (`yuv420p`, `rgba`, `gray16be`, …).
    public var pixelFormat: String
    /// Whether pictures carry an alpha channel (RGBA PNGs, video codecs with alpha).
    public var hasAlpha: Bool
    /// Width of one pixel relative to its height; not 1 only for anamorphic video.
    public var pixelAspect: Double
    /// True for a folder of PNG files.
    public var isImageSequence: Bool
    /// How stored pictures are turned to be shown upright (the stream's display matrix; phones
    /// record portrait video as landscape frames tagged with a 90° rotation).
    public var orientation: Orientation = .upright

    /// The stored picture size.
    public var size: ImageSize { ImageSize(width: width, height: height) }
    /// The size as shown, after `orientation`.
    public var displaySize: ImageSize { orientation.swapsAxes ? ImageSize(width: height, height: width) : size }

    /// Frames per second used when a source has none: PNG folders, and the rare stream without a rate.
    public static let defaultFPS = 25.0
}
