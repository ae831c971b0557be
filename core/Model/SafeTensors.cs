// Reader and writer for the safetensors format (8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw little-endian data). Only F32 tensors are used here, which is
// what PyTorch's nn.Sequential state_dict holds, so weights move between DistTrain and PyTorch unchanged.
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DistTrain.Core.Model;

public sealed record SafeTensor(string Name, int[] Shape, float[] Data);

public sealed class SafeTensorsFile
{
    // Tensor data is copied as raw memory, which is the file's little-endian layout on every platform .NET runs on.
    static SafeTensorsFile()
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors I/O needs a little-endian CPU");
    }

    public required IReadOnlyDictionary<string, SafeTensor> Tensors { get; init; }
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }

    /// <summary>Largest header accepted; a real header is a few KB, so anything bigger is a damaged file.</summary>
    private const long MaxHeaderBytes = 100_000_000;

    public static void Write(Stream stream, IEnumerable<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (key, value) in metadata) meta[key] = value;
            header["__metadata__"] = meta;
        }
        var list = tensors.ToList();
        long offset = 0;
        foreach (var t in list)
        {
            long bytes = (long)t.Data.Length * sizeof(float);
            if (t.Shape.Aggregate(1L, (a, b) => a * b) != t.Data.Length)
                throw new ArgumentException($"tensor {t.Name}: shape [{string.Join(",", t.Shape)}] does not hold {t.Data.Length} values");
            header[t.Name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(t.Shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8; // the format pads the header with spaces to 8-byte alignment
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        stream.Write(length);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (var t in list)
        {
            stream.Write(MemoryMarshal.AsBytes(t.Data.AsSpan()));
        }
    }

    public static SafeTensorsFile Read(string path)
    {
        FileStream stream;
        try { stream = File.OpenRead(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserInputException($"{path}: cannot open safetensors file: {e.Message}", e);
        }
        using (stream) return Read(stream, path);
    }

    public static SafeTensorsFile Read(Stream stream, string path)
    {
        Span<byte> lengthBytes = stackalloc byte[8];
        if (stream.ReadAtLeast(lengthBytes, 8, throwOnEndOfStream: false) < 8)
            throw new UserInputException($"{path}: not a safetensors file: shorter than its 8-byte header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        long fileLength = stream.CanSeek ? stream.Length : long.MaxValue;
        if (headerLength > MaxHeaderBytes || (long)headerLength > fileLength - 8)
            throw new UserInputException($"{path}: not a safetensors file: header length {headerLength} exceeds the file");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        JsonObject header;
        try { header = JsonNode.Parse(headerBytes)?.AsObject() ?? throw new JsonException("empty header"); }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new UserInputException($"{path}: safetensors header is not a JSON object: {e.Message}", e);
        }
        long dataLength = fileLength == long.MaxValue ? long.MaxValue : fileLength - 8 - (long)headerLength;
        var metadata = new Dictionary<string, string>();
        var entries = new List<(string Name, int[] Shape, long Begin, long End, string DType)>();
        try
        {
            ReadHeader(header, path, dataLength, metadata, entries);
        }
        catch (Exception e) when (e is not UserInputException)
        {
            // Invalid UTF-8 or wrongly typed values surface lazily while the JSON is walked.
            throw new UserInputException($"{path}: malformed safetensors header: {e.Message}", e);
        }
        var tensors = new Dictionary<string, SafeTensor>();
        long position = 0;
        foreach (var (name, shape, begin, end, dtype) in entries.OrderBy(e => e.Begin))
        {
            if (begin < position) throw new UserInputException($"{path}: tensor '{name}' overlaps another tensor");
            Skip(stream, begin - position, path);
            var data = new float[(end - begin) / ElementSize(dtype)];
            if (dtype == "F32")
            {
                var bytes = MemoryMarshal.AsBytes(data.AsSpan());
                if (stream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false) < bytes.Length)
                    throw new UserInputException($"{path}: truncated: tensor '{name}' data ends early");
            }
            else
            {
                // PyTorch state dicts hold float64 tensors and int64 counters (num_batches_tracked): read as float.
                var wide = new long[data.Length];
                var bytes = MemoryMarshal.AsBytes(wide.AsSpan());
                if (stream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false) < bytes.Length)
                    throw new UserInputException($"{path}: truncated: tensor '{name}' data ends early");
                for (int i = 0; i < data.Length; i++)
                    data[i] = dtype == "F64" ? (float)BitConverter.Int64BitsToDouble(wide[i]) : wide[i];
            }
            tensors[name] = new SafeTensor(name, shape, data);
            position = end;
        }
        return new SafeTensorsFile { Tensors = tensors, Metadata = metadata };
    }

    private static void ReadHeader(JsonObject header, string path, long dataLength, Dictionary<string, string> metadata,
        List<(string Name, int[] Shape, long Begin, long End, string DType)> entries)
    {
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                foreach (var (k, v) in node?.AsObject() ?? []) metadata[k] = v?.GetValue<string>() ?? "";
                continue;
            }
            try
            {
                var entry = node!.AsObject();
                string dtype = entry["dtype"]!.GetValue<string>();
                if (dtype is not ("F32" or "F64" or "I64"))
                    throw new UserInputException($"{path}: tensor '{name}' has dtype {dtype}, expected F32 (or F64, I64)");
                int[] shape = entry["shape"]!.AsArray().Select(s => s!.GetValue<int>()).ToArray();
                var offsets = entry["data_offsets"]!.AsArray();
                long begin = offsets[0]!.GetValue<long>(), end = offsets[1]!.GetValue<long>();
                long count = shape.Aggregate(1L, (a, b) => a * (b < 0 ? throw new FormatException("negative dimension") : b));
                if (begin < 0 || end < begin || end > dataLength || end - begin != count * ElementSize(dtype))
                    throw new UserInputException(
                        $"{path}: tensor '{name}' byte range [{begin},{end}) does not fit shape [{string.Join(",", shape)}] and the file's {dataLength} data bytes");
                entries.Add((name, shape, begin, end, dtype));
            }
            catch (Exception e) when (e is not UserInputException)
            {
                throw new UserInputException($"{path}: tensor '{name}' has a malformed header entry: {e.Message}", e);
            }
        }
    }

    private static int ElementSize(string dtype) => dtype == "F32" ? 4 : 8;

    private static void Skip(Stream stream, long count, string path)
    {
        if (count == 0) return;
        if (stream.CanSeek) { stream.Seek(count, SeekOrigin.Current); return; }
        var buffer = new byte[Math.Min(count, 65536)];
        while (count > 0)
        {
            int read = stream.Read(buffer, 0, (int)Math.Min(count, buffer.Length));
            if (read == 0) throw new UserInputException($"{path}: truncated safetensors data");
            count -= read;
        }
    }
}
