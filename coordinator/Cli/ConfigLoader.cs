// Builds a TrainingConfig from, in increasing priority: the JSON config file, DISTTRAIN_-prefixed environment
// variables (AddEnvironmentVariables: DISTTRAIN_TRAINING__EPOCHS=5) and the command's flags that name a config
// setting (the option table's InConfigFile rows). Unknown keys are errors, not silently ignored.
using System.Globalization;
using DistTrain.Core;
using DistTrain.Core.Training;
using Microsoft.Extensions.Configuration;

namespace DistTrain.Coordinator.Cli;

public static class ConfigLoader
{
    /// <param name="flags">The command's settings; those given as flags override the file and the environment.</param>
    /// <param name="environment">DISTTRAIN_ variables to use instead of the process's (tests, deployment checks).</param>
    public static TrainingConfig Load(string path, CommandOptions? flags = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new UserInputException($"{path}: config file not found");
        var builder = new ConfigurationBuilder();
        try
        {
            builder.AddJsonFile(full, optional: false, reloadOnChange: false);
            string[] sections = [.. typeof(TrainingConfig).GetProperties().Select(p => p.Name)];
            foreach (var section in builder.Build().GetChildren())
                if (!sections.Contains(section.Key, StringComparer.OrdinalIgnoreCase))
                    throw new UserInputException(
                        $"{path}: unknown section '{section.Key}'; expected {string.Join(", ", sections.Select(s => s.ToLowerInvariant()))}");
            if (environment is null) builder.AddEnvironmentVariables(CliOption.Prefix);
            else builder.AddConfiguration(CommandOptions.EnvironmentFrom(environment));
            var overrides = new Dictionary<string, string?>();
            if (flags is not null)
            {
                foreach (var (key, value) in flags.ConfigFileOverrides()) overrides[key] = value;
                if (flags.FromCommandLine("--data") && flags.Get("--data") is { } data)
                {
                    // A directory means IDX files; a .csv file means CSV, whatever the config said.
                    if (Directory.Exists(data)) overrides["data:format"] = "idx";
                    else if (data.EndsWith(".csv", StringComparison.OrdinalIgnoreCase)) overrides["data:format"] = "csv";
                }
            }
            builder.AddInMemoryCollection(overrides);
            var configuration = builder.Build();
            var config = new TrainingConfig();
            // Section by section: the environment also holds settings that are not the config's (DISTTRAIN_TOKEN).
            foreach (var property in typeof(TrainingConfig).GetProperties())
                configuration.GetSection(property.Name).Bind(property.GetValue(config), o => o.ErrorOnUnknownConfiguration = true);
            ResolvePaths(config, Path.GetDirectoryName(full)!, flags);
            config.Validate();
            return config;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException || e.InnerException is IOException or UnauthorizedAccessException)
        {
            throw new UserInputException($"{path}: cannot read the config: {FirstLine((e.InnerException ?? e).Message)}", e);
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

    /// <summary>Relative data paths in a config file are relative to the file; on the command line, to the cwd.</summary>
    private static void ResolvePaths(TrainingConfig config, string configDirectory, CommandOptions? flags)
    {
        string? Resolve(string? p, bool fromFlag) =>
            string.IsNullOrEmpty(p) || Path.IsPathRooted(p) ? p : Path.GetFullPath(p, fromFlag ? Environment.CurrentDirectory : configDirectory);
        bool dataFromFlag = flags?.FromCommandLine("--data") == true;
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
