// Minimal flag parsing for the disttrain command: "--name value" and "--switch", checked against the flags each
// command declares, so a typo is one clear error instead of a silently ignored option.
namespace DistTrain.Coordinator.Cli;

public sealed class CommandLine
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);

    private CommandLine(string command) => Command = command;

    public string Command { get; }

    /// <summary>Parses args[1..] against the valued flags and switches of <paramref name="command"/>.</summary>
    public static CommandLine Parse(string command, ReadOnlySpan<string> args, IReadOnlyCollection<string> valued,
        IReadOnlyCollection<string> switches)
    {
        var line = new CommandLine(command);
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            string name = arg, inline = "";
            bool hasInline = false;
            int eq = arg.IndexOf('=');
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                name = arg[..eq];
                inline = arg[(eq + 1)..];
                hasInline = true;
            }
            if (switches.Contains(name) && !hasInline)
                line._values[name] = null;
            else if (valued.Contains(name))
            {
                if (hasInline) line._values[name] = inline;
                else if (i + 1 < args.Length) line._values[name] = args[++i];
                else throw new Core.UserInputException($"{command}: {name} needs a value");
            }
            else
                throw new Core.UserInputException(
                    $"{command}: unknown option '{arg}'; expected one of {string.Join(", ", valued.Concat(switches).Order())}");
        }
        return line;
    }

    public bool Has(string name) => _values.ContainsKey(name);
    public string? Get(string name) => _values.GetValueOrDefault(name);

    public string Require(string name) =>
        Get(name) is { Length: > 0 } v ? v : throw new Core.UserInputException($"{Command}: {name} is required");

    public int? GetInt(string name, int min = int.MinValue)
    {
        if (Get(name) is not { } s) return null;
        if (!int.TryParse(s, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int v))
            throw new Core.UserInputException($"{Command}: {name} expects an integer, found '{s}'");
        if (v < min) throw new Core.UserInputException($"{Command}: {name} must be ≥ {min}, found {v}");
        return v;
    }
}
