// Every DISTTRAIN_ environment variable the worker reads, and the one place that reads them: DISTTRAIN_WORKER__<NAME>
// for each WorkerOptions setting, plus the security variables. Deployment files are checked against this list.
using System.Collections;
using DistTrain.Protos.Security;

namespace DistTrain.Worker;

public static class WorkerEnvironment
{
    public const string Prefix = "DISTTRAIN_WORKER__";

    /// <summary>The variables the worker reads, upper case as a deployment file writes them.</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        .. typeof(WorkerOptions).GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance).Where(p => p.CanWrite).Select(p => Prefix + p.Name.ToUpperInvariant()),
        .. SecurityOptions.EnvironmentVariables,
    ];

    /// <summary>Names compare like the configuration binder does: without regard to case.</summary>
    public static bool Reads(string name) => Names.Contains(name, StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// The Worker settings found in <paramref name="environment"/>, as configuration keys. A DISTTRAIN_WORKER__ name
    /// that is not a setting (a typo) is reported through <paramref name="warn"/> instead of silently ignored.
    /// </summary>
    public static Dictionary<string, string?> Settings(IDictionary environment, Action<string> warn)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry entry in environment)
        {
            if (entry.Key is not string name || !name.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase)) continue;
            if (!Reads(name))
            {
                warn($"warning: {name} is not a worker setting; the worker reads {string.Join(", ", Names.Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)))}");
                continue;
            }
            settings[WorkerOptions.Section + ":" + name[Prefix.Length..]] = entry.Value as string;
        }
        return settings;
    }
}
