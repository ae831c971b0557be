// A strict parser for the Prometheus text exposition format (version 0.0.4): HELP/TYPE lines, the metric and label
// name grammars, label values with \\ \" \n escapes, Go-style floats (NaN, ±Inf), optional timestamps, families kept
// contiguous, no duplicate series, and histogram buckets that are sorted, cumulative and end at +Inf = _count.
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace DistTrain.Tests.Dashboard;

public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value, long? Timestamp);

public sealed class PrometheusFamily(string name)
{
    public string Name { get; } = name;
    public string Type { get; set; } = "untyped";
    public string? Help { get; set; }
    public List<PrometheusSample> Samples { get; } = [];
}

public sealed class PrometheusFormatException(int line, string message) : Exception($"line {line}: {message}");

public static partial class PrometheusTextParser
{
    private static readonly string[] Types = ["counter", "gauge", "histogram", "summary", "untyped"];

    public static Dictionary<string, PrometheusFamily> Parse(string text)
    {
        var families = new Dictionary<string, PrometheusFamily>(StringComparer.Ordinal);
        var closed = new HashSet<string>(StringComparer.Ordinal); // families whose lines have ended
        var series = new HashSet<string>(StringComparer.Ordinal);
        string? current = null;
        var lines = text.Split('\n');
        if (lines[^1].Length != 0) throw new PrometheusFormatException(lines.Length, "the last line must end with a newline");
        for (int i = 0; i < lines.Length - 1; i++)
        {
            int number = i + 1;
            string line = lines[i];
            if (line.Length == 0) continue;
            if (line.EndsWith('\r')) throw new PrometheusFormatException(number, "carriage return: lines end with \\n only");
            string family;
            if (line[0] == '#')
            {
                var parts = line.Split(' ', 4);
                if (parts.Length < 3 || parts[0] != "#" || parts[1] is not ("HELP" or "TYPE")) continue; // a plain comment
                family = parts[2];
                CheckMetricName(number, family);
                var f = Enter(families, closed, ref current, family, number);
                if (parts[1] == "HELP")
                {
                    if (f.Help is not null) throw new PrometheusFormatException(number, $"second HELP for {family}");
                    f.Help = UnescapeHelp(number, parts.Length == 4 ? parts[3] : "");
                }
                else
                {
                    if (parts.Length != 4 || !Types.Contains(parts[3]))
                        throw new PrometheusFormatException(number, $"TYPE of {family} must be one of {string.Join(", ", Types)}");
                    if (f.Samples.Count > 0 || f.Type != "untyped" && parts[3] != f.Type)
                        throw new PrometheusFormatException(number, $"TYPE of {family} after its samples or given twice");
                    f.Type = parts[3];
                }
                continue;
            }
            var sample = ParseSample(number, line);
            family = FamilyOf(families, sample.Name);
            var target = Enter(families, closed, ref current, family, number);
            string key = sample.Name + "{" + string.Join(",", sample.Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => l.Key + "=" + l.Value)) + "}";
            if (!series.Add(key)) throw new PrometheusFormatException(number, $"duplicate series {key}");
            target.Samples.Add(sample);
        }
        foreach (var f in families.Values) Validate(f);
        return families;
    }

    // Lines of one family must be contiguous: once another family starts, this one is closed.
    private static PrometheusFamily Enter(Dictionary<string, PrometheusFamily> families, HashSet<string> closed,
        ref string? current, string family, int number)
    {
        if (current != family)
        {
            if (closed.Contains(family)) throw new PrometheusFormatException(number, $"lines of {family} are not contiguous");
            if (current is not null) closed.Add(current);
            current = family;
        }
        if (!families.TryGetValue(family, out var f)) families[family] = f = new PrometheusFamily(family);
        return f;
    }

    private static string FamilyOf(Dictionary<string, PrometheusFamily> families, string sampleName)
    {
        foreach (string suffix in (string[])["_bucket", "_sum", "_count"])
            if (sampleName.EndsWith(suffix, StringComparison.Ordinal)
                && families.TryGetValue(sampleName[..^suffix.Length], out var f) && f.Type is "histogram" or "summary")
                return f.Name;
        return sampleName;
    }

    private static PrometheusSample ParseSample(int number, string line)
    {
        int i = 0;
        while (i < line.Length && line[i] is not ('{' or ' ' or '\t')) i++;
        string name = line[..i];
        CheckMetricName(number, name);
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (true)
            {
                if (i < line.Length && line[i] == '}') { i++; break; }
                int start = i;
                while (i < line.Length && line[i] != '=') i++;
                string label = line[start..i];
                if (!LabelName().IsMatch(label) || label.StartsWith("__", StringComparison.Ordinal))
                    throw new PrometheusFormatException(number, $"bad label name '{label}'");
                if (i + 1 >= line.Length || line[i + 1] != '"') throw new PrometheusFormatException(number, $"label {label}: value must be quoted");
                i += 2;
                var value = new StringBuilder();
                while (true)
                {
                    if (i >= line.Length) throw new PrometheusFormatException(number, $"label {label}: unterminated value");
                    char c = line[i++];
                    if (c == '"') break;
                    if (c != '\\') { value.Append(c); continue; }
                    if (i >= line.Length) throw new PrometheusFormatException(number, "dangling backslash");
                    value.Append(line[i++] switch
                    {
                        '\\' => '\\',
                        '"' => '"',
                        'n' => '\n',
                        var e => throw new PrometheusFormatException(number, $"bad escape \\{e} in label {label}"),
                    });
                }
                if (!labels.TryAdd(label, value.ToString())) throw new PrometheusFormatException(number, $"label {label} repeated");
                if (i < line.Length && line[i] == ',') { i++; continue; }
                if (i < line.Length && line[i] == '}') { i++; break; }
                throw new PrometheusFormatException(number, "expected ',' or '}' after a label");
            }
        }
        var rest = line[i..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (i >= line.Length || line[i] is not (' ' or '\t') || rest.Length is < 1 or > 2)
            throw new PrometheusFormatException(number, "expected 'name[{labels}] value [timestamp]'");
        double v = ParseValue(number, rest[0]);
        long? timestamp = null;
        if (rest.Length == 2)
        {
            if (!long.TryParse(rest[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long t))
                throw new PrometheusFormatException(number, $"bad timestamp '{rest[1]}'");
            timestamp = t;
        }
        return new PrometheusSample(name, labels, v, timestamp);
    }

    public static double ParseValue(int number, string text) => text switch
    {
        "NaN" => double.NaN,
        "+Inf" or "Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        _ when FloatLiteral().IsMatch(text) => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture),
        _ => throw new PrometheusFormatException(number, $"bad value '{text}'"),
    };

    private static void Validate(PrometheusFamily f)
    {
        if (f.Type == "counter")
            foreach (var s in f.Samples)
                if (!(s.Value >= 0)) throw new PrometheusFormatException(0, $"counter {s.Name} is {s.Value}");
        if (f.Type != "histogram") return;
        foreach (var group in f.Samples.GroupBy(s => string.Join(",", s.Labels.Where(l => l.Key != "le").OrderBy(l => l.Key).Select(l => l.Key + "=" + l.Value))))
        {
            var buckets = group.Where(s => s.Name == f.Name + "_bucket").ToList();
            var count = group.SingleOrDefault(s => s.Name == f.Name + "_count")
                ?? throw new PrometheusFormatException(0, $"histogram {f.Name}{{{group.Key}}} has no _count");
            _ = group.SingleOrDefault(s => s.Name == f.Name + "_sum")
                ?? throw new PrometheusFormatException(0, $"histogram {f.Name}{{{group.Key}}} has no _sum");
            if (group.Any(s => s.Name != f.Name + "_bucket" && s.Name != f.Name + "_sum" && s.Name != f.Name + "_count"))
                throw new PrometheusFormatException(0, $"histogram {f.Name} has a sample that is not _bucket/_sum/_count");
            double lastBound = double.NegativeInfinity, lastCount = 0;
            foreach (var b in buckets.OrderBy(b => ParseValue(0, b.Labels.GetValueOrDefault("le") ?? throw new PrometheusFormatException(0, $"{f.Name}_bucket without le"))))
            {
                double bound = ParseValue(0, b.Labels["le"]);
                if (bound == lastBound) throw new PrometheusFormatException(0, $"{f.Name}: bucket le={bound} repeated");
                if (b.Value < lastCount) throw new PrometheusFormatException(0, $"{f.Name}: bucket le={bound} is {b.Value} < {lastCount}: not cumulative");
                (lastBound, lastCount) = (bound, b.Value);
            }
            if (!double.IsPositiveInfinity(lastBound)) throw new PrometheusFormatException(0, $"{f.Name}: no le=\"+Inf\" bucket");
            if (lastCount != count.Value) throw new PrometheusFormatException(0, $"{f.Name}: +Inf bucket {lastCount} ≠ _count {count.Value}");
        }
    }

    private static void CheckMetricName(int number, string name)
    {
        if (!MetricName().IsMatch(name)) throw new PrometheusFormatException(number, $"bad metric name '{name}'");
    }

    private static string UnescapeHelp(int number, string help)
    {
        var result = new StringBuilder();
        for (int i = 0; i < help.Length; i++)
        {
            if (help[i] != '\\') { result.Append(help[i]); continue; }
            if (++i >= help.Length) throw new PrometheusFormatException(number, "dangling backslash in HELP");
            result.Append(help[i] switch
            {
                '\\' => '\\',
                'n' => '\n',
                var e => throw new PrometheusFormatException(number, $"bad escape \\{e} in HELP"),
            });
        }
        return result.ToString();
    }

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    private static partial Regex MetricName();

    [GeneratedRegex("^[a-zA-Z_][a-zA-Z0-9_]*$")]
    private static partial Regex LabelName();

    [GeneratedRegex(@"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")]
    private static partial Regex FloatLiteral();
}
