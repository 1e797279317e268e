internal import CFFmpeg
import Foundation

/// One video stream of one file, decoded in presentation order through libavformat/libavcodec.
/// Owns its C objects and frees them in `deinit`; used by one thread at a time.
final class FFmpegDecoder {
    let path: String
    private(set) var info: VideoInfo
    private var format: UnsafeMutablePointer<AVFormatContext>?
    private var codec: UnsafeMutablePointer<AVCodecContext>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private(set) var frame: UnsafeMutablePointer<AVFrame>?
    private var streamIndex: Int32 = -1
    private var draining = false
    /// Seconds per timestamp tick of the video stream, and the timestamp of its first frame.
    private var secondsPerTick = 0.0
    private var startTick: Int64?
    /// Why demuxing stopped early, kept to explain a truncated file.
    private(set) var readFailure: String?

    init(path: String, threads: Int) throws {
        try openFFmpeg(for: path)
        self.path = path
        info = VideoInfo(path: path, width: 0, height: 0, fps: VideoInfo.defaultFPS, frameCount: 0, duration: 0,
                         codec: "", pixelFormat: "", hasAlpha: false, pixelAspect: 1, isImageSequence: false)
        var fmt: UnsafeMutablePointer<AVFormatContext>?
        try ffCheck(avformat_open_input(&fmt, path, nil, nil), path, .open)
        format = fmt
        do {
            try ffCheck(avformat_find_stream_info(fmt, nil), path, .open)
            if fmt!.pointee.nb_streams == 0 {
                // What FFmpeg makes of a video with no frames, and of a file cut inside its header.
                throw MediaError.noFrames(path, "it contains no video frames (FFmpeg finds no streams in it; "
                                          + "the file may be truncated)")
            }
            var decoder: UnsafePointer<AVCodec>?
            let index = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0)
            if index < 0 {
                let streams = (0..<Int(fmt!.pointee.nb_streams)).map { fmt!.pointee.streams[$0]!.pointee.codecpar.pointee }
                let video = streams.first { $0.codec_type == AVMEDIA_TYPE_VIDEO }
                if let video, video.codec_id != AV_CODEC_ID_NONE, index == pg_averror_decoder_not_found() {
                    throw MediaError.ffmpeg(index, path: path, stage: .openCodec,
                                            detail: String(cString: avcodec_get_name(video.codec_id)))
                }
                if video != nil || streams.contains(where: { $0.codec_type == AVMEDIA_TYPE_DATA
                                                             || $0.codec_type == AVMEDIA_TYPE_UNKNOWN }) {
                    // A track FFmpeg could not finish setting up, as in a file cut inside its header.
                    throw MediaError(.truncated, path: path, "Cannot read '\(path)': its video stream is incomplete; "
                                     + "the file is truncated or damaged")
                }
                if index == pg_averror_stream_not_found() {
                    throw MediaError(.noVideoStream, path: path, "Cannot read '\(path)': it has no video stream")
                }
                try ffCheck(index, path, .open)
            }
            let stream = fmt!.pointee.streams[Int(index)]!
            let par = stream.pointee.codecpar!
            let codecName = String(cString: avcodec_get_name(par.pointee.codec_id))
            streamIndex = index
            guard let decoder else { throw MediaError.ffmpeg(pg_averror_decoder_not_found(), path: path, stage: .openCodec, detail: codecName) }
            // Only the video stream is read; audio and subtitle packets are dropped by the demuxer.
            for i in 0..<Int(fmt!.pointee.nb_streams) where i != Int(index) {
                fmt!.pointee.streams[i]!.pointee.discard = AVDISCARD_ALL
            }
            codec = avcodec_alloc_context3(decoder)
            try ffCheck(avcodec_parameters_to_context(codec, par), path, .openCodec, detail: codecName)
            codec!.pointee.thread_count = Int32(max(1, threads))
            codec!.pointee.pkt_timebase = stream.pointee.time_base
            secondsPerTick = av_q2d(stream.pointee.time_base)
            if stream.pointee.start_time != pg_av_nopts_value() { startTick = stream.pointee.start_time }
            try ffCheck(avcodec_open2(codec, decoder, nil), path, .openCodec, detail: codecName)
            packet = av_packet_alloc()
            frame = av_frame_alloc()

            let width = Int(par.pointee.width), height = Int(par.pointee.height)
            guard width > 0, height > 0 else {
                throw MediaError(.badSize, path: path, "Cannot read '\(path)': its video stream reports a picture size of \(width)×\(height)")
            }
            let fps = Self.rate(stream.pointee.avg_frame_rate) ?? Self.rate(stream.pointee.r_frame_rate) ?? VideoInfo.defaultFPS
            var count = Int(stream.pointee.nb_frames)
            if count <= 0 { count = try Self.countFrames(path: path, streamIndex: index) }
            guard count > 0 else { throw MediaError.noFrames(path) }
            let pixFmt = AVPixelFormat(rawValue: par.pointee.format)
            let desc = av_pix_fmt_desc_get(pixFmt)
            let sar = stream.pointee.sample_aspect_ratio.num > 0 ? stream.pointee.sample_aspect_ratio : par.pointee.sample_aspect_ratio
            info = VideoInfo(
                path: path, width: width, height: height, fps: fps, frameCount: count,
                duration: Double(count) / fps, codec: codecName,
                pixelFormat: av_get_pix_fmt_name(pixFmt).map { String(cString: $0) } ?? "unknown",
                hasAlpha: desc.map { $0.pointee.flags & UInt64(AV_PIX_FMT_FLAG_ALPHA) != 0 } ?? false,
                pixelAspect: sar.num > 0 && sar.den > 0 ? Double(sar.num) / Double(sar.den) : 1,
                isImageSequence: false)
            if let m = pg_stream_display_matrix(stream) {
                let matrix = Array(UnsafeBufferPointer(start: m, count: 9))
                let angle = av_display_rotation_get(m)
                if angle.isFinite { info.orientation = Orientation(displayMatrix: matrix, rotation: angle) }
            }
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    private func close() {
        av_frame_free(&frame)
        av_packet_free(&packet)
        avcodec_free_context(&codec)
        avformat_close_input(&format)
    }

    /// Decodes the next picture into `frame`; false at the end of the stream.
    func decodeNext() throws -> Bool {
        while true {
            let rc = avcodec_receive_frame(codec, frame)
            if rc == 0 { return true }
            if rc == pg_averror_eof() { return false }
            if rc != pg_averror(EAGAIN) { throw MediaError.ffmpeg(rc, path: path, stage: .decode) }
            if draining { return false }
            let r = av_read_frame(format, packet)
            if r < 0 {
                // End of file, or a read error at a cut-off file: decode what was read, then stop.
                if r != pg_averror_eof() { readFailure = "FFmpeg: " + MediaError.ffmpegMessage(r) }
                draining = true
                _ = avcodec_send_packet(codec, nil)
                continue
            }
            defer { av_packet_unref(packet) }
            if packet!.pointee.stream_index != streamIndex { continue }
            let partial = packet!.pointee.flags & AV_PKT_FLAG_CORRUPT != 0
            let s = avcodec_send_packet(codec, packet)
            if s < 0 && s != pg_averror(EAGAIN) {
                if partial {
                    // The demuxer read less than the packet's size: the file stops here.
                    readFailure = "FFmpeg: " + MediaError.ffmpegMessage(s)
                    draining = true
                    _ = avcodec_send_packet(codec, nil)
                    continue
                }
                throw MediaError.ffmpeg(s, path: path, stage: .decode)
            }
        }
    }

    /// Presentation time of the frame just decoded, in seconds from the stream's start; nil when
    /// the stream carries no timestamps.
    func frameTime() -> Double? {
        let ts = frame!.pointee.best_effort_timestamp
        guard ts != pg_av_nopts_value() else { return nil }
        if startTick == nil { startTick = ts }
        return Double(ts - startTick!) * secondsPerTick
    }

    private static func rate(_ r: AVRational) -> Double? {
        r.num > 0 && r.den > 0 ? Double(r.num) / Double(r.den) : nil
    }

    /// Counts the stream's packets without decoding, for containers that record no frame count
    /// (Matroska/WebM). Packets the demuxer marks as discarded (edit lists) are not shown frames.
    private static func countFrames(path: String, streamIndex: Int32) throws -> Int {
        var fmt: UnsafeMutablePointer<AVFormatContext>?
        try ffCheck(avformat_open_input(&fmt, path, nil, nil), path, .open)
        defer { avformat_close_input(&fmt) }
        for i in 0..<Int(fmt!.pointee.nb_streams) where i != Int(streamIndex) {
            fmt!.pointee.streams[i]!.pointee.discard = AVDISCARD_ALL
        }
        var pkt = av_packet_alloc()
        defer { av_packet_free(&pkt) }
        var count = 0
        while av_read_frame(fmt, pkt) >= 0 {
            if pkt!.pointee.stream_index == streamIndex && pkt!.pointee.flags & AV_PKT_FLAG_DISCARD == 0 { count += 1 }
            av_packet_unref(pkt)
        }
        return count
    }
}
