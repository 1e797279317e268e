internal import CFFmpeg
import Foundation
import PGTensor

/// One video stream encoded with libavcodec and muxed with libavformat into `filePath`.
/// Pictures arrive as pgflow images, go to packed 16-bit RGB, and swscale converts them to YUV
/// with the BT.601 (below 720 lines) or BT.709 matrix in limited range, tagged in the stream so
/// players and pgflow's own reader use the same matrix back.
final class FFmpegEncoder {
    /// Path that messages name (the destination, not the staging name).
    let path: String
    let size: ImageSize
    private var output: UnsafeMutablePointer<AVFormatContext>?
    private var codec: UnsafeMutablePointer<AVCodecContext>?
    private var stream: UnsafeMutablePointer<AVStream>?
    private var sws: OpaquePointer?
    private var rgbFrame: UnsafeMutablePointer<AVFrame>?
    private var yuvFrame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var nextPTS: Int64 = 0
    private var headerWritten = false

    /// - Parameters:
    ///   - encoderName: FFmpeg encoder: `libx264` or `mpeg4` (with pgflow's quality settings); tests
    ///     also use others (libx265, libvpx-vp9, libaom-av1) at their defaults to make fixtures.
    init(filePath: String, displayPath: String, size: ImageSize, encoderName: String, settings: EncoderSettings) throws {
        try openFFmpeg(for: displayPath)
        path = displayPath
        self.size = size
        do {
            try open(filePath: filePath, encoderName: encoderName, settings: settings)
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    private func open(filePath: String, encoderName: String, settings: EncoderSettings) throws {
        try ffCheck(avformat_alloc_output_context2(&output, nil, nil, filePath), path, .createOutput)
        guard let enc = avcodec_find_encoder_by_name(encoderName) else {
            throw MediaError.ffmpeg(pg_averror_encoder_not_found(), path: path, stage: .createOutput, detail: encoderName)
        }
        guard let st = avformat_new_stream(output, nil), let ctx = avcodec_alloc_context3(enc) else {
            throw MediaError(.failed, path: path, "Cannot write '\(path)': out of memory setting up the encoder")
        }
        stream = st
        codec = ctx
        let rate = Self.rational(settings.fps)
        let pixFmt = settings.chroma == .yuv444p ? AV_PIX_FMT_YUV444P : AV_PIX_FMT_YUV420P
        ctx.pointee.width = Int32(size.width)
        ctx.pointee.height = Int32(size.height)
        ctx.pointee.pix_fmt = pixFmt
        ctx.pointee.time_base = AVRational(num: rate.den, den: rate.num)
        ctx.pointee.framerate = rate
        ctx.pointee.sample_aspect_ratio = AVRational(num: 1, den: 1)
        ctx.pointee.thread_count = Int32(max(1, settings.threads))
        let hd = size.height >= 720
        ctx.pointee.colorspace = hd ? AVCOL_SPC_BT709 : AVCOL_SPC_BT470BG
        ctx.pointee.color_primaries = hd ? AVCOL_PRI_BT709 : AVCOL_PRI_BT470BG
        ctx.pointee.color_trc = hd ? AVCOL_TRC_BT709 : AVCOL_TRC_SMPTE170M
        ctx.pointee.color_range = AVCOL_RANGE_MPEG
        if encoderName == "libx264" {
            av_opt_set(ctx.pointee.priv_data, "preset", settings.preset, 0)
            av_opt_set(ctx.pointee.priv_data, "crf", String(settings.crf), 0)
        } else if encoderName == "mpeg4" {
            // MPEG-4 Part 2 has no CRF; a fixed quantiser is its constant-quality mode.
            ctx.pointee.flags |= AV_CODEC_FLAG_QSCALE
            ctx.pointee.global_quality = FF_QP2LAMBDA * Int32(max(2, min(31, settings.crf / 6)))
        }
        if output!.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER != 0 {
            ctx.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER
        }
        try ffCheck(avcodec_open2(ctx, enc, nil), path, .createOutput, detail: "the \(encoderName) encoder could not be opened")
        try ffCheck(avcodec_parameters_from_context(st.pointee.codecpar, ctx), path, .createOutput)
        st.pointee.time_base = ctx.pointee.time_base
        st.pointee.avg_frame_rate = rate
        st.pointee.r_frame_rate = rate

        if output!.pointee.oformat.pointee.flags & AVFMT_NOFILE == 0 {
            try ffCheck(avio_open(&output!.pointee.pb, filePath, AVIO_FLAG_WRITE), path, .createOutput)
        }
        var options: OpaquePointer?
        // faststart moves the index to the front so players start before the whole file arrives.
        if let name = output!.pointee.oformat.pointee.name, String(cString: name).contains("mp4")
            || String(cString: name).contains("mov") {
            av_dict_set(&options, "movflags", "+faststart", 0)
        }
        let rc = avformat_write_header(output, &options)
        av_dict_free(&options)
        try ffCheck(rc, path, .createOutput)
        headerWritten = true

        let rgbFormat = pg_pix_fmt_rgb48()
        rgbFrame = try FrameConverter.allocateFrame(width: size.width, height: size.height, format: rgbFormat, path: path)
        yuvFrame = try FrameConverter.allocateFrame(width: size.width, height: size.height, format: pixFmt, path: path)
        guard let s = sws_getContext(Int32(size.width), Int32(size.height), rgbFormat,
                                     Int32(size.width), Int32(size.height), pixFmt,
                                     FrameConverter.quality, nil, nil, nil) else {
            throw MediaError(.unsupportedPixelFormat, path: path, "Cannot write '\(path)': swscale cannot convert RGB to \(settings.chroma.rawValue)")
        }
        sws = s
        let matrix = hd ? SWS_CS_ITU709 : SWS_CS_ITU601
        sws_setColorspaceDetails(s, sws_getCoefficients(SWS_CS_DEFAULT), 1, sws_getCoefficients(matrix), 0,
                                 0, 1 << 16, 1 << 16)
        packet = av_packet_alloc()
    }

    /// Encodes one `[C, H, W]` picture (C = 1, 3 or 4; alpha is dropped) at the next timestamp.
    func encode(_ image: Tensor) throws {
        let rgb = rgbFrame!, yuv = yuvFrame!
        try ffCheck(av_frame_make_writable(rgb), path, .encode)
        let base = UnsafeMutableRawPointer(pg_frame_plane(rgb, 0)!).assumingMemoryBound(to: UInt16.self)
        PixelLayout.packRGB16(image, into: base, rowStride: Int(pg_frame_linesize(rgb, 0)) / 2)
        try ffCheck(av_frame_make_writable(yuv), path, .encode)
        let src = (0..<4).map { UnsafePointer(pg_frame_plane(rgb, Int32($0))) }
        let srcStrides = (0..<4).map { pg_frame_linesize(rgb, Int32($0)) }
        let dst = (0..<4).map { pg_frame_plane(yuv, Int32($0)) }
        let dstStrides = (0..<4).map { pg_frame_linesize(yuv, Int32($0)) }
        try ffCheck(sws_scale(sws, src, srcStrides, 0, Int32(size.height), dst, dstStrides), path, .encode,
                    detail: "the colour conversion of frame \(nextPTS)")
        yuv.pointee.pts = nextPTS
        nextPTS += 1
        try ffCheck(avcodec_send_frame(codec, yuv), path, .encode, detail: "frame \(yuv.pointee.pts)")
        try writePackets()
    }

    /// Flushes delayed frames and completes the container.
    /// Drains the encoder and closes the file; `cancelled` is asked between packets, since a slow
    /// preset's lookahead can hold many seconds of work at the end.
    func finish(cancelled: () -> Bool = { false }) throws {
        try ffCheck(avcodec_send_frame(codec, nil), path, .encode)
        try writePackets(cancelled: cancelled)
        try ffCheck(av_write_trailer(output), path, .finish)
        headerWritten = false
        if output!.pointee.oformat.pointee.flags & AVFMT_NOFILE == 0 {
            try ffCheck(avio_closep(&output!.pointee.pb), path, .finish)
        }
    }

    private func writePackets(cancelled: () -> Bool = { false }) throws {
        while true {
            if cancelled() { throw CancellationError() }
            let rc = avcodec_receive_packet(codec, packet)
            if rc == pg_averror(EAGAIN) || rc == pg_averror_eof() { return }
            try ffCheck(rc, path, .encode)
            let pkt = packet!
            if pkt.pointee.duration == 0 { pkt.pointee.duration = 1 }
            av_packet_rescale_ts(pkt, codec!.pointee.time_base, stream!.pointee.time_base)
            pkt.pointee.stream_index = stream!.pointee.index
            // av_interleaved_write_frame takes ownership of the packet's data and resets it.
            try ffCheck(av_interleaved_write_frame(output, pkt), path, .encode)
        }
    }

    private func close() {
        if let out = output {
            if out.pointee.oformat.pointee.flags & AVFMT_NOFILE == 0 { avio_closep(&out.pointee.pb) }
            avformat_free_context(out)
            output = nil
        }
        avcodec_free_context(&codec)
        av_packet_free(&packet)
        av_frame_free(&rgbFrame)
        av_frame_free(&yuvFrame)
        sws_freeContext(sws)
        sws = nil
    }

    /// A frame rate as an exact fraction: NTSC rates (23.976, 29.97, 59.94) become n·1000/1001,
    /// others the closest fraction with a denominator MPEG-4 accepts (< 2¹⁶).
    static func rational(_ fps: Double) -> AVRational {
        let ntsc = (fps * 1.001).rounded()
        if ntsc >= 1, abs(ntsc * 1000 / 1001 - fps) < 5e-4, abs(fps.rounded() - fps) > 1e-6 {
            return AVRational(num: Int32(ntsc) * 1000, den: 1001)
        }
        return av_d2q(fps, 65535)
    }
}

extension PixelLayout {
    /// `[C, H, W]` (C = 1 gray, 3 RGB, 4 RGBA with alpha ignored) → packed 16-bit RGB rows.
    static func packRGB16(_ t: Tensor, into dst: UnsafeMutablePointer<UInt16>, rowStride: Int) {
        let (c, h, w) = (t.shape[0], t.shape[1], t.shape[2])
        let n = h * w
        let (g, b) = c >= 3 ? (n, 2 * n) : (0, 0)   // gray feeds all three channels
        t.withUnsafeBufferPointer { src in
            for y in 0..<h {
                let row = dst + y * rowStride
                for x in 0..<w {
                    let i = y * w + x
                    row[3 * x] = quantize16(src[i])
                    row[3 * x + 1] = quantize16(src[g + i])
                    row[3 * x + 2] = quantize16(src[b + i])
                }
            }
        }
    }
}
