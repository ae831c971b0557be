// Reads IDX files (the MNIST / Fashion-MNIST container: big-endian magic, dimensions, then raw bytes), plain or
// gzip-compressed, into byte arrays (images) and int arrays (labels); every malformed-file case becomes a UserInputException naming the file.
using System.Buffers.Binary;
using System.IO.Compression;
using DistTrain.Core.Kernels;

namespace DistTrain.Core.Data;

/// <summary>Images as raw 0..255 pixel values, row-major [Count × Rows × Columns].</summary>
public readonly record struct IdxImages(byte[] Bytes, int Count, int Rows, int Columns)
{
    /// <summary>The pixels as float32 values 0..255 (a new array each call).</summary>
    public float[] Widened()
    {
        // Uninitialised: every element is written next, and zeroing 188 MB first would cost as much again.
        var pixels = GC.AllocateUninitializedArray<float>(Bytes.Length);
        ElementWise.Widen(Bytes, ByteDivisor.One, pixels);
        return pixels;
    }
}

public static class IdxReader
{
    /// <summary>idx3, unsigned byte: 0x00 0x00 type 0x08 (ubyte), 3 dimensions.</summary>
    public const int ImagesMagic = 0x00000803;
    /// <summary>idx1, unsigned byte.</summary>
    public const int LabelsMagic = 0x00000801;

    public static IdxImages ReadImages(string path)
    {
        string fullPath = Path.GetFullPath(path);
        using var file = Open(fullPath, out long gzipSize);
        try
        {
            int[] dims = ReadHeader(file, fullPath, ImagesMagic, "idx3 unsigned-byte images");
            int count = dims[0], rows = dims[1], columns = dims[2];
            if (rows <= 0 || columns <= 0)
                throw new UserInputException($"{fullPath}: image size {rows}×{columns} in the header, expected positive rows and columns");
            long total = (long)count * rows * columns;
            string what = $"{count} images of {rows}×{columns} ({total} bytes)";
            byte[] bytes = ReadBody(file, fullPath, total, what, gzipSize - 16);
            return new IdxImages(bytes, count, rows, columns);
        }
        catch (InvalidDataException e)
        {
            throw Corrupt(fullPath, e);
        }
    }

    /// <summary>Labels as ints (0..255; the caller checks them against the class count).</summary>
    public static int[] ReadLabels(string path)
    {
        string fullPath = Path.GetFullPath(path);
        using var file = Open(fullPath, out long gzipSize);
        try
        {
            int count = ReadHeader(file, fullPath, LabelsMagic, "idx1 unsigned-byte labels")[0];
            byte[] bytes = ReadBody(file, fullPath, count, $"{count} labels ({count} bytes)", gzipSize - 8);
            var labels = new int[bytes.Length];
            for (int i = 0; i < bytes.Length; i++) labels[i] = bytes[i];
            return labels;
        }
        catch (InvalidDataException e)
        {
            throw Corrupt(fullPath, e);
        }
    }

    private static UserInputException Corrupt(string fullPath, InvalidDataException e) =>
        new($"{fullPath}: corrupt gzip data ({e.Message})", e);

    /// <summary>
    /// Opens the file, transparently decompressing when it starts with the gzip magic 1f 8b. For gzip,
    /// <paramref name="gzipSize"/> is the trailer's ISIZE (uncompressed length mod 2^32, RFC 1952), else -1.
    /// </summary>
    private static Stream Open(string fullPath, out long gzipSize)
    {
        gzipSize = -1;
        FileStream raw;
        try
        {
            raw = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserInputException($"{fullPath}: cannot open ({e.Message})", e);
        }
        Span<byte> magic = stackalloc byte[4];
        int got = raw.ReadAtLeast(magic[..2], 2, throwOnEndOfStream: false);
        if (got < 2 || magic[0] != 0x1f || magic[1] != 0x8b)
        {
            raw.Position = 0;
            return raw;
        }
        if (raw.Length >= 18)
        {
            raw.Position = raw.Length - 4;
            raw.ReadExactly(magic);
            gzipSize = BinaryPrimitives.ReadUInt32LittleEndian(magic);
        }
        raw.Position = 0;
        return new BufferedStream(new GZipStream(raw, CompressionMode.Decompress), 1 << 16);
    }

    private static int[] ReadHeader(Stream file, string fullPath, int expectedMagic, string kind)
    {
        Span<byte> word = stackalloc byte[4];
        if (file.ReadAtLeast(word, 4, throwOnEndOfStream: false) < 4)
            throw new UserInputException($"{fullPath}: truncated: shorter than the 4-byte IDX magic number");
        int magic = BinaryPrimitives.ReadInt32BigEndian(word);
        if (magic != expectedMagic)
            throw new UserInputException(
                $"{fullPath}: wrong magic number 0x{magic:X8}, expected 0x{expectedMagic:X8} ({kind})");

        var dims = new int[expectedMagic & 0xFF];
        for (int i = 0; i < dims.Length; i++)
        {
            if (file.ReadAtLeast(word, 4, throwOnEndOfStream: false) < 4)
                throw new UserInputException(
                    $"{fullPath}: truncated: header ends before dimension {i + 1} of {dims.Length}");
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(word);
            if (dims[i] < 0)
                throw new UserInputException($"{fullPath}: dimension {i + 1} is {dims[i]}, expected a non-negative size");
        }
        return dims;
    }

    /// <summary>
    /// Reads exactly <paramref name="length"/> body bytes and insists nothing follows. A plain file's length is
    /// checked before allocating. A gzip stream's is only claimed by its trailer (<paramref name="gzipBodySize"/>,
    /// mod 2^32): when that agrees with the header the buffer is allocated once, otherwise it grows with the data
    /// actually decompressed, so a damaged header cannot make us allocate gigabytes up front.
    /// </summary>
    private static byte[] ReadBody(Stream file, string fullPath, long length, string what, long gzipBodySize)
    {
        if (length > Array.MaxLength)
            throw new UserInputException($"{fullPath}: header says {what}, more than one array can hold ({Array.MaxLength} bytes)");

        if (file is FileStream plain)
        {
            long follow = plain.Length - plain.Position;
            if (follow < length)
                throw new UserInputException($"{fullPath}: truncated: header says {what} but only {follow} bytes follow");
            if (follow > length)
                throw new UserInputException($"{fullPath}: header says {what} but {follow} bytes follow ({follow - length} extra)");
            var exact = GC.AllocateUninitializedArray<byte>((int)length);
            plain.ReadExactly(exact);
            return exact;
        }

        bool trailerAgrees = gzipBodySize >= 0 && (gzipBodySize & uint.MaxValue) == (length & uint.MaxValue);
        var buffer = GC.AllocateUninitializedArray<byte>((int)(trailerAgrees ? length : Math.Min(length, 1 << 22)));
        int filled = 0;
        while (filled < length)
        {
            if (filled == buffer.Length)
                Array.Resize(ref buffer, (int)Math.Min(length, 2L * buffer.Length));
            int got = file.Read(buffer, filled, buffer.Length - filled);
            if (got == 0)
                throw new UserInputException($"{fullPath}: truncated: header says {what} but only {filled} bytes follow");
            filled += got;
        }
        if (file.ReadByte() >= 0)
            throw new UserInputException($"{fullPath}: header says {what} but more bytes follow (extra data after the last item)");
        return buffer;
    }
}
