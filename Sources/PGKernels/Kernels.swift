/// Numeric kernels on raw buffers: Splat (tile rasterizer), convolution, image ops.
/// Kernels come as `name` / `nameVJP` pairs; shape contracts are preconditions at entry.
public enum Kernels {}
