internal import CFFmpeg
import Foundation

/// What pgflow was doing with FFmpeg when a call failed; it decides the wording of the error.
enum FFmpegStage: Sendable {
    case open        // avformat_open_input / avformat_find_stream_info
    case decode      // av_read_frame / avcodec_send_packet / avcodec_receive_frame
    case openCodec   // avcodec_open2 for a decoder
    case createOutput // avformat_alloc_output_context2 / avio_open / avformat_write_header
    case encode      // avcodec_send_frame / avcodec_receive_packet / av_interleaved_write_frame
    case finish      // av_write_trailer / avio_closep
}

extension MediaError {
    /// The one place where FFmpeg's negative return codes become `MediaError`s.
    static func ffmpeg(_ rc: Int32, path: String, stage: FFmpegStage, detail: String? = nil) -> MediaError {
        let cause = "FFmpeg: " + ffmpegMessage(rc)
        let reading = [.open, .decode, .openCodec].contains(stage)
        let errno = -rc
        switch (stage, rc) {
        case (_, pg_averror(ENOENT)) where reading:
            return .notFound(path)
        case (_, pg_averror(EACCES)) where reading, (_, pg_averror(EPERM)) where reading:
            return MediaError(.notMedia, path: path, "Cannot read '\(path)': permission denied", cause: cause)
        case (.open, pg_averror(EISDIR)):
            return MediaError(.notMedia, path: path, "Cannot read '\(path)': it is a folder without PNG frames", cause: cause)
        case (.open, pg_averror_invaliddata()), (.open, pg_averror_demuxer_not_found()),
             (.open, pg_averror_patchwelcome()):
            return MediaError(.notMedia, path: path,
                              "Cannot read '\(path)': it is not a video file FFmpeg can read, or it is truncated",
                              cause: cause)
        case (.openCodec, pg_averror_decoder_not_found()), (.open, pg_averror_decoder_not_found()):
            return MediaError(.codecUnavailable, path: path,
                              "Cannot read '\(path)': this FFmpeg build has no decoder for \(detail ?? "its video codec")",
                              cause: cause)
        case (.open, pg_averror(EIO)):
            // Demuxers report a header cut short as an I/O error.
            return MediaError(.truncated, path: path,
                              "Cannot read '\(path)': reading failed inside its header; the file is truncated or unreadable",
                              cause: cause)
        case (.open, pg_averror_eof()):
            return .noFrames(path, "it ends before its first video frame; the file is empty or truncated")
        case (.decode, pg_averror_invaliddata()):
            return MediaError(.corrupt, path: path,
                              "Cannot read '\(path)': the video data is corrupt\(detail.map { " at \($0)" } ?? "")",
                              cause: cause)
        case (.decode, pg_averror_eof()):
            return MediaError(.truncated, path: path, "Cannot read '\(path)': the file ends unexpectedly", cause: cause)
        case (.createOutput, pg_averror_muxer_not_found()):
            return MediaError(.invalidSetting, path: path,
                              "Cannot write '\(path)': FFmpeg has no container format for its extension", cause: cause)
        case (.createOutput, pg_averror_encoder_not_found()), (.encode, pg_averror_encoder_not_found()):
            return MediaError(.codecUnavailable, path: path,
                              "Cannot write '\(path)': this FFmpeg build has no \(detail ?? "such") encoder", cause: cause)
        case (.createOutput, _) where [EACCES, EPERM, EROFS, ENOSPC, EISDIR, ENOTDIR, ENOENT, EDQUOT].contains(errno),
             (.finish, _) where [EACCES, EPERM, EROFS, ENOSPC, EIO, EDQUOT].contains(errno),
             (.encode, _) where [ENOSPC, EIO, EDQUOT].contains(errno):
            return .unwritable(path, "the file cannot be written", cause: cause)
        default:
            let what: String
            switch stage {
            case .open: what = "Cannot read '\(path)': FFmpeg could not open it"
            case .decode: what = "Cannot read '\(path)': decoding failed\(detail.map { " at \($0)" } ?? "")"
            case .openCodec: what = "Cannot read '\(path)': the decoder for \(detail ?? "its codec") could not be opened"
            case .createOutput: what = "Cannot write '\(path)': \(detail ?? "the encoder or container could not be set up")"
            case .encode: what = "Cannot write '\(path)': encoding failed\(detail.map { " at \($0)" } ?? "")"
            case .finish: what = "Cannot write '\(path)': the file could not be completed"
            }
            return MediaError(.failed, path: path, what, cause: cause)
        }
    }

    /// FFmpeg's own text for a return code, e.g. "Invalid data found when processing input".
    static func ffmpegMessage(_ rc: Int32) -> String {
        var buf = [CChar](repeating: 0, count: 256)
        pg_av_strerror(rc, &buf, buf.count)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Throws the mapped error when an FFmpeg call returns a negative code; passes the value on otherwise.
@discardableResult
func ffCheck(_ rc: Int32, _ path: String, _ stage: FFmpegStage, detail: String? = nil) throws -> Int32 {
    if rc < 0 { throw MediaError.ffmpeg(rc, path: path, stage: stage, detail: detail) }
    return rc
}

/// Opens FFmpeg's libraries on first use (`CFFmpeg/loader.c` says why they are not linked) and
/// quiets them: FFmpeg prints warnings to stderr by itself, while pgflow reports problems through
/// its own errors, so the library stays quiet unless `PGFLOW_FFMPEG_LOG`
/// (quiet|error|warning|info|verbose|debug) asks. Every decoder and encoder calls this first.
func openFFmpeg(for path: String) throws {
    if let why = ffmpegUnavailable {
        throw MediaError(.codecUnavailable, path: path, "Cannot open '\(path)': FFmpeg is not available: \(why)")
    }
}

private let ffmpegUnavailable: String? = {
    if let why = pg_ffmpeg_load() { return String(cString: why) }
    let levels: [String: Int32] = ["quiet": AV_LOG_QUIET, "error": AV_LOG_ERROR, "warning": AV_LOG_WARNING,
                                   "info": AV_LOG_INFO, "verbose": AV_LOG_VERBOSE, "debug": AV_LOG_DEBUG]
    let wanted = ProcessInfo.processInfo.environment["PGFLOW_FFMPEG_LOG"]?.lowercased() ?? "quiet"
    av_log_set_level(levels[wanted] ?? AV_LOG_QUIET)
    return nil
}()
