// The coordinator's side of the same-host transport (protos/SameHost/SharedMemory.cs): a private directory (mode 0700) under
// /dev/shm holding the weights file and one slot file per worker id, all stamped with one random nonce that Prepare
// sends. Removed on dispose; directories left by a coordinator that was killed are removed by the next one.
// It also hands each same-host worker CPUs of its own for its compute threads (when binding is on): two workers
// left to the scheduler were often stacked on one core while the other idled, and the step waited for them.
// CPUs go to workers in the order they are prepared, lowest first; a worker keeps its CPUs when it rejoins, and
// one that would not fit gets none (its threads are not bound).
// Finally it listens on a Unix-domain socket in the same directory for step links (StepLink): a worker that opened
// the files connects, proves it with the nonce and its id, and from then on its steps travel over that socket.
using System.Security.Cryptography;
using DistTrain.Core;
using DistTrain.Core.Training;
using DistTrain.Protos;
using System.Net.Sockets;
using Google.Protobuf;

namespace DistTrain.Coordinator.Distributed;

public sealed class SharedMemoryHost : IBulkPlane
{
    private const string Prefix = "disttrain-";
    private readonly byte[] _nonce = RandomNumberGenerator.GetBytes(MappedFile.NonceBytes);
    private readonly Dictionary<string, SharedSlots> _slots = [];
    private readonly int _parameterCount;
    private readonly int _slotCount;
    private readonly IReadOnlyList<int> _cpus;
    private readonly Dictionary<string, IReadOnlyList<int>> _cpusOf = [];
    private readonly Dictionary<string, StepLink> _links = [];
    private readonly Socket _listener;
    private readonly int _maxReplyBytes;
    private readonly Action<string> _log;
    private long _lastPool;
    private bool _disposed;

