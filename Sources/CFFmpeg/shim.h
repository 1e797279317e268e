#pragma once
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

// AVERROR(e) and AVERROR_EOF are function-like/compound macros that Swift cannot import.
static inline int pg_averror(int e) { return AVERROR(e); }
static inline int pg_averror_eof(void) { return AVERROR_EOF; }
// AV_NOPTS_VALUE is an INT64_C(...) expression macro.
static inline int64_t pg_av_nopts_value(void) { return AV_NOPTS_VALUE; }
// AV_TIME_BASE_Q is a compound literal.
static inline AVRational pg_av_time_base_q(void) { return AV_TIME_BASE_Q; }
// av_err2str is a macro around a stack buffer; give Swift a caller-owned buffer instead.
static inline void pg_av_strerror(int err, char *buf, size_t size) { av_strerror(err, buf, size); }
