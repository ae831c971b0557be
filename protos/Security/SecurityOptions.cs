// The security settings both programs accept: for each, its flag and its DISTTRAIN_ environment variable. This is
// the one place that reads them, so the deployment files can be checked against what the programs really read.
using System.Globalization;
using DistTrain.Core;

namespace DistTrain.Protos.Security;

public sealed class SecurityOptions
{
    public const string TokenVariable = "DISTTRAIN_TOKEN";
    public const string TokenFileVariable = "DISTTRAIN_TOKEN_FILE";
    public const string TlsCertVariable = "DISTTRAIN_TLS_CERT";
    public const string TlsKeyVariable = "DISTTRAIN_TLS_KEY";
    public const string TlsCaVariable = "DISTTRAIN_TLS_CA";
    public const string TlsMutualVariable = "DISTTRAIN_TLS_MUTUAL";

    /// <summary>
    /// Flags and the variable each overrides. There is deliberately no --token flag: a secret on the command line
    /// is visible to every local user in the process list.
    /// </summary>
    public static readonly IReadOnlyList<Cli.CliOption> Options =
    [
        new("--token-file", "token_file", "file holding the shared token every node must present (or DISTTRAIN_TOKEN holding the token itself)", "FILE"),
        new("--tls-cert", "tls_cert", "PEM certificate this node serves TLS with", "PEM"),
        new("--tls-key", "tls_key", "PEM private key of --tls-cert", "PEM"),
        new("--tls-ca", "tls_ca", "PEM authority that peers' certificates must chain to", "PEM"),
        new("--tls-mutual", "tls_mutual", "require and check client certificates (true|false)", "BOOL"),
        new(null, "token", "the shared token itself (prefer a file: there is no flag, as a command line is visible to every local user)"),
    ];

    /// <summary>Each flag and the variable it overrides.</summary>
    public static readonly IReadOnlyDictionary<string, string> Flags =
        Options.Where(o => o.Name is not null).ToDictionary(o => o.Name!, o => o.EnvironmentVariable);

    /// <summary>Every environment variable <see cref="Read"/> looks at.</summary>
    public static IReadOnlyList<string> EnvironmentVariables { get; } = [TokenVariable, .. Flags.Values];

    /// <summary>The secret itself when it came from DISTTRAIN_TOKEN (kept out of ToString).</summary>
    internal string? InlineToken { get; init; }
    public string? TokenFile { get; init; }
    public string? TlsCert { get; init; }
    public string? TlsKey { get; init; }
    public string? TlsCa { get; init; }
    public bool TlsMutual { get; init; }

    /// <summary>Flags win over variables; a token file wins over an inline DISTTRAIN_TOKEN.</summary>
    public static SecurityOptions Read(Func<string, string?> flag, Func<string, string?> environment)
    {
        string? Get(string name) =>
            flag(name) is { Length: > 0 } fromFlag ? fromFlag
            : environment(Flags[name]) is { Length: > 0 } fromEnvironment ? fromEnvironment : null;
        string? tokenFile = Get("--token-file");
        return new SecurityOptions
        {
            TokenFile = tokenFile,
            InlineToken = tokenFile is null ? environment(TokenVariable) : null,
            TlsCert = Get("--tls-cert"),
            TlsKey = Get("--tls-key"),
            TlsCa = Get("--tls-ca"),
            TlsMutual = ParseBool(Get("--tls-mutual")),
        };
    }

    private static bool ParseBool(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "false" or "0" or "no" => false,
        "true" or "1" or "yes" => true,
        _ => throw new UserInputException(string.Create(CultureInfo.InvariantCulture,
            $"--tls-mutual / {TlsMutualVariable} must be true or false, found '{value}'")),
    };

    public override string ToString() =>
        $"token {(TokenFile is not null ? "from " + TokenFile : InlineToken is { Length: > 0 } ? "from " + TokenVariable : "none")}, " +
        $"TLS {(TlsCert is not null ? TlsCert : "off")}{(TlsMutual ? " (mutual)" : "")}";
}
