import CMemory

/// How a pgflow process holds its large buffers (issue 16).
///
/// A 512² frame of 32 features is 32 MB, above glibc's largest mmap threshold, so by default
/// every such buffer is mapped fresh and unmapped when freed: each training step page-faults
/// its images, cotangents and gradients in again. Measured on a 100k-Gaussian scene, that was
/// a third of the time outside the splat kernel. Served from the heap, a step reuses the pages
/// the last one freed.
public enum LargeBuffers {
    /// Call once, first thing, from a command's entry point: it changes the whole process's
    /// allocator. Freed memory up to 1 GiB stays mapped for reuse; the peak is unchanged.
    @discardableResult
    public static func reuse() -> Bool {
        pg_reuse_large_buffers(1 << 30) == 1
    }
}
