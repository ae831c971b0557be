// Finds the dataset a coordinator asks for — in the cache of datasets received earlier (keyed by fingerprint) or by
// loading the DataSpec from this worker's own --data — and proves it by fingerprint; receives and caches a
// dataset streamed by the coordinator. A fingerprint that does not match is a refusal, never a silent retrain.
// The spec comes from the network, so its paths never name a file here: only their base names are looked up inside
// the --data directory (LocalSpec).
using System.Text.RegularExpressions;
using DistTrain.Core.Data;
using DistTrain.Protos;
using Grpc.Core;

namespace DistTrain.Worker;

public sealed partial class DatasetStore(WorkerOptions options, ILogger<DatasetStore> log)
{
    // Fingerprints become file names, so only plain tokens are accepted.
    [GeneratedRegex("^[A-Za-z0-9_-]{1,128}$")]
    private static partial Regex FingerprintPattern();

    public static bool IsValidFingerprint(string fingerprint) => FingerprintPattern().IsMatch(fingerprint);

    private string CachePath(string fingerprint) => Path.Combine(options.EffectiveCacheDir, $"{fingerprint}.dtds");

    /// <summary>
    /// The dataset with <paramref name="fingerprint"/>, or null when this worker has no way to load it (then the
    /// coordinator streams it). Throws FailedPrecondition when the worker's own data has a different fingerprint.
    /// </summary>
    public (DataSplit Split, string Source)? Find(DataSpec spec, string fingerprint)
    {
        string cached = CachePath(fingerprint);
        if (File.Exists(cached))
        {
            try
            {
                byte[] payload = File.ReadAllBytes(cached);
                if (!DatasetCodec.IsCurrentVersion(payload))
                {
                    // Removed, so it is said once: the next dataset received is cached in the current format.
                    log.LogInformation("cached dataset {Path} is in an older format; removing it and getting the data again", cached);
                    try { File.Delete(cached); }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
                }
                else
                {
                    var split = DatasetCodec.Decode(payload);
                    if (Fingerprint.Compute(split) == fingerprint) return (split, $"cache {cached}");
                    log.LogWarning("cached dataset {Path} no longer matches its fingerprint; ignoring it", cached);
                }
            }
            catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException)
            {
                log.LogWarning("cached dataset {Path} is unreadable ({Message}); ignoring it", cached, e.Message);
            }
        }

