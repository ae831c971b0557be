// The MNIST directory convention (train-/t10k- images and labels, optionally .gz), as shipped by Debian's
// dataset-fashion-mnist under /usr/share/datasets/fashion-mnist: finds the four files and pairs them up.
namespace DistTrain.Core.Data;

public static class MnistLayout
{
    public const string TrainImages = "train-images-idx3-ubyte";
    public const string TrainLabels = "train-labels-idx1-ubyte";
    public const string TestImages = "t10k-images-idx3-ubyte";
    public const string TestLabels = "t10k-labels-idx1-ubyte";

    /// <summary>
    /// Loads the train pair from <paramref name="directory"/> and the t10k pair from
    /// <paramref name="testDirectory"/> (default: the same directory). The test pair is required when a test
    /// directory is named; otherwise it is optional, but never half present. Classes = max label + 1 over both.
    /// </summary>
    public static DataSplit Load(string directory, string? testDirectory = null)
    {
        string trainDir = RequireDirectory(directory);
        Dataset train = LoadPair(trainDir, TrainImages, TrainLabels, required: true)!;

        string testDir = testDirectory is null ? trainDir : RequireDirectory(testDirectory);
        Dataset? test = LoadPair(testDir, TestImages, TestLabels, required: testDirectory is not null);
        if (test is not null && test.Width != train.Width)
            throw new UserInputException(
                $"{test.Source}: images have {test.Width} pixels, but the training images in {trainDir} have {train.Width}");

        int classes = Math.Max(train.Classes, test?.Classes ?? 0);
        return new DataSplit(train.WithClasses(classes), test?.WithClasses(classes));
    }

    private static string RequireDirectory(string directory)
    {
        string full = Path.GetFullPath(directory);
        if (!Directory.Exists(full))
            throw new UserInputException(full == DataSpec.DefaultIdxDirectory
                ? $"{full}: Fashion-MNIST not found; install it with 'apt-get install dataset-fashion-mnist' or pass --data DIR"
                : $"{full}: data directory not found (expected {TrainImages}[.gz], {TrainLabels}[.gz], {TestImages}[.gz], {TestLabels}[.gz])");
        return full;
    }

    private static Dataset? LoadPair(string directory, string imagesName, string labelsName, bool required)
    {
        string? imagesPath = Find(directory, imagesName);
        string? labelsPath = Find(directory, labelsName);
        if (imagesPath is null && labelsPath is null && !required) return null;
        if (imagesPath is null || labelsPath is null)
        {
            string missing = imagesPath is null ? imagesName : labelsName;
            throw new UserInputException(
                $"{directory}: missing {missing} or {missing}.gz (expected {imagesName}[.gz] and {labelsName}[.gz] in this directory)");
        }

        IdxImages images = IdxReader.ReadImages(imagesPath);
        int[] labels = IdxReader.ReadLabels(labelsPath);
        if (labels.Length != images.Count)
            throw new UserInputException(
                $"{labelsPath}: {labels.Length} labels, but {imagesPath} has {images.Count} images");
        if (images.Count == 0)
            throw new UserInputException($"{imagesPath}: contains no images");

        int classes = 0;
        foreach (int label in labels) classes = Math.Max(classes, label + 1);
        return Dataset.FromBytes(images.Bytes, labels, images.Rows * images.Columns, classes, imagesPath,
            [1, images.Rows, images.Columns]);
    }

    /// <summary>Prefers the uncompressed file when both exist (someone unpacked it on purpose).</summary>
    private static string? Find(string directory, string name)
    {
        string plain = Path.Combine(directory, name);
        if (File.Exists(plain)) return plain;
        string gz = plain + ".gz";
        return File.Exists(gz) ? gz : null;
    }
}
