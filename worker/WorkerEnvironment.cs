// Which DISTTRAIN_ variables the worker reads: the variable of every row of its option table (WorkerCli). A
// DISTTRAIN_WORKER__ variable that is none of them is a typo, reported instead of silently ignored; deployment files
// are checked against the same list.
using System.Collections;
using DistTrain.Protos.Cli;

namespace DistTrain.Worker;

public static class WorkerEnvironment
{
    public const string Prefix = "DISTTRAIN_WORKER__";

    /// <summary>The variables the worker reads, upper case as a deployment file writes them.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. WorkerCli.Options.Select(o => o.EnvironmentVariable)];

    /// <summary>Names compare like the configuration binder does: without regard to case.</summary>
    public static bool Reads(string name) => Names.Contains(name, StringComparer.OrdinalIgnoreCase);

    /// <summary>Reports every DISTTRAIN_WORKER__ variable in <paramref name="environment"/> that is not a setting.</summary>
    public static void WarnAboutUnknown(IDictionary environment, Action<string> warn)
    {
        foreach (DictionaryEntry entry in environment)
            if (entry.Key is string name && name.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase) && !Reads(name))
                warn($"warning: {name} is not a worker setting; the worker reads {string.Join(", ", Names.Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)))}");
    }
}
