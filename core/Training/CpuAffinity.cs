// Binding compute threads to CPUs (Linux sched_setaffinity on the calling thread). Several worker processes on one
// machine otherwise let the scheduler stack two compute threads on one core while another idles, and a synchronous
// step waits for the slowest; bound to disjoint cores they run side by side like local mode's threads.
using System.Runtime.InteropServices;

namespace DistTrain.Core.Training;

public static partial class CpuAffinity
{
    private const int MaskWords = 16; // cpu_set_t: 1024 bits

    public static bool IsSupported => OperatingSystem.IsLinux();

    /// <summary>
    /// Lets the calling thread run only on <paramref name="cpus"/>; false (with the reason) where that is not
    /// possible, e.g. a CPU this process may not use.
    /// </summary>
    public static unsafe bool TryBindCurrentThread(IReadOnlyList<int> cpus, out string error)
    {
        error = "";
        if (!IsSupported)
        {
            error = "binding threads to CPUs is supported on Linux only";
            return false;
        }
        ulong* mask = stackalloc ulong[MaskWords];
        new Span<ulong>(mask, MaskWords).Clear();
        foreach (int cpu in cpus)
        {
            if (cpu is < 0 or >= MaskWords * 64)
            {
                error = $"CPU {cpu} is outside 0..{MaskWords * 64 - 1}";
                return false;
            }
            mask[cpu / 64] |= 1UL << (cpu % 64);
        }
        if (SchedSetAffinity(0, MaskWords * sizeof(ulong), mask) == 0) return true;
        error = $"sched_setaffinity to CPU(s) {string.Join(",", cpus)} failed (errno {Marshal.GetLastPInvokeError()})";
        return false;
    }

    /// <summary>The CPUs the process could use when this type was first touched (before any thread was bound).</summary>
    public static IReadOnlyList<int> ProcessCpus { get; } = Allowed();

    /// <summary>The CPUs the calling thread may run on, in ascending order (0..ProcessorCount-1 where unknown).</summary>
    public static unsafe IReadOnlyList<int> Allowed()
    {
        if (IsSupported)
        {
            ulong* mask = stackalloc ulong[MaskWords];
            if (SchedGetAffinity(0, MaskWords * sizeof(ulong), mask) == 0)
            {
                var cpus = new List<int>();
                for (int cpu = 0; cpu < MaskWords * 64; cpu++)
                    if ((mask[cpu / 64] >> (cpu % 64) & 1) != 0) cpus.Add(cpu);
                if (cpus.Count > 0) return cpus;
            }
        }
        return Enumerable.Range(0, Environment.ProcessorCount).ToList();
    }

    /// <summary>Parses a CPU list such as "0-3,6"; throws UserInputException naming <paramref name="what"/>.</summary>
    public static IReadOnlyList<int> Parse(string list, string what)
    {
        var cpus = new List<int>();
        foreach (var part in list.Split(',', StringSplitOptions.TrimEntries))
        {
            var ends = part.Split('-', StringSplitOptions.TrimEntries);
            if (ends.Length is < 1 or > 2 || !int.TryParse(ends[0], out int first) ||
                !int.TryParse(ends[^1], out int last) || first < 0 || last < first || last >= MaskWords * 64)
                throw new UserInputException($"{what}: '{part}' is not a CPU number or range like 0-3 (CPUs 0..{MaskWords * 64 - 1})");
            for (int cpu = first; cpu <= last; cpu++)
                if (!cpus.Contains(cpu)) cpus.Add(cpu);
        }
        return cpus;
    }

    /// <summary>The CPU the calling thread is running on now, or -1 where that is unknown.</summary>
    public static int CurrentCpu() => IsSupported ? SchedGetCpu() : -1;

    [LibraryImport("libc", EntryPoint = "sched_getcpu")]
    private static partial int SchedGetCpu();

    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    private static unsafe partial int SchedSetAffinity(int pid, nint size, ulong* mask);

    [LibraryImport("libc", EntryPoint = "sched_getaffinity", SetLastError = true)]
    private static unsafe partial int SchedGetAffinity(int pid, nint size, ulong* mask);
}
