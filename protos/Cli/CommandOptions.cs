// The settings of one command as the program reads them: a flag given on the command line wins over its DISTTRAIN_
// environment variable. Every read goes through the command's option table, so an option the code reads but the
// table (and therefore --help and the variable list) does not know is a programming error caught at once.
using System.Globalization;
using DistTrain.Core;
using Microsoft.Extensions.Configuration;

namespace DistTrain.Protos.Cli;

public sealed class CommandOptions
{
    private readonly Dictionary<string, CliOption> _table;
    private readonly IReadOnlyDictionary<string, string?> _flags;
    private readonly IConfiguration _environment;

    /// <param name="flags">Values given on the command line by flag name ("true" for a switch).</param>
    /// <param name="environment">DISTTRAIN_ variables as configuration keys (AddEnvironmentVariables("DISTTRAIN_")).</param>
    public CommandOptions(string command, IEnumerable<CliOption> table, IReadOnlyDictionary<string, string?> flags, IConfiguration environment)
    {
        Command = command;
        _table = table.Where(o => o.Name is not null).ToDictionary(o => o.Name!, StringComparer.Ordinal);
        _flags = flags;
        _environment = environment;
    }

    public string Command { get; }

    /// <summary>The process's DISTTRAIN_ variables as configuration keys.</summary>
    public static IConfiguration ProcessEnvironment() =>
        new ConfigurationBuilder().AddEnvironmentVariables(CliOption.Prefix).Build();

    /// <summary>
    /// <paramref name="variables"/> (full names, e.g. from a compose file) as configuration keys, mapped as
    /// AddEnvironmentVariables maps the process's own.
    /// </summary>
    public static IConfiguration EnvironmentFrom(IEnumerable<KeyValuePair<string, string>> variables) =>
        new ConfigurationBuilder().AddInMemoryCollection(variables
            .Where(v => v.Key.StartsWith(CliOption.Prefix, StringComparison.OrdinalIgnoreCase))
            .Select(v => KeyValuePair.Create(v.Key[CliOption.Prefix.Length..].Replace("__", ":", StringComparison.Ordinal), (string?)v.Value)))
            .Build();

    /// <summary>A DISTTRAIN_ variable by its full name, for the few settings no flag sets (DISTTRAIN_TOKEN).</summary>
    public string? Environment(string variable) =>
        variable.StartsWith(CliOption.Prefix, StringComparison.OrdinalIgnoreCase)
            ? _environment[variable[CliOption.Prefix.Length..].Replace("__", ":", StringComparison.Ordinal)]
            : null;

    /// <summary>The table row of <paramref name="name"/>; reading an option the table lacks is a bug, not user input.</summary>
    public CliOption Option(string name) => _table.TryGetValue(name, out var option)
        ? option
        : throw new InvalidOperationException($"{Command} reads {name}, which is not in its option table");

    /// <summary>True when the flag was given on the command line (not from the environment).</summary>
    public bool FromCommandLine(string name) => _flags.ContainsKey(Option(name).Name!);

    public string? Get(string name)
    {
        var option = Option(name);
        if (_flags.TryGetValue(name, out string? value)) return value;
        return _environment[option.Key] is { Length: > 0 } fromEnvironment ? fromEnvironment : null;
    }

    /// <summary>A switch that is on, or a valued option that has a value.</summary>
    public bool Has(string name) => Option(name).IsSwitch ? CliOption.IsTrue(Get(name)) : Get(name) is not null;

    public string Require(string name) =>
        Get(name) is { Length: > 0 } v ? v : throw new UserInputException($"{Command}: {name} is required");

    public int? GetInt(string name, int min = int.MinValue)
    {
        if (Get(name) is not { } s) return null;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
            throw new UserInputException($"{Command}: {name} expects an integer, found '{s}'");
        if (v < min) throw new UserInputException($"{Command}: {name} must be ≥ {min}, found {v}");
        return v;
    }

    public double? GetDouble(string name, double min = double.NegativeInfinity)
    {
        if (Get(name) is not { } s) return null;
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v))
            throw new UserInputException($"{Command}: {name} expects a number, found '{s}'");
        if (v < min) throw new UserInputException($"{Command}: {name} must be ≥ {min.ToString(CultureInfo.InvariantCulture)}, found '{s}'");
        return v;
    }

    /// <summary>The config-file settings given on the command line, by configuration key (they override the file).</summary>
    public IEnumerable<KeyValuePair<string, string?>> ConfigFileOverrides() =>
        _flags.Where(f => _table[f.Key].InConfigFile).Select(f => KeyValuePair.Create(_table[f.Key].Key, f.Value));
}
