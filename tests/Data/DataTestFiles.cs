// Test helpers: writers for small IDX files (plain or gzip), and for dataset payloads of the first version.
using System.Buffers.Binary;
using System.IO.Compression;
using DistTrain.Core.Data;

namespace DistTrain.Tests.Data;

internal static class IdxFiles
{
    public static byte[] Images(byte[] pixels, int count, int rows, int columns) =>
        Encode(IdxReader.ImagesMagic, [count, rows, columns], pixels);

    public static byte[] Labels(byte[] labels) => Encode(IdxReader.LabelsMagic, [labels.Length], labels);

    public static byte[] Encode(int magic, int[] dims, byte[] body)
    {
        var bytes = new byte[4 + 4 * dims.Length + body.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), dims[i]);
        body.CopyTo(bytes, 4 + 4 * dims.Length);
        return bytes;
    }

    public static byte[] Gzip(byte[] bytes)
    {
        using var output = new MemoryStream();
        using (var gz = new GZipStream(output, CompressionLevel.Fastest)) gz.Write(bytes);
        return output.ToArray();
    }

    /// <summary>Writes an MNIST-layout directory with a tiny train and test set (labels i % 10).</summary>
    public static (byte[] TrainPixels, byte[] TrainLabels) WriteMnistLayout(string directory, int train, int test, bool gzip)
    {
        var rng = new DeterministicRandom(42);
        byte[] Pixels(int n) { var p = new byte[n * 4 * 3]; foreach (ref byte b in p.AsSpan()) b = (byte)rng.NextInt(256); return p; }
        byte[] LabelBytes(int n) => [.. Enumerable.Range(0, n).Select(i => (byte)(i % 10))];
        void Save(string name, byte[] bytes) =>
            File.WriteAllBytes(Path.Combine(directory, gzip ? name + ".gz" : name), gzip ? Gzip(bytes) : bytes);

        byte[] trainPixels = Pixels(train), trainLabels = LabelBytes(train);
        Save(MnistLayout.TrainImages, Images(trainPixels, train, 4, 3));
        Save(MnistLayout.TrainLabels, Labels(trainLabels));
        Save(MnistLayout.TestImages, Images(Pixels(test), test, 4, 3));
        Save(MnistLayout.TestLabels, Labels(LabelBytes(test)));
        return (trainPixels, trainLabels);
    }
}

internal static class DatasetPayloads
{
    /// <summary>One set in the first version of the payload ("TDS1": float32 features, no feature kind), as builds
    /// before version 2 wrote it (and left it in workers' caches).</summary>
    public static byte[] FirstVersion(Dataset set)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream))
        {
            writer.Write(0x31534454u); // "TDS1"
            writer.Write(1);
            writer.Write(set.Count);
            writer.Write(set.Width);
            writer.Write(set.Classes);
            byte[] source = System.Text.Encoding.UTF8.GetBytes(set.Source);
            writer.Write(source.Length);
            writer.Write(source);
            var row = new float[set.Width];
            for (int r = 0; r < set.Count; r++)
            {
                set.CopyRow(r, row);
                foreach (float x in row) writer.Write(x);
            }
            foreach (int label in set.Labels) writer.Write(label);
        }
        return stream.ToArray();
    }
}
