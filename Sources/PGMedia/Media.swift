/// Media input/output on FFmpeg's libraries (video) and libpng (images).
public enum Media {}
