// Which DISTTRAIN_ variables `disttrain` reads: the variable of every row of its option table, and
// DISTTRAIN_<SECTION>__<KEY> for every setting of the config file (DISTTRAIN_MODEL__LAYERS__0__UNITS), which
// AddEnvironmentVariables binds. Deployment files are checked against it, so a misspelt variable is caught before a run.
using System.Reflection;
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Cli;

public static class CoordinatorEnvironment
{
    public const string Prefix = CliOption.Prefix;

    /// <summary>The config sections (MODEL, DATA, OPTIMIZER, SCHEDULE, TRAINING), from TrainingConfig itself.</summary>
    public static IReadOnlyList<string> ConfigSections { get; } =
        [.. typeof(TrainingConfig).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && !IsLeaf(p.PropertyType)).Select(p => p.Name.ToUpperInvariant())];

    /// <summary>True for a variable the program reads: an option's, or one naming a real config setting.</summary>
    public static bool Reads(string name) =>
        CoordinatorOptions.All.Any(o => o.EnvironmentVariable.Equals(name, StringComparison.OrdinalIgnoreCase)) ||
        (ConfigKey(name) is { } key && Resolves(typeof(TrainingConfig), key.Split(':')));

    /// <summary>"DISTTRAIN_TRAINING__EPOCHS" → "TRAINING:EPOCHS"; null when the variable is not a config setting.</summary>
    public static string? ConfigKey(string name)
    {
        if (!name.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase)) return null;
        string rest = name[Prefix.Length..];
        return ConfigSections.Any(s => rest.StartsWith(s + "__", StringComparison.OrdinalIgnoreCase)) ? rest.Replace("__", ":") : null;
    }

    /// <summary>Follows a config path through properties, list indices and dictionary keys, as the binder would.</summary>
    private static bool Resolves(Type type, ReadOnlySpan<string> path)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (path.Length == 0) return IsLeaf(type);
        if (IsLeaf(type)) return false;
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>))
            return Resolves(type.GetGenericArguments()[1], path[1..]);
        var element = type.IsArray ? type.GetElementType()
            : type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>) ? type.GetGenericArguments()[0] : null;
        if (element is not null) return int.TryParse(path[0], out int index) && index >= 0 && Resolves(element, path[1..]);
        var property = type.GetProperty(path[0], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
        return property is { CanWrite: true } && Resolves(property.PropertyType, path[1..]);
    }

    private static bool IsLeaf(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        return type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal);
    }
}
