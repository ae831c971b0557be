namespace DistTrain.Tests.Infrastructure;

/// <summary>Measures what code allocates in its steady state on the calling thread.</summary>
internal static class Allocations
{
    /// <summary>
    /// Runs <paramref name="body"/> twice to warm it up, then measures up to three further runs and returns the fewest
    /// bytes one of them allocated. Code that allocates per call allocates in every run; the runtime's own one-off
    /// allocations (a method compiled at its next tier, on-stack replacement, a type loaded late) land in one run and
    /// are not counted against the code.
    /// </summary>
    public static long SteadyState(Action body) => SteadyState(body, static () => 0);

    /// <summary>
    /// As <see cref="SteadyState(Action)"/>, counting also what <paramref name="otherThreads"/> (a running total of
    /// bytes allocated on the threads the code hands work to) grew by during each measured run.
    /// </summary>
    public static long SteadyState(Action body, Func<long> otherThreads)
    {
        body();
        body();
        long fewest = long.MaxValue;
        for (int run = 0; run < 3 && fewest != 0; run++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread() + otherThreads();
            body();
            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() + otherThreads() - before);
        }
        return fewest;
    }
}
