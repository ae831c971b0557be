// One row of a program's option table: the flag, what it means, and the configuration key it sets. The
// DISTTRAIN_ environment variable is derived from the key (":" becomes "__"), exactly as
// AddEnvironmentVariables("DISTTRAIN_") maps variables back to keys, so a flag and its variable cannot drift apart.
namespace DistTrain.Protos.Cli;

/// <param name="Name">The flag, e.g. "--epochs"; null for a setting read only from the environment (the token).</param>
/// <param name="Key">Configuration key, e.g. "training:epochs" (also a config-file field when it names one).</param>
/// <param name="ValueName">What the value is, for the help text ("N", "FILE"); null for a switch.</param>
/// <param name="InConfigFile">The key is also a field of the JSON config file (training.epochs).</param>
public sealed record CliOption(string? Name, string Key, string Description, string? ValueName = "VALUE", bool InConfigFile = false)
{
    public const string Prefix = "DISTTRAIN_";

    public bool IsSwitch => ValueName is null;

    /// <summary>"training:epochs" → "DISTTRAIN_TRAINING__EPOCHS".</summary>
    public string EnvironmentVariable => Prefix + Key.Replace(":", "__", StringComparison.Ordinal).ToUpperInvariant();

    /// <summary>A switch with a value of true (flag) or a true-like variable ("1", "true", "yes", "on").</summary>
    public static bool IsTrue(string? value) => value?.Trim().ToLowerInvariant() is "1" or "true" or "yes" or "on";

    /// <summary>The help line's description: what it does, then where else it can be set.</summary>
    public string HelpDescription => InConfigFile
        ? $"{Description} [env: {EnvironmentVariable}; config: {Key.Replace(':', '.')}]"
        : $"{Description} [env: {EnvironmentVariable}]";
}
