// docker-compose.yml as the tests need it: per service its command, environment, healthcheck, secrets and volumes,
// with compose's ${VAR:-default} interpolation applied (from given values, else the defaults), read with YamlDotNet.
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace DistTrain.Tests.Deployment;

public sealed record ComposeService(
    string Name,
    IReadOnlyList<string> Command,
    IReadOnlyDictionary<string, string> Environment,
    IReadOnlyList<string> HealthCheck,
    IReadOnlyList<string> Secrets,
    IReadOnlyList<string> Volumes,
    YamlMappingNode Node);

public sealed partial class ComposeFile
{
    public static string DefaultPath => Path.Combine(Distributed.ProcessHarness.RepoRoot, "docker-compose.yml");

    private ComposeFile(YamlMappingNode root, IReadOnlyDictionary<string, ComposeService> services)
    {
        Root = root;
        Services = services;
    }

    public YamlMappingNode Root { get; }
    public IReadOnlyDictionary<string, ComposeService> Services { get; }

    public static ComposeFile Load(string path, IReadOnlyDictionary<string, string>? variables = null)
    {
        var stream = new YamlStream();
        using (var reader = new StreamReader(path)) stream.Load(reader);
        var root = (YamlMappingNode)stream.Documents[0].RootNode;
        string Interpolate(string value) => Variable().Replace(value, m =>
            variables?.GetValueOrDefault(m.Groups["name"].Value) ?? m.Groups["default"].Value);

        var services = new Dictionary<string, ComposeService>();
        foreach (var (key, node) in ((YamlMappingNode)root["services"]).Children)
        {
            var service = (YamlMappingNode)node;
            services[((YamlScalarNode)key).Value!] = new ComposeService(
                ((YamlScalarNode)key).Value!,
                [.. Strings(Child(service, "command")).Select(Interpolate)],
                Environment(Child(service, "environment")).ToDictionary(e => e.Key, e => Interpolate(e.Value)),
                Child(service, "healthcheck") is YamlMappingNode health ? [.. Strings(Child(health, "test")).Select(Interpolate)] : [],
                [.. Strings(Child(service, "secrets"))],
                [.. Strings(Child(service, "volumes")).Select(Interpolate)],
                service);
        }
        return new ComposeFile(root, services);
    }

    /// <summary>The names of the variables the file interpolates (`${NAME}`, `${NAME:-default}`).</summary>
    public static IReadOnlySet<string> VariablesIn(string path) =>
        Variable().Matches(File.ReadAllText(path)).Select(m => m.Groups["name"].Value).ToHashSet();

    public static YamlNode? Child(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var child) ? child : null;

    /// <summary>A list of scalars, or one string split on spaces (compose's shell-free string form).</summary>
    private static IEnumerable<string> Strings(YamlNode? node) => node switch
    {
        null => [],
        YamlSequenceNode list => list.Children.Select(c => ((YamlScalarNode)c).Value ?? ""),
        YamlScalarNode scalar => (scalar.Value ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries),
        _ => throw new InvalidDataException($"unexpected YAML node {node.NodeType} at {node.Start}"),
    };

    /// <summary>Both forms compose accepts: a map, or a list of NAME=VALUE.</summary>
    private static IEnumerable<KeyValuePair<string, string>> Environment(YamlNode? node) => node switch
    {
        null => [],
        YamlMappingNode map => map.Children.Select(c =>
            KeyValuePair.Create(((YamlScalarNode)c.Key).Value!, ((YamlScalarNode)c.Value).Value ?? "")),
        YamlSequenceNode list => list.Children.Select(c => ((YamlScalarNode)c).Value!.Split('=', 2))
            .Select(p => KeyValuePair.Create(p[0], p.Length > 1 ? p[1] : "")),
        _ => throw new InvalidDataException($"unexpected environment node at {node.Start}"),
    };

    [GeneratedRegex(@"\$\{(?<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?<default>[^}]*))?\}")]
    private static partial Regex Variable();
}
