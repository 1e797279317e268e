#pragma once
#include <png.h>
#include <stdlib.h>
#include <string.h>

// The simplified png_image API does its own setjmp/longjmp internally and reports failure as a
// return value plus image->message, so Swift never sees a longjmp across its frames.

// PNG_FORMAT_* are compound macros that Swift cannot import.
static inline unsigned int pg_png_format_gray(void) { return PNG_FORMAT_GRAY; }
static inline unsigned int pg_png_format_ga(void) { return PNG_FORMAT_GA; }
static inline unsigned int pg_png_format_rgb(void) { return PNG_FORMAT_RGB; }
static inline unsigned int pg_png_format_rgba(void) { return PNG_FORMAT_RGBA; }
// PNG_FORMAT_FLAG_LINEAR selects 16-bit samples in the simplified API.
static inline unsigned int pg_png_format_flag_linear(void) { return PNG_FORMAT_FLAG_LINEAR; }
static inline unsigned int pg_png_format_flag_alpha(void) { return PNG_FORMAT_FLAG_ALPHA; }
static inline unsigned int pg_png_format_flag_color(void) { return PNG_FORMAT_FLAG_COLOR; }
// Palette files report this flag; clearing it asks libpng to expand the palette for us.
static inline unsigned int pg_png_format_flag_colormap(void) { return PNG_FORMAT_FLAG_COLORMAP; }
// PNG_IMAGE_VERSION is a macro; the struct must carry it before any call.
static inline unsigned int pg_png_image_version(void) { return PNG_IMAGE_VERSION; }
// PNG_IMAGE_FAILED is a macro over warning_or_error; a warning alone is not a failure.
static inline int pg_png_image_failed(const png_image *image) { return PNG_IMAGE_FAILED(*image); }
