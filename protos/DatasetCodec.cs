// The byte layout of a dataset sent to a worker that lacks it (and cached on its disk): a magic, then the training
// set and an optional test set, each as counts, source, its features and int32 labels, little-endian. Features are
// float32, or (a set held as bytes, such as images) the bytes and the divisor they are read with: a quarter of the
// size, and the worker holds them as bytes too. Payloads of the first version (float32 only) are still read. Reading
// checks every length against what is left, so a truncated or hostile payload is an error, never a huge allocation.
using System.Runtime.InteropServices;
using System.Text;
using DistTrain.Core.Data;
using DistTrain.Core.Kernels;

namespace DistTrain.Protos;

public static class DatasetCodec
{
    private const uint Magic = 0x32534454; // "TDS2": each set says how its features are stored
    private const uint FloatsOnlyMagic = 0x31534454; // "TDS1": float32 features only
    private const int Floats = 0, Bytes = 1;

    public static byte[] Encode(DataSplit split)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(Magic);
            writer.Write(split.Test is null ? 1 : 2);
            Write(writer, split.Train);
            if (split.Test is { } test) Write(writer, test);
        }
        return stream.ToArray();
    }

    /// <summary>True when <paramref name="payload"/> is in the format <see cref="Encode"/> writes now (a cache of an
    /// older format is better fetched again: its images would be held as floats).</summary>
    public static bool IsCurrentVersion(ReadOnlySpan<byte> payload) =>
        payload.Length >= 4 && BitConverter.ToUInt32(payload[..4]) == Magic;

    /// <summary>Decodes a payload written by <see cref="Encode"/>; throws InvalidDataException when it is malformed.</summary>
    public static DataSplit Decode(ReadOnlySpan<byte> bytes)
    {
        int position = 0;
        int magic = ReadInt(bytes, ref position);
        if (magic != unchecked((int)Magic) && magic != unchecked((int)FloatsOnlyMagic))
            throw new InvalidDataException("not a DistTrain dataset payload (bad magic)");
        bool kinds = magic == unchecked((int)Magic);
        int sets = ReadInt(bytes, ref position);
        if (sets is not (1 or 2)) throw new InvalidDataException($"dataset payload declares {sets} sets, expected 1 or 2");
        var train = Read(bytes, ref position, kinds);
        var test = sets == 2 ? Read(bytes, ref position, kinds) : null;
        if (position != bytes.Length)
            throw new InvalidDataException($"dataset payload has {bytes.Length - position} trailing bytes");
        return new DataSplit(train, test);
    }

    private static void Write(BinaryWriter writer, Dataset set)
    {
        writer.Write(set.Count);
        writer.Write(set.Width);
        writer.Write(set.Classes);
        var source = Encoding.UTF8.GetBytes(set.Source);
        writer.Write(source.Length);
        writer.Write(source);
        if (set.TryGetBytes(out var values, out var divisor))
        {
            writer.Write(Bytes);
            writer.Write(divisor.Value);
            writer.Write(values);
        }
        else
        {
            writer.Write(Floats);
            writer.Write(MemoryMarshal.AsBytes(set.Features.AsSpan()));
        }
        writer.Write(MemoryMarshal.AsBytes(set.Labels.AsSpan()));
    }

    private static Dataset Read(ReadOnlySpan<byte> bytes, ref int position, bool kinds)
    {
        int count = ReadInt(bytes, ref position), width = ReadInt(bytes, ref position);
        int classes = ReadInt(bytes, ref position), sourceLength = ReadInt(bytes, ref position);
        if (count < 0 || width < 1 || classes < 0 || sourceLength < 0 || sourceLength > 4096)
            throw new InvalidDataException($"dataset payload header is invalid (count {count}, width {width}, classes {classes})");
        string source = Encoding.UTF8.GetString(Take(bytes, ref position, sourceLength));
        int kind = kinds ? ReadInt(bytes, ref position) : Floats;
        if (kind is not (Floats or Bytes)) throw new InvalidDataException($"dataset payload declares feature kind {kind}, expected 0 (float32) or 1 (bytes)");
        float divisor = kind == Bytes ? BitConverter.ToSingle(Take(bytes, ref position, 4)) : 1f;
        if (!float.IsFinite(divisor) || divisor <= 0)
            throw new InvalidDataException($"dataset payload declares divisor {divisor}, expected a finite positive number");
        if ((long)count * width > Array.MaxLength)
            throw new InvalidDataException($"dataset payload declares {count}×{width} features, more than an array holds");
        long featureBytes = (kind == Bytes ? 1L : 4L) * count * width, labelBytes = 4L * count;
        if (featureBytes + labelBytes > bytes.Length - position)
            throw new InvalidDataException($"dataset payload is truncated: {count}×{width} samples need {featureBytes + labelBytes} bytes, {bytes.Length - position} left");
        var features = Take(bytes, ref position, (int)featureBytes);
        var labels = MemoryMarshal.Cast<byte, int>(Take(bytes, ref position, (int)labelBytes)).ToArray();
        if (kind == Floats) return new Dataset(MemoryMarshal.Cast<byte, float>(features).ToArray(), labels, width, classes, source);
        var held = Dataset.FromBytes(features.ToArray(), labels, width, classes, source);
        Normalization.Scale(held, divisor);
        return held;
    }

    private static int ReadInt(ReadOnlySpan<byte> bytes, ref int position) =>
        BitConverter.ToInt32(Take(bytes, ref position, 4));

    private static ReadOnlySpan<byte> Take(ReadOnlySpan<byte> bytes, ref int position, int length)
    {
        if (length < 0 || length > bytes.Length - position)
            throw new InvalidDataException($"dataset payload is truncated at byte {position}");
        var slice = bytes.Slice(position, length);
        position += length;
        return slice;
    }
}
