/// The thread budget of the kernels that take no `threads` argument (the loss terms, SSIM,
/// metrics): the node calling them binds it to its run's `--threads`
/// (`KernelThreads.$budget.withValue(context.threads) { … }`); 2 otherwise.
public enum KernelThreads {
    @TaskLocal public static var budget: Int = 2
}
