// The coordinator's side of the same-host transport (protos/SharedMemory.cs): a private directory (mode 0700) under
// /dev/shm holding the weights file and one slot file per worker id, all stamped with one random nonce that Prepare
// sends. Removed on dispose; directories left by a coordinator that was killed are removed by the next one.
using System.Security.Cryptography;
using DistTrain.Core;
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
    private bool _disposed;

    private SharedMemoryHost(string directory, int parameterCount, int slotCount)
    {
        Directory = directory;
        _parameterCount = parameterCount;
        _slotCount = slotCount;
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
    public static SharedMemoryHost Create(string root, int parameterCount, int slotCount, Action<string> log)
    {
        if (!System.IO.Directory.Exists(root))
            throw new UserInputException($"--shared-memory {root}: no such directory (give a directory on a memory file system, or 'off')");
        RemoveStale(root, log);
        string directory = Path.Combine(root, $"{Prefix}{Environment.ProcessId}-{Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant()}");
        try
        {
            if (OperatingSystem.IsWindows()) System.IO.Directory.CreateDirectory(directory);
            else System.IO.Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            return new SharedMemoryHost(directory, parameterCount, slotCount);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(directory);
            throw new UserInputException($"--shared-memory {root}: cannot create the shared files: {e.Message}");
        }
    }

    /// <summary>The offer for worker <paramref name="workerId"/> and its slot file (created once per id, reused when it rejoins).</summary>
    public (SharedMemoryOffer Offer, SharedSlots Slots) ForWorker(string workerId)
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
            return (offer, slots);
        }
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