    private SharedMemoryHost(string directory, int parameterCount, int slotCount, int indexCapacity, IReadOnlyList<int> cpus,
        Action<string> log)
    {
        Directory = directory;
        _parameterCount = parameterCount;
        _slotCount = slotCount;
        _cpus = cpus;
        _log = log;
        _maxReplyBytes = MessageLimits.ToOption(MessageLimits.ReplyBytes(parameterCount, slotCount));
        string path = Path.Combine(directory, "weights");
        Weights = new SharedWeights(MappedFile.Create(path, SharedWeights.FileBytes(parameterCount, indexCapacity), _nonce),
            parameterCount, indexCapacity);
        StepSocketPath = Path.Combine(directory, "steps.sock");
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            _listener.Bind(new UnixDomainSocketEndPoint(StepSocketPath));
            _listener.Listen(64);
        }
        catch
        {
            _listener.Dispose();
            Weights.Dispose();
            throw;
        }
        new Thread(AcceptLinks) { IsBackground = true, Name = "disttrain-link-accept" }.Start();
    }

    public string StepSocketPath { get; }

    /// <summary>The open step link of <paramref name="workerId"/>, if it connected.</summary>
    public StepLink? LinkOf(string workerId)
    {
        lock (_slots) return _links.TryGetValue(workerId, out var link) && link.IsOpen ? link : null;
    }

    private void AcceptLinks()
    {
        while (true)
        {
            Socket connection;
            try { connection = _listener.Accept(); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { return; }
            try { Admit(connection); }
            catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
            {
                _log($"a step link was refused: {e.Message}");
                connection.Dispose();
            }
        }
    }

    /// <summary>Reads the Hello (nonce + worker id, within 10 s), checks both, answers, and keeps the link.</summary>
    private void Admit(Socket connection)
    {
        connection.ReceiveTimeout = 10_000;
        var buffer = new byte[256];
        if (!StepFrames.Read(connection, ref buffer, buffer.Length, out _, out byte kind, out int length) ||
            kind != StepFrames.Hello || length <= MappedFile.NonceBytes ||
            !buffer.AsSpan(0, MappedFile.NonceBytes).SequenceEqual(_nonce))
            throw new IOException("its hello did not carry this coordinator's nonce");
        string workerId = System.Text.Encoding.UTF8.GetString(buffer, MappedFile.NonceBytes, length - MappedFile.NonceBytes);
        connection.ReceiveTimeout = 0;
        StepLink? old;
        lock (_slots)
        {
            if (_disposed) throw new ObjectDisposedException(nameof(SharedMemoryHost));
            if (!_slots.ContainsKey(workerId)) throw new IOException($"no shared memory was offered to '{workerId}'");
            _links.Remove(workerId, out old);
            _links[workerId] = new StepLink(connection, workerId, _maxReplyBytes);
        }
        old?.Dispose();
        StepFrames.Write(connection, 0, StepFrames.Hello, ReadOnlySpan<byte>.Empty);
    }

    public string Directory { get; }
    public SharedWeights Weights { get; }


    /// <summary>
    /// Creates the files under <paramref name="root"/>; <paramref name="slotCount"/> = the most blocks one step can
    /// have (its shard count); <paramref name="indexCapacity"/> = room for a batch's indices next to the weights (the
    /// batch size; 0: indices travel in the requests). Throws UserInputException when the root is not a directory,
    /// SharedMemoryException when it cannot hold the files (e.g. too little space).
    /// </summary>
    public static SharedMemoryHost Create(string root, int parameterCount, int slotCount, Action<string> log,
        bool bindCpus = true, int indexCapacity = 0)
    {
        if (!System.IO.Directory.Exists(root))
            throw new UserInputException($"--shared-memory {root}: no such directory (give a directory on a memory file system, or 'off')");
        RemoveStale(root, log);
        string directory = Path.Combine(root, $"{Prefix}{Environment.ProcessId}-{Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant()}");
        try
        {
            if (OperatingSystem.IsWindows()) System.IO.Directory.CreateDirectory(directory);
            else System.IO.Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            return new SharedMemoryHost(directory, parameterCount, slotCount, indexCapacity, bindCpus ? CpuAffinity.ProcessCpus : [], log);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SocketException)
        {
            TryDelete(directory);
            throw new SharedMemoryException($"cannot create the shared files under {root}: {e.Message}");
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
                SlotCount = _slotCount, StepSocketPath = StepSocketPath, IndexCapacity = Weights.IndexCapacity,
            };
            offer.ComputeCpus.AddRange(CpusFor(workerId, threads));
            return (offer, slots);
        }
    }

    public string Name => "shared memory";

    public IBulkOffer OfferFor(string workerId, int threads)
    {
        var (offer, slots) = ForWorker(workerId, threads);
        return new Offer(this, workerId, offer, slots);
    }

    /// <summary>The files and the step link as one worker's offer, and what its Prepare reply took of them.</summary>
    private sealed class Offer(SharedMemoryHost host, string workerId, SharedMemoryOffer offer, SharedSlots slots) : IBulkOffer
    {
        public void AddTo(PrepareRequest request) => request.SharedMemory = offer;

        public BulkMember? Accept(PrepareReply reply)
        {
            if (!reply.SharedMemory) return null;
            var link = reply.StepLink ? host.LinkOf(workerId) : null;
            // Where its compute threads run, when it bound them as offered (requests to it go last from a thread on them).
            var cpus = reply.CpuBinding.StartsWith("bound", StringComparison.Ordinal) ? offer.ComputeCpus.ToList() : null;
            link?.WaitOnCpus(cpus ?? []);
            return new BulkMember(slots, link, cpus,
                $"weights and gradients through shared memory, steps over {(link is null ? "gRPC" : "the same-host link")}; compute threads {PeerText.Printable(reply.CpuBinding)}");
        }

        public string Declined(PrepareReply reply) => $"shared memory not used: {PeerText.Printable(reply.SharedMemoryNote)}";
    }

    /// <summary>Writes the weights, and the indices when the file has room for them, under the step's stamp.</summary>
    public bool Publish(long step, ReadOnlySpan<float> weights, ReadOnlySpan<int> indices, bool roundToBf16)
    {
        bool withIndices = indices.Length <= Weights.IndexCapacity;
        Weights.Write(step, weights, withIndices ? indices : default, roundToBf16);
        return withIndices;
    }

    /// <summary>A new pool id per attempt: a member still working on an earlier attempt can claim nothing of this one.</summary>
    public long OpenPool()
    {
        _lastPool = _lastPool % SharedWeights.MaxPoolId + 1;
        Weights.OpenPool(_lastPool);
        return _lastPool;
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
            _listener.Dispose();
            foreach (var link in _links.Values) link.Dispose();
            foreach (var slots in _slots.Values) slots.Dispose();
            Weights.Dispose();
        }
        TryDelete(Directory);
    }
}
