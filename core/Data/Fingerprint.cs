// A SHA-256 fingerprint of a dataset's exact contents, so every node can prove it trains on the same data and a
// worker can cache data received from the coordinator under that name.
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace DistTrain.Core.Data;

public static class Fingerprint
{
    /// <summary>Versions the encoding below; change it whenever the encoding changes.</summary>
    private static readonly byte[] Tag = Encoding.ASCII.GetBytes("DistTrain.Dataset.v1\0");

    /// <summary>
    /// Lowercase hex SHA-256 of: the ASCII tag "DistTrain.Dataset.v1\0", then width, classes and count as
    /// little-endian int32, the features as little-endian IEEE float32 bits (row-major), the labels as little-endian
    /// int32. The source path is not included: the same data found at another path is the same data.
    /// </summary>
    public static string Compute(Dataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Append(hash, data);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>The train encoding as above, then one byte (1 = a test set follows, 0 = none), then the test encoding.</summary>
    public static string Compute(DataSplit split)
    {
        ArgumentNullException.ThrowIfNull(split);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Append(hash, split.Train);
        hash.AppendData([(byte)(split.Test is null ? 0 : 1)]);
        if (split.Test is not null) Append(hash, split.Test);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static void Append(IncrementalHash hash, Dataset data)
    {
        hash.AppendData(Tag);
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(header, data.Width);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], data.Classes);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], data.Count);
        hash.AppendData(header);
        AppendFeatures(hash, data);
        AppendLittleEndian<int>(hash, data.Labels);
    }

    /// <summary>The float features, from the bytes a few rows at a time while the dataset holds bytes (the same hash
    /// as of the float array, which is not made for it).</summary>
    private static void AppendFeatures(IncrementalHash hash, Dataset data)
    {
        if (!data.HoldsBytes)
        {
            AppendLittleEndian<float>(hash, data.Features);
            return;
        }
        int rowsAtOnce = Math.Max(1, 16384 / data.Width);
        var rows = new float[rowsAtOnce * data.Width];
        for (int first = 0; first < data.Count; first += rowsAtOnce)
        {
            int count = Math.Min(rowsAtOnce, data.Count - first);
            for (int r = 0; r < count; r++) data.CopyRow(first + r, rows.AsSpan(r * data.Width, data.Width));
            AppendLittleEndian<float>(hash, rows.AsSpan(0, count * data.Width));
        }
    }

    /// <summary>
    /// On little-endian hosts the arrays are hashed in place (no copy); a big-endian host byte-swaps through a
    /// small buffer so the hash is the same everywhere.
    /// </summary>
    private static void AppendLittleEndian<T>(IncrementalHash hash, ReadOnlySpan<T> values) where T : unmanaged
    {
        ReadOnlySpan<byte> bytes = MemoryMarshal.AsBytes(values);
        if (BitConverter.IsLittleEndian)
        {
            hash.AppendData(bytes);
            return;
        }
        Span<byte> buffer = stackalloc byte[4096];
        for (int offset = 0; offset < bytes.Length; offset += buffer.Length)
        {
            int length = Math.Min(buffer.Length, bytes.Length - offset);
            Span<int> words = MemoryMarshal.Cast<byte, int>(buffer[..length]);
            BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, int>(bytes.Slice(offset, length)), words);
            hash.AppendData(buffer[..length]);
        }
    }
}