        if (LocalSpec(spec, options.Data) is not { } local)
        {
            log.LogInformation("no local copy of {Format} data (--data not set); it will be received from the coordinator", spec.Format);
            return null;
        }
        DataSplit loaded;
        try
        {
            loaded = DataLoader.Load(local);
        }
        catch (Exception e) when (e is Core.UserInputException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            log.LogInformation("cannot load the data locally ({Message}); it will be received from the coordinator", e.Message);
            return null;
        }
        string actual = Fingerprint.Compute(loaded);
        if (actual != fingerprint)
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"dataset fingerprint mismatch: this worker's data ({local.Path ?? local.Format}) has fingerprint {actual}, the coordinator's has {fingerprint}"));
        return (loaded, $"loaded {local.Path ?? local.Format}");
    }

    /// <summary>
    /// <paramref name="spec"/> (deserialized for this call, so changed in place) with its paths replaced by this
    /// worker's: none for synthetic formats; for idx and csv the --data path, and every other file the spec names
    /// taken by its base name inside the --data directory (or the directory of a --data file). Null when the
    /// format needs files and this worker has no --data, or a name is not a plain file name.
    /// </summary>
    internal static DataSpec? LocalSpec(DataSpec spec, string? data)
    {
        string? path = spec.Path, test = spec.TestPath, labels = spec.LabelsPath, testLabels = spec.TestLabelsPath;
        spec.Path = spec.TestPath = spec.LabelsPath = spec.TestLabelsPath = null;
        string format = (spec.Format ?? "").Trim().ToLowerInvariant();
        if (format is not ("idx" or "csv")) return spec;
        if (string.IsNullOrEmpty(data)) return null;
        string own = Path.GetFullPath(data);
        string directory = Directory.Exists(own) ? own : Path.GetDirectoryName(own) ?? own;
        string? Inside(string? name)
        {
            if (string.IsNullOrWhiteSpace(name)) return null;
            string file = Path.GetFileName(Path.TrimEndingDirectorySeparator(name.Trim()));
            return file is "" or "." or ".." ? throw new ArgumentException($"'{name}' names no file") : Path.Combine(directory, file);
        }
        try
        {
            spec.Path = Directory.Exists(own) && format == "csv" && path is not null ? Inside(path) : own;
            // idx's test files usually sit in the training directory, named the same.
            spec.TestPath = test is not null && test == path ? spec.Path : Inside(test);
            (spec.LabelsPath, spec.TestLabelsPath) = (Inside(labels), Inside(testLabels));
        }
        catch (ArgumentException) { return null; }
        return spec;
    }

    /// <summary>
    /// The cache holds training data: only this user may list or read it (0700, files 0600). An existing directory
    /// is narrowed to 0700 when this user owns it.
    /// </summary>
    internal static void CreatePrivateDirectory(string path)
    {
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        if (OperatingSystem.IsWindows()) { Directory.CreateDirectory(path); return; }
        var directory = Directory.CreateDirectory(path, Private);
        if ((directory.UnixFileMode & ~Private) != 0) File.SetUnixFileMode(path, Private);
    }

    /// <summary>Assembles a streamed dataset on disk, checks it against the declared fingerprint and caches it.</summary>
    public async Task<long> ReceiveAsync(IAsyncStreamReader<DatasetChunk> chunks, CancellationToken cancellationToken)
    {
        CreatePrivateDirectory(options.EffectiveCacheDir);
        string temp = Path.Combine(options.EffectiveCacheDir, $"incoming-{Guid.NewGuid():N}.tmp");
        string? fingerprint = null;
        long total = -1, received = 0;
        try
        {
            var create = new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 1 << 16,
                Options = FileOptions.Asynchronous,
            };
            if (!OperatingSystem.IsWindows()) create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            await using (var file = new FileStream(temp, create))
            {
                while (await chunks.MoveNext(cancellationToken))
                {
                    var chunk = chunks.Current;
                    Protocol.Check(chunk.ProtocolVersion, "ReceiveDataset");
                    if (fingerprint is null)
                    {
                        if (!IsValidFingerprint(chunk.DatasetFingerprint))
                            throw Invalid($"first chunk must carry a dataset fingerprint, found '{Truncate(chunk.DatasetFingerprint)}'");
                        if (chunk.TotalBytes <= 0 || chunk.TotalBytes > options.MaxDatasetBytes || chunk.TotalBytes > Array.MaxLength)
                            throw Invalid($"dataset size {chunk.TotalBytes} is outside 1..{Math.Min(options.MaxDatasetBytes, Array.MaxLength)} bytes");
                        (fingerprint, total) = (chunk.DatasetFingerprint, chunk.TotalBytes);
                    }
                    if (chunk.Offset != received)
                        throw Invalid($"chunk at offset {chunk.Offset}, expected {received}");
                    if (chunk.Data.Length > total - received)
                        throw Invalid($"chunks exceed the declared {total} bytes");
                    await file.WriteAsync(chunk.Data.Memory, cancellationToken);
                    received += chunk.Data.Length;
                }
                await file.FlushAsync(cancellationToken);
            }
            if (fingerprint is null) throw Invalid("the dataset stream was empty");
            if (received != total) throw Invalid($"received {received} of {total} dataset bytes");
            DataSplit split;
            try { split = DatasetCodec.Decode(await File.ReadAllBytesAsync(temp, cancellationToken)); }
            catch (InvalidDataException e) { throw Invalid($"dataset payload is malformed: {e.Message}"); }
            string actual = Fingerprint.Compute(split);
            if (actual != fingerprint)
                throw Invalid($"received dataset has fingerprint {actual}, the stream declared {fingerprint}");
            File.Move(temp, CachePath(fingerprint), overwrite: true);
            log.LogInformation("received and cached dataset {Fingerprint} ({Bytes} bytes)", fingerprint, received);
            return received;
        }
        finally
        {
            try { File.Delete(temp); } catch (IOException) { }
        }
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    private static string Truncate(string s) => s.Length <= 40 ? s : s[..40] + "…";

}
