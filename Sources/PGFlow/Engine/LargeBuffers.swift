import CMemory

/// How a pgflow process holds its large buffers (issue 16).
///
/// A 512² frame of 32 features is 32 MB, above glibc's largest mmap threshold, so by default
/// every such buffer is mapped fresh and unmapped when freed: each training step page-faults
/// its images, cotangents and gradients in again. Measured on a 100k-Gaussian scene, that was
/// a third of the time outside the splat kernel. Served from the heap, a step reuses the pages
/// the last one freed.
///
/// The first touch still costs: a fresh `pgflow grad` on that scene took 70k page faults and
/// more system time than user time. So the first 768 MB of heap are backed by 2 MB pages
/// (transparent huge pages, asked for with madvise, which is what this kernel's default
/// "madvise" mode honours): 1.6k faults, and the process went from ~240 to ~175 ms.
public enum LargeBuffers {
    /// Call once, first thing, from a command's entry point: it changes the whole process's
    /// allocator. Freed memory up to 1 GiB stays mapped for reuse; the peak is unchanged (the
    /// huge-page span is address space until touched).
    @discardableResult
    public static func reuse() -> Bool {
        pg_reuse_large_buffers(1 << 30, 768 << 20) == 1
    }
}
