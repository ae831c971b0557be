// The only shared-memory files a worker opens: those a coordinator on this machine creates (SharedMemoryHost), i.e.
// <the worker's --shared-memory-dir>/disttrain-<pid>-<8 hex>/{weights, slots-<its id>, steps.sock}, none of them
// (nor the directory) a symbolic link. A Prepare is a network message: without this rule it could name any file
// that begins with the nonce and have the worker map it read-write and write gradients into it.
using System.Text.RegularExpressions;
using DistTrain.Protos;

namespace DistTrain.Worker;

public static partial class SharedMemoryPaths
{
    public const string WeightsFile = "weights";
    public const string SlotsPrefix = "slots-";
    public const string StepSocketFile = "steps.sock";

    [GeneratedRegex("^disttrain-[0-9]{1,10}-[0-9a-f]{8}$")]
    private static partial Regex DirectoryPattern();

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex WorkerIdPattern();

    /// <summary>
    /// Throws SharedMemoryException (its message is the note the coordinator logs; the worker then uses gRPC) unless
    /// every path of <paramref name="offer"/> is the file of that name in one coordinator directory under
    /// <paramref name="root"/>, and no link.
    /// </summary>
    public static void Check(SharedMemoryOffer offer, string root, string workerId)
    {
        if (!WorkerIdPattern().IsMatch(workerId))
            throw Refused($"worker id '{Printable(workerId)}' cannot name a slots file");
        string directory = DirectoryOf(offer.WeightsPath, WeightsFile, root);
        if (DirectoryOf(offer.SlotsPath, SlotsPrefix + workerId, root) != directory)
            throw Refused($"the slots file {Printable(offer.SlotsPath)} is not beside the weights file");
        if (offer.StepSocketPath.Length > 0 && DirectoryOf(offer.StepSocketPath, StepSocketFile, root) != directory)
            throw Refused($"the step socket {Printable(offer.StepSocketPath)} is not beside the weights file");
        if (new DirectoryInfo(directory).LinkTarget is not null) throw Refused($"{directory} is a symbolic link");
        foreach (string file in new[] { offer.WeightsPath, offer.SlotsPath })
            if (new FileInfo(file).LinkTarget is not null) throw Refused($"{file} is a symbolic link");
    }

    /// <summary>The directory of <paramref name="path"/>, which must be root/disttrain-PID-HEX/<paramref name="name"/>.</summary>
    private static string DirectoryOf(string path, string name, string root)
    {
        string fullRoot = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        // GetFullPath would resolve "..", so a path that changes under it was not in normal form.
        if (path.Length == 0 || path.Length > 4096 || !Path.IsPathFullyQualified(path) || Path.GetFullPath(path) != path ||
            Path.GetFileName(path) != name || Path.GetDirectoryName(path) is not { } directory ||
            Path.GetDirectoryName(directory) != fullRoot || !DirectoryPattern().IsMatch(Path.GetFileName(directory)))
            throw Refused($"{Printable(path)} is not {Path.Combine(fullRoot, "disttrain-<pid>-<8 hex>", name)} " +
                          "(this worker opens shared memory only under its --shared-memory-dir)");
        return directory;
    }

    private static SharedMemoryException Refused(string why) => new($"offer refused: {why}");

    private static string Printable(string s) => new(s.Take(200).Select(c => char.IsControl(c) ? '?' : c).ToArray());
}
