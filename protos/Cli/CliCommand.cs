// A command of a program (or the program itself, with no name) as its option table describes it, and the parse of
// a command line against those tables with System.CommandLine: help, --version and completion come from the
// tables; a mistake is one line naming the command, the token and the nearest option.
using System.CommandLine;
using DistTrain.Core;
using Microsoft.Extensions.Configuration;

namespace DistTrain.Protos.Cli;

/// <param name="Name">The subcommand ("train"); empty for a program without subcommands.</param>
/// <param name="Argument">A positional argument's name (healthcheck URL), if the command takes one.</param>
public sealed record CliCommand(string Name, string Description, IReadOnlyList<CliOption> Options, string? Argument = null);

/// <summary>What the command line asked for: a command with its settings, or an action of the parser itself (help).</summary>
public sealed record ParsedCommandLine(CliCommand? Command, CommandOptions? Options, string? ArgumentValue,
    System.CommandLine.ParseResult Result)
{
    /// <summary>True for --help, --version and directives: <see cref="RunParserAction"/> does them.</summary>
    public bool IsParserAction => Command is null;

    public int RunParserAction() => Result.Invoke(new InvocationConfiguration { ProcessTerminationTimeout = null });
}

public static class CliParser
{
    /// <summary>The System.CommandLine tree of a program: its subcommands, or the options of the program itself.</summary>
    public static RootCommand BuildRoot(string description, IReadOnlyList<CliCommand> commands)
    {
        var root = new RootCommand(description);
        root.Subcommands.Add(CompletionCommand());
        foreach (var command in commands)
        {
            Command target = command.Name.Length == 0 ? root : new Command(command.Name, command.Description);
            foreach (var option in command.Options.Where(o => o.Name is not null))
                target.Options.Add(Build(option));
            if (command.Argument is { } argument) target.Arguments.Add(new Argument<string>(argument));
            if (target != root) root.Subcommands.Add(target);
            // A program without subcommands runs with no subcommand named; this action only marks that.
            else if (command.Options.Count > 0) root.SetAction(_ => 0);
        }
        return root;
    }

    // An option given twice takes its last value, as scripts that append an override expect; each occurrence still
    // takes one token, so a stray argument after a value is an error, not a second value.
    private static Option Build(CliOption option) => option.IsSwitch
        ? new Option<bool>(option.Name!)
        {
            Description = option.HelpDescription, Arity = ArgumentArity.ZeroOrMore, AllowMultipleArgumentsPerToken = false,
            CustomParser = r => r.Tokens.Count == 0 || bool.Parse(r.Tokens[^1].Value),
        }
        : new Option<string>(option.Name!)
        {
            Description = option.HelpDescription, HelpName = option.ValueName, Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = false, CustomParser = r => r.Tokens[^1].Value,
        };

    /// <summary>
    /// Parses <paramref name="args"/>; a mistake throws a one-line <see cref="UserInputException"/>. Values missing
    /// from the command line come from <paramref name="environment"/> (DISTTRAIN_ variables as configuration keys).
    /// </summary>
    public static ParsedCommandLine Parse(string program, IReadOnlyList<CliCommand> commands, string[] args, IConfiguration environment)
    {
        var root = BuildRoot(commands.FirstOrDefault(c => c.Name.Length == 0)?.Description ?? program, commands);
        // '@file' is a path like any other here, not a response file to expand.
        var result = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        var symbol = result.CommandResult.Command;
        var command = commands.FirstOrDefault(c => symbol == root ? c.Name.Length == 0 : c.Name == symbol.Name);
        if (result.Errors.Count > 0) throw new UserInputException(Describe(program, command, result, commands));
        // Our commands have no action of their own: any action is the parser's (help, --version, a directive).
        if (result.Action is not null && result.Action != root.Action) return new ParsedCommandLine(null, null, null, result);
        if (command is null)
            throw new UserInputException($"{program}: expected a command: {string.Join(", ", commands.Select(c => c.Name))} (see {program} --help)");
        var flags = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var option in command.Options.Where(o => o.Name is not null))
        {
            var found = result.GetResult(option.Name!);
            if (found is not System.CommandLine.Parsing.OptionResult { Implicit: false } given) continue;
            flags[option.Name!] = option.IsSwitch ? result.GetValue<bool>(option.Name!) ? "true" : "false" : result.GetValue<string>(option.Name!);
        }
        string? argument = command.Argument is { } name ? result.GetValue<string>(name) : null;
        return new ParsedCommandLine(command, new CommandOptions(command.Name.Length == 0 ? program : command.Name, command.Options, flags, environment),
            argument, result);
    }

    private static string Describe(string program, CliCommand? command, System.CommandLine.ParseResult result, IReadOnlyList<CliCommand> commands)
    {
        string where = command is null || command.Name.Length == 0 ? program : command.Name;
        string help = command is null || command.Name.Length == 0 ? $"{program} --help" : $"{program} {command.Name} --help";
        if (result.UnmatchedTokens.FirstOrDefault() is { } token)
        {
            bool isOption = token.StartsWith('-');
            var candidates = isOption
                ? (command?.Options ?? []).Where(o => o.Name is not null).Select(o => o.Name!)
                : commands.Where(c => c.Name.Length > 0).Select(c => c.Name);
            string? nearest = Nearest(token.Split('=')[0], candidates);
            string what = isOption ? "option" : command is null || command.Name.Length == 0 && commands.Any(c => c.Name.Length > 0) ? "command" : "argument";
            return $"{where}: unknown {what} '{token}'" + (nearest is null ? "" : $"; did you mean {nearest}?") + $" (see {help})";
        }
        return $"{where}: {result.Errors[0].Message.TrimEnd('.')} (see {help})";
    }

    /// <summary>`completion bash`: a script that asks the program itself for completions (its [suggest] directive).</summary>
    private static Command CompletionCommand()
    {
        var shell = new Argument<string>("shell") { Description = "bash" };
        shell.AcceptOnlyFromAmong("bash");
        var command = new Command("completion", "print a bash completion script: source <(disttrain completion bash)") { shell };
        command.SetAction(result =>
        {
            string name = result.RootCommandResult.Command.Name;
            string function = "_" + new string([.. name.Select(c => char.IsLetterOrDigit(c) ? c : '_')]) + "_complete";
            result.InvocationConfiguration.Output.WriteLine($$"""
                {{function}}() {
                  local IFS=$'\n'
                  COMPREPLY=( $(compgen -W "$("$1" "[suggest:${#COMP_LINE}]" "$COMP_LINE" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}") )
                }
                complete -F {{function}} {{name}}
                """);
            return 0;
        });
        return command;
    }

    /// <summary>The candidate closest to <paramref name="token"/> by edit distance, if it is a plausible typo.</summary>
    public static string? Nearest(string token, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (string candidate in candidates)
        {
            int distance = EditDistance(token, candidate);
            if (distance < bestDistance) (best, bestDistance) = (candidate, distance);
        }
        return best is not null && bestDistance <= Math.Max(2, best.Length / 4) ? best : null;
    }

    private static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
