// Builds a TrainingConfig from, in increasing priority: the JSON config file, DISTTRAIN_-prefixed environment
// variables (DISTTRAIN_TRAINING__EPOCHS=5) and command-line overrides. Unknown keys are errors, not silently ignored.
using System.Globalization;
using DistTrain.Core;
using DistTrain.Core.Training;
using Microsoft.Extensions.Configuration;

namespace DistTrain.Coordinator.Cli;

public static class ConfigLoader
{
    /// <summary>Flags that override one config key each.</summary>
    public static readonly IReadOnlyDictionary<string, string> Overrides = new Dictionary<string, string>
    {
        ["--data"] = "data:path",
        ["--epochs"] = "training:epochs",
        ["--batch-size"] = "training:batchSize",
        ["--shard-size"] = "training:shardSize",
        ["--lr"] = "optimizer:learningRate",
        ["--seed"] = "training:seed",
        ["--threads"] = "training:threads",
        ["--clip-norm"] = "training:clipNorm",
        ["--save"] = "training:save",
        ["--init"] = "training:init",
        ["--metrics-out"] = "training:metricsOut",
        ["--step-log"] = "training:stepLog",
        ["--checkpoint-dir"] = "training:checkpointDir",
        ["--checkpoint-every"] = "training:checkpointEvery",
    };

    public static TrainingConfig Load(string path, CommandLine? flags = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new UserInputException($"{path}: config file not found");
        var builder = new ConfigurationBuilder();
        try
        {
            builder.AddJsonFile(full, optional: false, reloadOnChange: false);
            builder.AddInMemoryCollection(EnvironmentOverrides(environment));
            var overrides = new Dictionary<string, string?>();
            if (flags is not null)
            {
                foreach (var (flag, key) in Overrides)
                    if (flags.Get(flag) is { } value) overrides[key] = value;
                if (flags.Has("--resume")) overrides["training:resume"] = "true";
                if (flags.Get("--data") is { } data)
                {
                    // A directory means IDX files; a .csv file means CSV, whatever the config said.
                    if (Directory.Exists(data)) overrides["data:format"] = "idx";
                    else if (data.EndsWith(".csv", StringComparison.OrdinalIgnoreCase)) overrides["data:format"] = "csv";
                }
            }
            builder.AddInMemoryCollection(overrides);
            var configuration = builder.Build();
            var config = new TrainingConfig();
            configuration.Bind(config, o => o.ErrorOnUnknownConfiguration = true);
            ResolvePaths(config, Path.GetDirectoryName(full)!, flags);
            config.Validate();
            return config;
        }
        catch (InvalidDataException e)
        {
            throw new UserInputException($"{path}: not valid JSON: {FirstLine(e.InnerException?.Message ?? e.Message)}", e);
        }
        catch (FormatException e)
        {
            throw new UserInputException($"{path}: not valid JSON: {FirstLine(e.Message)}", e);
        }
        catch (InvalidOperationException e)
        {
            throw new UserInputException($"{path}: {Describe(e)}", e);
        }
    }

    private static Dictionary<string, string?> EnvironmentOverrides(IReadOnlyDictionary<string, string>? environment) =>
        // Only the config sections: other DISTTRAIN_ variables (the token, the worker's settings) belong elsewhere.
        CoordinatorEnvironment.ConfigOverrides(environment ??
            Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
                .Select(e => new KeyValuePair<string, string>((string)e.Key, (string?)e.Value ?? "")));

    /// <summary>Relative data paths in a config file are relative to the file; on the command line, to the cwd.</summary>
    private static void ResolvePaths(TrainingConfig config, string configDirectory, CommandLine? flags)
    {
        string? Resolve(string? p, bool fromFlag) =>
            string.IsNullOrEmpty(p) || Path.IsPathRooted(p) ? p : Path.GetFullPath(p, fromFlag ? Environment.CurrentDirectory : configDirectory);
        bool dataFromFlag = flags?.Get("--data") is not null;
        config.Data.Path = Resolve(config.Data.Path, dataFromFlag);
    }

    private static string Describe(InvalidOperationException e)
    {
        // The binder says "Failed to convert configuration value at 'training:epochs' to type 'System.Int32'." or
        // "'x' was not found in ..." for unknown keys; keep it on one line and in the config's dotted notation.
        string message = System.Text.RegularExpressions.Regex.Replace(FirstLine(e.Message), @"'([A-Za-z0-9_]+(?::[A-Za-z0-9_]+)+)'",
            m => "'" + string.Join('.', m.Groups[1].Value.Split(':').Select(p => char.ToLowerInvariant(p[0]) + p[1..])) + "'");
        return e.InnerException is { } inner ? $"{message} ({FirstLine(inner.Message)})" : message;
    }

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();

    public static string Invariant(double value) => value.ToString(CultureInfo.InvariantCulture);
}
