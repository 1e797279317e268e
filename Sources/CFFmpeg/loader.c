// FFmpeg, opened when pgflow first touches a video instead of when the process starts.
//
// libavcodec and libavformat pull in ~130 shared libraries (x265, aom, GTK's image stack, ...):
// linking them made every pgflow process spend ~30 ms in the dynamic loader, 60% of a
// `pgflow validate`, though most commands never decode a frame. Here the four libraries are
// dlopen'ed on first use, and each FFmpeg function pgflow calls is defined as a thin forwarder
// to the real one. The forwarders are checked against FFmpeg's own headers (a wrong signature
// does not compile) and hidden, so they never interpose on FFmpeg's calls between its libraries.

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CFFmpeg.h"

#define PG_STR2(x) #x
#define PG_STR(x) PG_STR2(x)
#define PG_SONAME(lib, major) "lib" lib ".so." PG_STR(major)

// Every forwarded function: library, return type, name, parameters, argument names.
// `R` returns a value, `V` returns nothing.
#define PG_FFMPEG_FUNCTIONS(R, V) \
    R(avutil, AVFrame *, av_frame_alloc, (void), ()) \
    V(avutil, av_frame_free, (AVFrame **frame), (frame)) \
    R(avutil, int, av_frame_get_buffer, (AVFrame *frame, int align), (frame, align)) \
    R(avutil, int, av_frame_make_writable, (AVFrame *frame), (frame)) \
    R(avutil, const char *, av_get_pix_fmt_name, (enum AVPixelFormat pix_fmt), (pix_fmt)) \
    R(avutil, const AVPixFmtDescriptor *, av_pix_fmt_desc_get, (enum AVPixelFormat pix_fmt), (pix_fmt)) \
    V(avutil, av_log_set_level, (int level), (level)) \
    R(avutil, int, av_opt_set, (void *obj, const char *name, const char *val, int search_flags), (obj, name, val, search_flags)) \
    V(avutil, av_dict_free, (AVDictionary **m), (m)) \
    R(avutil, int, av_dict_set, (AVDictionary **pm, const char *key, const char *value, int flags), (pm, key, value, flags)) \
    R(avutil, AVRational, av_d2q, (double d, int max), (d, max)) \
    R(avutil, double, av_display_rotation_get, (const int32_t matrix[9]), (matrix)) \
    V(avutil, av_display_rotation_set, (int32_t matrix[9], double angle), (matrix, angle)) \
    V(avutil, av_display_matrix_flip, (int32_t matrix[9], int hflip, int vflip), (matrix, hflip, vflip)) \
    R(avutil, int, av_strerror, (int errnum, char *errbuf, size_t errbuf_size), (errnum, errbuf, errbuf_size)) \
    R(avutil, void *, av_malloc, (size_t size), (size)) \
    V(avutil, av_free, (void *ptr), (ptr)) \
    R(avcodec, AVPacket *, av_packet_alloc, (void), ()) \
    V(avcodec, av_packet_free, (AVPacket **pkt), (pkt)) \
    V(avcodec, av_packet_unref, (AVPacket *pkt), (pkt)) \
    V(avcodec, av_packet_rescale_ts, (AVPacket *pkt, AVRational tb_src, AVRational tb_dst), (pkt, tb_src, tb_dst)) \
    R(avcodec, AVCodecContext *, avcodec_alloc_context3, (const AVCodec *codec), (codec)) \
    V(avcodec, avcodec_free_context, (AVCodecContext **avctx), (avctx)) \
    R(avcodec, const AVCodec *, avcodec_find_encoder_by_name, (const char *name), (name)) \
    R(avcodec, const char *, avcodec_get_name, (enum AVCodecID id), (id)) \
    R(avcodec, int, avcodec_open2, (AVCodecContext *avctx, const AVCodec *codec, AVDictionary **options), (avctx, codec, options)) \
    R(avcodec, int, avcodec_parameters_copy, (AVCodecParameters *dst, const AVCodecParameters *src), (dst, src)) \
    R(avcodec, int, avcodec_parameters_from_context, (AVCodecParameters *par, const AVCodecContext *codec), (par, codec)) \
    R(avcodec, int, avcodec_parameters_to_context, (AVCodecContext *codec, const AVCodecParameters *par), (codec, par)) \
    R(avcodec, int, avcodec_send_packet, (AVCodecContext *avctx, const AVPacket *avpkt), (avctx, avpkt)) \
    R(avcodec, int, avcodec_receive_frame, (AVCodecContext *avctx, AVFrame *frame), (avctx, frame)) \
    R(avcodec, int, avcodec_send_frame, (AVCodecContext *avctx, const AVFrame *frame), (avctx, frame)) \
    R(avcodec, int, avcodec_receive_packet, (AVCodecContext *avctx, AVPacket *avpkt), (avctx, avpkt)) \
    PG_SIDE_DATA(R, V) \
    R(avformat, int, avformat_open_input, (AVFormatContext **ps, const char *url, const AVInputFormat *fmt, AVDictionary **options), (ps, url, fmt, options)) \
    R(avformat, int, avformat_find_stream_info, (AVFormatContext *ic, AVDictionary **options), (ic, options)) \
    V(avformat, avformat_close_input, (AVFormatContext **s), (s)) \
    R(avformat, int, av_find_best_stream, (AVFormatContext *ic, enum AVMediaType type, int wanted_stream_nb, int related_stream, const AVCodec **decoder_ret, int flags), (ic, type, wanted_stream_nb, related_stream, decoder_ret, flags)) \
    R(avformat, int, av_read_frame, (AVFormatContext *s, AVPacket *pkt), (s, pkt)) \
    R(avformat, int, avformat_alloc_output_context2, (AVFormatContext **ctx, const AVOutputFormat *oformat, const char *format_name, const char *filename), (ctx, oformat, format_name, filename)) \
    V(avformat, avformat_free_context, (AVFormatContext *s), (s)) \
    R(avformat, AVStream *, avformat_new_stream, (AVFormatContext *s, const AVCodec *c), (s, c)) \
    R(avformat, int, avformat_write_header, (AVFormatContext *s, AVDictionary **options), (s, options)) \
    R(avformat, int, av_interleaved_write_frame, (AVFormatContext *s, AVPacket *pkt), (s, pkt)) \
    R(avformat, int, av_write_trailer, (AVFormatContext *s), (s)) \
    R(avformat, int, avio_open, (AVIOContext **s, const char *url, int flags), (s, url, flags)) \
    R(avformat, int, avio_closep, (AVIOContext **s), (s)) \
    R(swscale, struct SwsContext *, sws_getContext, (int srcW, int srcH, enum AVPixelFormat srcFormat, int dstW, int dstH, enum AVPixelFormat dstFormat, int flags, SwsFilter *srcFilter, SwsFilter *dstFilter, const double *param), (srcW, srcH, srcFormat, dstW, dstH, dstFormat, flags, srcFilter, dstFilter, param)) \
    V(swscale, sws_freeContext, (struct SwsContext *swsContext), (swsContext)) \
    R(swscale, int, sws_scale, (struct SwsContext *c, const uint8_t *const srcSlice[], const int srcStride[], int srcSliceY, int srcSliceH, uint8_t *const dst[], const int dstStride[]), (c, srcSlice, srcStride, srcSliceY, srcSliceH, dst, dstStride)) \
    R(swscale, const int *, sws_getCoefficients, (int colorspace), (colorspace)) \
    R(swscale, int, sws_isSupportedInput, (enum AVPixelFormat pix_fmt), (pix_fmt)) \
    R(swscale, int, sws_setColorspaceDetails, (struct SwsContext *c, const int inv_table[4], int srcRange, const int table[4], int dstRange, int brightness, int contrast, int saturation), (c, inv_table, srcRange, table, dstRange, brightness, contrast, saturation))

