// The coordinator's side of the same-host transport (protos/SharedMemory.cs): a private directory (mode 0700) under
// /dev/shm holding the weights file and one slot file per worker id, all stamped with one random nonce that Prepare
// sends. Removed on dispose; directories left by a coordinator that was killed are removed by the next one.
// It also hands each same-host worker CPUs of its own for its compute threads (when binding is on): two workers
// left to the scheduler were often stacked on one core while the other idled, and the step waited for them.
// CPUs go to workers in the order they are prepared, lowest first; a worker keeps its CPUs when it rejoins, and
// one that would not fit gets none (its threads are not bound).
using System.Security.Cryptography;
using DistTrain.Core;
using DistTrain.Core.Training;
using DistTrain.Protos;
using Google.Protobuf;

namespace DistTrain.Coordinator.Distributed;

public sealed class SharedMemoryHost : IDisposable
{
    private const string Prefix = "disttrain-";
    private readonly byte[] _nonce = RandomNumberGenerator.GetBytes(MappedFile.NonceBytes);
    private readonly Dictionary<string, SharedSlots> _slots = [];
    private readonly int _parameterCount;
    private readonly int _slotCount;
    private readonly IReadOnlyList<int> _cpus;
    private readonly Dictionary<string, IReadOnlyList<int>> _cpusOf = [];
    private bool _disposed;

    private SharedMemoryHost(string directory, int parameterCount, int slotCount, IReadOnlyList<int> cpus)
    {
        Directory = directory;
        _parameterCount = parameterCount;
        _slotCount = slotCount;
        _cpus = cpus;
        string path = Path.Combine(directory, "weights");
        Weights = new SharedWeights(MappedFile.Create(path, SharedWeights.FileBytes(parameterCount), _nonce), parameterCount);
    }

    public string Directory { get; }
    public SharedWeights Weights { get; }

    /// <summary>The default root: /dev/shm where it exists (Linux), else none (the transport is off).</summary>
    public static string? DefaultRoot => System.IO.Directory.Exists("/dev/shm") ? "/dev/shm" : null;

    /// <summary>
    /// Creates the files under <paramref name="root"/>; <paramref name="slotCount"/> = the most blocks one step can
    /// have (its shard count). Throws UserInputException when the root cannot hold them.
    /// </summary>
    public static SharedMemoryHost Create(string root, int parameterCount, int slotCount, Action<string> log,
        bool bindCpus = true)
    {
        if (!System.IO.Directory.Exists(root))
            throw new UserInputException($"--shared-memory {root}: no such directory (give a directory on a memory file system, or 'off')");
        RemoveStale(root, log);
        string directory = Path.Combine(root, $"{Prefix}{Environment.ProcessId}-{Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant()}");
        try
        {
            if (OperatingSystem.IsWindows()) System.IO.Directory.CreateDirectory(directory);
            else System.IO.Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            return new SharedMemoryHost(directory, parameterCount, slotCount, bindCpus ? CpuAffinity.ProcessCpus : []);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(directory);
            throw new UserInputException($"--shared-memory {root}: cannot create the shared files: {e.Message}");
        }
    }

    /// <summary>
    /// The offer for worker <paramref name="workerId"/> with <paramref name="threads"/> compute threads: its slot file
    /// (created once per id, reused when it rejoins) and its CPUs.
    /// </summary>
    public (SharedMemoryOffer Offer, SharedSlots Slots) ForWorker(string workerId, int threads)
    {
        lock (_slots)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_slots.TryGetValue(workerId, out var slots))
            {
                string path = Path.Combine(Directory, $"slots-{workerId}");
                slots = new SharedSlots(MappedFile.Create(path, SharedSlots.FileBytes(_parameterCount, _slotCount), _nonce),
                    _parameterCount, _slotCount);
                _slots[workerId] = slots;
            }
            var offer = new SharedMemoryOffer
            {
                WeightsPath = Weights.File.Path, SlotsPath = slots.File.Path, Nonce = ByteString.CopyFrom(_nonce),
                SlotCount = _slotCount,
            };
            offer.ComputeCpus.AddRange(CpusFor(workerId, threads));
            return (offer, slots);
        }
    }

    private IReadOnlyList<int> CpusFor(string workerId, int threads)
    {
        if (_cpusOf.TryGetValue(workerId, out var owned) && owned.Count == threads) return owned;
        _cpusOf.Remove(workerId);
        var taken = _cpusOf.Values.SelectMany(c => c).ToHashSet();
        var free = _cpus.Where(cpu => !taken.Contains(cpu)).Take(threads).ToList();
        if (threads < 1 || free.Count < threads) return [];
        _cpusOf[workerId] = free;
        return free;
    }

    /// <summary>Removes directories of coordinators that no longer run (their pid is gone), e.g. after kill -9.</summary>
    private static void RemoveStale(string root, Action<string> log)
    {
        if (!OperatingSystem.IsLinux()) return;
        foreach (var directory in System.IO.Directory.EnumerateDirectories(root, Prefix + "*"))
        {
            string[] parts = Path.GetFileName(directory)[Prefix.Length..].Split('-');
            if (parts.Length != 2 || !int.TryParse(parts[0], out int pid) || System.IO.Directory.Exists($"/proc/{pid}")) continue;
            if (TryDelete(directory)) log($"removed {directory}, left by a coordinator that is no longer running");
        }
    }

    private static bool TryDelete(string directory)
    {
        try
        {
            System.IO.Directory.Delete(directory, recursive: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>Unmaps and deletes the files. Workers that still map them keep their pages until they close them.</summary>
    public void Dispose()
    {
        lock (_slots)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var slots in _slots.Values) slots.Dispose();
            Weights.Dispose();
        }
        TryDelete(Directory);
    }
}
