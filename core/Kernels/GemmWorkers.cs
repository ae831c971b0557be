// Long-lived helper threads for Gemm's threads > 1 path. They are woken without allocating, and a helper that
// wakes late (the machine is oversubscribed) finds the work taken and goes back to sleep instead of holding up the caller.
using System.Runtime.ExceptionServices;

namespace DistTrain.Core.Kernels;

/// <summary>Work shared by the caller and the helpers; each participant claims pieces until none are left.</summary>
internal abstract class GemmWork
{
    public abstract void Participate();
}

internal static class GemmWorkers
{
    /// <summary>One parallel product at a time: held by the caller around <see cref="Run"/>. Callers that find it
    /// taken compute alone, which gives the same bits (the partition never changes a result).</summary>
    public static readonly object Gate = new();

    /// <summary>Most helpers ever started; more threads than that would only oversubscribe the cores.</summary>
    public const int MaxHelpers = 63;

    private const int Closed = 1 << 30;
    private static readonly SemaphoreSlim s_wake = new(0);
    private static readonly object s_idle = new();
    private static Thread[] s_threads = [];
    private static GemmWork? s_work;
    // Closed flag | number of helpers inside the current work. Closed between works, so a late helper stays out.
    private static int s_state = Closed;
    private static Exception? s_failure;
    private static long s_helperAllocated;

    /// <summary>Managed bytes allocated by helper threads inside works (for the allocation-free test).</summary>
    public static long HelperAllocatedBytes => Interlocked.Read(ref s_helperAllocated);

    /// <summary>Runs work.Participate() on the caller and on up to <paramref name="helpers"/> helpers that wake
    /// in time; returns once the work is done and no helper is inside it. The caller must hold <see cref="Gate"/>.</summary>
    public static void Run(GemmWork work, int helpers)
    {
        helpers = Math.Min(helpers, MaxHelpers);
        EnsureThreads(helpers);
        s_work = work;
        s_failure = null;
        Volatile.Write(ref s_state, 0);
        s_wake.Release(helpers);
        try
        {
            work.Participate();
        }
        finally
        {
            // Close first: from here a helper that has not joined yet never will, so only joined ones are awaited.
            if (Interlocked.Or(ref s_state, Closed) != 0) WaitForHelpers();
            s_work = null;
        }
        if (s_failure is { } failure) ExceptionDispatchInfo.Throw(failure);
    }

    /// <summary>Spins briefly (a helper usually finishes its last block within microseconds), then blocks on a
    /// monitor, which allocates nothing, unlike the lazily created wait objects of the Slim events.</summary>
    private static void WaitForHelpers()
    {
        var spin = new SpinWait();
        while (Volatile.Read(ref s_state) != Closed && !spin.NextSpinWillYield) spin.SpinOnce();
        lock (s_idle)
            while (Volatile.Read(ref s_state) != Closed) Monitor.Wait(s_idle);
    }

    private static void EnsureThreads(int helpers)
    {
        if (s_threads.Length >= helpers) return;
        var threads = new Thread[helpers];
        Array.Copy(s_threads, threads, s_threads.Length);
        for (int i = s_threads.Length; i < helpers; i++)
        {
            threads[i] = new Thread(Loop) { IsBackground = true, Name = $"disttrain-gemm-{i + 1}" };
            threads[i].Start();
        }
        s_threads = threads;
    }

    private static void Loop()
    {
        Gemm.EnsurePackBuffer(); // up front, so no work ever allocates on a helper
        while (true)
        {
            s_wake.Wait();
            if (!TryJoin()) continue;
            long before = GC.GetAllocatedBytesForCurrentThread();
            try { s_work!.Participate(); }
            catch (Exception e) { Interlocked.CompareExchange(ref s_failure, e, null); }
            Interlocked.Add(ref s_helperAllocated, GC.GetAllocatedBytesForCurrentThread() - before);
            if (Interlocked.Decrement(ref s_state) == Closed)
                lock (s_idle) Monitor.PulseAll(s_idle);
        }
    }

    private static bool TryJoin()
    {
        int state = Volatile.Read(ref s_state);
        while ((state & Closed) == 0)
        {
            int seen = Interlocked.CompareExchange(ref s_state, state + 1, state);
            if (seen == state) return true;
            state = seen;
        }
        return false;
    }
}
