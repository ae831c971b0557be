// Randomly damaged inputs must end in a result or a UserInputException, never another exception type.
using DistTrain.Core;
using DistTrain.Core.Data;

using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Data;

public class RobustnessTests
{
    private const int Mutations = 10_000;

    [Fact]
    public void MutatedIdxFilesFailCleanly()
    {
        using var dir = new TempDirectory();
        var rng = new DeterministicRandom(2024);
        byte[] images = IdxFiles.Images([.. Enumerable.Range(0, 3 * 4 * 5).Select(i => (byte)i)], 3, 4, 5);
        byte[] labels = IdxFiles.Labels([1, 2, 3]);
        string path = dir.File("mutant");
        for (int i = 0; i < Mutations; i++)
        {
            bool imageFile = i % 2 == 0;
            byte[] bytes = Mutate(imageFile ? images : labels, rng);
            if (i % 4 >= 2) bytes = Mutate(IdxFiles.Gzip(bytes), rng); // damage the compressed bytes too
            File.WriteAllBytes(path, bytes);
            ExpectResultOrUserError(() => { if (imageFile) IdxReader.ReadImages(path); else IdxReader.ReadLabels(path); }, bytes);
        }
    }

    [Fact]
    public void MutatedCsvFilesFailCleanly()
    {
        using var dir = new TempDirectory();
        var rng = new DeterministicRandom(2025);
        byte[] csv = System.Text.Encoding.UTF8.GetBytes("label,a,b,c\n1,0.5,2,3\n0,1e3,-4,5\n2,6,7,8.25\n");
        byte[] labels = System.Text.Encoding.UTF8.GetBytes("0\n1\n2\n");
        string path = dir.File("mutant.csv"), x = dir.File("x.csv"), y = dir.File("y.csv");
        File.WriteAllText(x, "1,2,3\n4,5,6\n7,8,9\n");
        for (int i = 0; i < Mutations; i++)
        {
            byte[] bytes = Mutate(i % 2 == 0 ? csv : labels, rng);
            File.WriteAllBytes(i % 2 == 0 ? path : y, bytes);
            int? classes = i % 3 == 0 ? 3 : null;
            ExpectResultOrUserError(i % 2 == 0 ? () => CsvReader.ReadCombined(path, "label", classes) : () => CsvReader.ReadSeparate(x, y, classes), bytes);
        }
    }

    private static void ExpectResultOrUserError(Action load, byte[] input)
    {
        try
        {
            load();
        }
        catch (UserInputException e)
        {
            Assert.DoesNotContain('\n', e.Message);
        }
        catch (Exception e)
        {
            Assert.Fail($"{e.GetType().Name}: {e.Message} for input {Convert.ToHexString(input)}");
        }
    }

    /// <summary>One to three edits: overwrite a byte, flip a bit, truncate, insert or duplicate a run.</summary>
    internal static byte[] Mutate(byte[] original, DeterministicRandom rng)
    {
        var bytes = new List<byte>(original);
        int edits = 1 + rng.NextInt(3);
        for (int e = 0; e < edits && bytes.Count > 0; e++)
        {
            int at = rng.NextInt(bytes.Count);
            switch (rng.NextInt(5))
            {
                case 0: bytes[at] = (byte)rng.NextInt(256); break;
                case 1: bytes[at] ^= (byte)(1 << rng.NextInt(8)); break;
                case 2: bytes.RemoveRange(at, bytes.Count - at); break;
                case 3: bytes.Insert(at, (byte)rng.NextInt(256)); break;
                default: bytes.InsertRange(at, bytes.GetRange(at, Math.Min(8, bytes.Count - at))); break;
            }
        }
        return [.. bytes];
    }
}
