using System.IO.Compression;
using DistTrain.Core.Data;

namespace DistTrain.Tests.Distributed;

/// <summary>The first images of Debian's Fashion-MNIST as a small uncompressed IDX directory (train files only).</summary>
public static class FashionSubset
{
    public const string Source = "/usr/share/datasets/fashion-mnist";

    /// <summary>Writes the first <paramref name="count"/> training images and labels under <paramref name="parent"/>.</summary>
    public static string Write(string parent, int count)
    {
        string dir = Path.Combine(parent, $"fashion-subset-{count}");
        Directory.CreateDirectory(dir);
        Copy(MnistLayout.TrainImages, 16, 784);
        Copy(MnistLayout.TrainLabels, 8, 1);
        return dir;

        void Copy(string name, int headerLength, int recordLength)
        {
            using var source = new GZipStream(File.OpenRead(Path.Combine(Source, name + ".gz")), CompressionMode.Decompress);
            var header = new byte[headerLength];
            source.ReadExactly(header);
            // The count (big-endian, after the magic number) becomes ours.
            header[4] = (byte)(count >> 24); header[5] = (byte)(count >> 16); header[6] = (byte)(count >> 8); header[7] = (byte)count;
            var body = new byte[count * recordLength];
            source.ReadExactly(body);
            using var target = File.Create(Path.Combine(dir, name));
            target.Write(header);
            target.Write(body);
        }
    }
}
