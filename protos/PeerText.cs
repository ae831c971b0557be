// Text a peer sent (an error detail, a data source, an address) made safe to print: one line of at most a bounded
// length with control characters (newlines, terminal escapes) replaced, so a peer can neither forge log lines nor
// drive the terminal, nor flood the log.
namespace DistTrain.Protos;

public static class PeerText
{
    public const int DefaultMaxLength = 300;

    public static string Printable(string? text, int maxLength = DefaultMaxLength)
    {
        if (string.IsNullOrEmpty(text)) return "";
        bool cut = text.Length > maxLength;
        var span = text.AsSpan(0, Math.Min(text.Length, maxLength));
        var chars = new char[span.Length];
        for (int i = 0; i < span.Length; i++) chars[i] = char.IsControl(span[i]) || char.IsSurrogate(span[i]) ? '?' : span[i];
        return cut ? new string(chars) + "…" : new string(chars);
    }
}