// The display-matrix side data moved from the stream to the codec parameters in libavcodec 60.29.
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
#define PG_SIDE_DATA(R, V) \
    R(avcodec, const AVPacketSideData *, av_packet_side_data_get, (const AVPacketSideData *sd, int nb_sd, enum AVPacketSideDataType type), (sd, nb_sd, type)) \
    R(avcodec, AVPacketSideData *, av_packet_side_data_add, (AVPacketSideData **sd, int *nb_sd, enum AVPacketSideDataType type, void *data, size_t size, int flags), (sd, nb_sd, type, data, size, flags))
#else
#define PG_SIDE_DATA(R, V) \
    R(avformat, uint8_t *, av_stream_get_side_data, (const AVStream *stream, enum AVPacketSideDataType type, size_t *size), (stream, type, size)) \
    R(avformat, int, av_stream_add_side_data, (AVStream *st, enum AVPacketSideDataType type, uint8_t *data, size_t size), (st, type, data, size))
#endif

// One pointer per function, filled by `load`.
#define PG_POINTER(lib, ret, name, params, args) static __typeof__(name) *pg_real_##name;
#define PG_POINTER_V(lib, name, params, args) static __typeof__(name) *pg_real_##name;
PG_FFMPEG_FUNCTIONS(PG_POINTER, PG_POINTER_V)

