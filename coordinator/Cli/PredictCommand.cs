// `disttrain predict --model W.safetensors --config FILE --input FILE [--output OUT.csv]`: reads raw samples with
// the training readers (an IDX images file, or CSV with or without the config's label column), applies the
// preprocessing saved with the model, and writes per row the predicted class and the class probabilities. When the
// input has labels (an IDX labels file beside the images, or the label column) the accuracy is reported too.
using System.Globalization;
using DistTrain.Core;
using DistTrain.Core.Data;
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Cli;

public static class PredictCommand
{
    public static int Run(CommandOptions flags)
    {
        string input = flags.Require("--input");
        var model = SavedModel.Load(flags);
        var (samples, labelsSource) = ReadInput(input, model.Config.Data);
        model.Network.CheckCompatible(samples);
        model.Preprocessing.Apply(samples);

        using var predictor = new Predictor(model.Network, model.Config.EffectiveThreads);
        var predictions = predictor.Predict(model.Weights, samples);

        string? output = flags.Get("--output");
        using (var writer = output is null ? new StreamWriter(Console.OpenStandardOutput()) : OpenOutput(output))
            Write(writer, predictions, labelsSource is null ? null : samples.Labels);
        if (labelsSource is not null)
        {
            int correct = 0;
            for (int i = 0; i < samples.Count; i++) correct += predictions.Classes[i] == samples.Labels[i] ? 1 : 0;
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"predict: {samples.Count} rows, accuracy {100.0 * correct / samples.Count:F2}% against {labelsSource}"));
        }
        else Console.Error.WriteLine($"predict: {samples.Count} rows");
        if (output is not null) Console.Error.WriteLine($"wrote {output}");
        return 0;
    }

    /// <summary>The raw samples and, when the input carries labels, where they came from.</summary>
    private static (Dataset Samples, string? LabelsSource) ReadInput(string input, DataSpec spec)
    {
        string path = Path.GetFullPath(input);
        if (!File.Exists(path))
            throw new UserInputException($"{input}: input file not found (expected an IDX images file or a CSV file)");
        if (path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase))
            return CsvReader.HeaderHas(path, spec.LabelColumn)
                ? (CsvReader.ReadCombined(path, spec.LabelColumn), $"column '{spec.LabelColumn}'")
                : (CsvReader.ReadFeatures(path), null);
        IdxImages images = IdxReader.ReadImages(path);
        int width = images.Rows * images.Columns;
        string name = Path.GetFileName(path);
        string? labelsPath = name.Contains("images-idx3", StringComparison.Ordinal)
            ? Path.Combine(Path.GetDirectoryName(path)!, name.Replace("images-idx3", "labels-idx1", StringComparison.Ordinal))
            : null;
        if (labelsPath is not null && File.Exists(labelsPath))
        {
            int[] labels = IdxReader.ReadLabels(labelsPath);
            if (labels.Length != images.Count)
                throw new UserInputException($"{labelsPath}: {labels.Length} labels, but {path} has {images.Count} images");
            return (new Dataset(images.Widened(), labels, width, labels.Length == 0 ? 1 : labels.Max() + 1, path), labelsPath);
        }
        return (new Dataset(images.Widened(), new int[images.Count], width, 1, path), null);
    }

    private static StreamWriter OpenOutput(string output)
    {
        try
        {
            return new StreamWriter(output);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserInputException($"{output}: cannot write the predictions: {e.Message}");
        }
    }

    /// <summary>CSV: row, predicted[, label], p0..p(k-1), probabilities as round-trip floats.</summary>
    private static void Write(TextWriter writer, Predictions predictions, int[]? labels)
    {
        int width = predictions.Width;
        writer.Write("row,predicted");
        if (labels is not null) writer.Write(",label");
        for (int k = 0; k < width; k++) writer.Write(string.Create(CultureInfo.InvariantCulture, $",p{k}"));
        writer.WriteLine();
        for (int i = 0; i < predictions.Rows; i++)
        {
            writer.Write(string.Create(CultureInfo.InvariantCulture, $"{i},{predictions.Classes[i]}"));
            if (labels is not null) writer.Write(string.Create(CultureInfo.InvariantCulture, $",{labels[i]}"));
            var row = predictions.Probabilities.AsSpan(i * width, width);
            foreach (float p in row) writer.Write(string.Create(CultureInfo.InvariantCulture, $",{p:R}"));
            writer.WriteLine();
        }
    }
}
