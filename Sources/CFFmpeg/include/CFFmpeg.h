#pragma once
// FFmpeg's headers for Swift, with what Swift cannot import re-declared below. The libraries are
// not linked: loader.c opens them on first use (see there why).
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

/// Opens FFmpeg's libraries (once per process). NULL when they are ready, else why not.
const char *pg_ffmpeg_load(void);

// AVERROR(e) and AVERROR_EOF are function-like/compound macros that Swift cannot import.
static inline int pg_averror(int e) { return AVERROR(e); }
static inline int pg_averror_eof(void) { return AVERROR_EOF; }
// The FFERRTAG-built codes are macro expressions Swift cannot import; errors are mapped by them.
static inline int pg_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }
static inline int pg_averror_decoder_not_found(void) { return AVERROR_DECODER_NOT_FOUND; }
static inline int pg_averror_encoder_not_found(void) { return AVERROR_ENCODER_NOT_FOUND; }
static inline int pg_averror_demuxer_not_found(void) { return AVERROR_DEMUXER_NOT_FOUND; }
static inline int pg_averror_muxer_not_found(void) { return AVERROR_MUXER_NOT_FOUND; }
static inline int pg_averror_stream_not_found(void) { return AVERROR_STREAM_NOT_FOUND; }
static inline int pg_averror_patchwelcome(void) { return AVERROR_PATCHWELCOME; }
// AV_NOPTS_VALUE is an INT64_C(...) expression macro.
static inline int64_t pg_av_nopts_value(void) { return AV_NOPTS_VALUE; }
// AV_TIME_BASE_Q is a compound literal.
static inline AVRational pg_av_time_base_q(void) { return AV_TIME_BASE_Q; }
// av_err2str is a macro around a stack buffer; give Swift a caller-owned buffer instead.
static inline void pg_av_strerror(int err, char *buf, size_t size) { av_strerror(err, buf, size); }
// AV_PIX_FMT_RGB48 / RGBA64 are AV_PIX_FMT_NE(...) macros choosing the host's byte order, which
// is what Swift's UInt16 loads expect.
static inline enum AVPixelFormat pg_pix_fmt_rgb48(void) { return AV_PIX_FMT_RGB48; }
static inline enum AVPixelFormat pg_pix_fmt_rgba64(void) { return AV_PIX_FMT_RGBA64; }
// AVFrame.data/linesize are fixed C arrays (Swift tuples); these read one plane without tuple juggling.
static inline uint8_t *pg_frame_plane(const AVFrame *f, int i) { return f->data[i]; }
static inline int pg_frame_linesize(const AVFrame *f, int i) { return f->linesize[i]; }
// A stream's display matrix (9 × int32, 16.16 fixed point) or NULL: stream side data up to
// FFmpeg 6.0, the codec parameters' coded side data from libavcodec 60.29 on.
#include <libavutil/display.h>
#include <libavcodec/version.h>
static inline const int32_t *pg_stream_display_matrix(const AVStream *st) {
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
    const AVPacketSideData *sd = av_packet_side_data_get(st->codecpar->coded_side_data,
                                                         st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
    return sd && sd->size >= 36 ? (const int32_t *)sd->data : NULL;
#else
    size_t size = 0;
    const uint8_t *d = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    return d && size >= 36 ? (const int32_t *)d : NULL;
#endif
}
// Gives a stream a display matrix made by av_display_rotation_set(degrees) (which
// av_display_rotation_get reads back as -degrees), mirrored when `hflip`, as phones tag portrait
// video; for tests that make rotated clips. 0 on success.
static inline int pg_stream_set_display_rotation(AVStream *st, double degrees, int hflip) {
    int32_t *m = (int32_t *)av_malloc(9 * sizeof(int32_t));
    if (!m) return AVERROR(ENOMEM);
    av_display_rotation_set(m, degrees);
    if (hflip) av_display_matrix_flip(m, 1, 0);
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
    AVPacketSideData *sd = av_packet_side_data_add(&st->codecpar->coded_side_data, &st->codecpar->nb_coded_side_data,
                                                   AV_PKT_DATA_DISPLAYMATRIX, m, 9 * sizeof(int32_t), 0);
    if (!sd) { av_free(m); return AVERROR(ENOMEM); }
    return 0;
#else
    int r = av_stream_add_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, (uint8_t *)m, 9 * sizeof(int32_t));
    if (r < 0) av_free(m);
    return r;
#endif
}