static pthread_once_t pg_once = PTHREAD_ONCE_INIT;
static char pg_error[512];   // empty once every library and symbol was found

static void *pg_open(const char *soname) {
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h && !pg_error[0]) {
        const char *why = dlerror();
        snprintf(pg_error, sizeof pg_error, "cannot open %s (%s); install FFmpeg's libraries "
                 "(libavformat, libavcodec, libavutil, libswscale, as Scripts/setup.sh does)", soname, why ? why : "?");
    }
    return h;
}

static void pg_load(void) {
    void *avutil = pg_open(PG_SONAME("avutil", LIBAVUTIL_VERSION_MAJOR));
    void *swscale = pg_open(PG_SONAME("swscale", LIBSWSCALE_VERSION_MAJOR));
    void *avcodec = pg_open(PG_SONAME("avcodec", LIBAVCODEC_VERSION_MAJOR));
    void *avformat = pg_open(PG_SONAME("avformat", LIBAVFORMAT_VERSION_MAJOR));
    if (pg_error[0]) return;
#define PG_BIND(lib, ret, name, params, args) \
    if (!(pg_real_##name = (__typeof__(name) *)dlsym(lib, #name)) && !pg_error[0]) \
        snprintf(pg_error, sizeof pg_error, "lib%s has no %s; pgflow was built against FFmpeg's headers " \
                 "for libavcodec %d, which the installed libraries do not match", #lib, #name, LIBAVCODEC_VERSION_MAJOR);
#define PG_BIND_V(lib, name, params, args) PG_BIND(lib, void, name, params, args)
    PG_FFMPEG_FUNCTIONS(PG_BIND, PG_BIND_V)
}

const char *pg_ffmpeg_load(void) {
    pthread_once(&pg_once, pg_load);
    return pg_error[0] ? pg_error : NULL;
}

// A forwarder reached before `pg_ffmpeg_load` succeeded (a test calling FFmpeg directly, say):
// load now, and stop with the reason if that fails, since the call has no way to report it.
static inline void pg_need(void) {
    const char *error = pg_ffmpeg_load();
    if (error) {
        fprintf(stderr, "pgflow: FFmpeg is not available: %s\n", error);
        abort();
    }
}

#pragma GCC visibility push(hidden)
#define PG_FORWARD(lib, ret, name, params, args) ret name params { pg_need(); return pg_real_##name args; }
#define PG_FORWARD_V(lib, name, params, args) void name params { pg_need(); pg_real_##name args; }
PG_FFMPEG_FUNCTIONS(PG_FORWARD, PG_FORWARD_V)
#pragma GCC visibility pop
