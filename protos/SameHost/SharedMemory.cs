// Same-host transport for the two large payloads of a step. When a worker runs on the coordinator's machine, the
// weights and the gradient sums move through memory-mapped files instead of the gRPC messages: the coordinator
// writes the weights once per step for every worker, each worker writes its block sums into its own slot file, and
// the ComputeGradients request and reply (still gRPC, with their deadlines, statuses and validation) carry only the
// step, the indices and the statistics. Both files start with a random nonce the coordinator sends in Prepare, so a
// worker proves it sees the very files the coordinator made (another host or container cannot) before using them.
//
// Layout: a 64-byte header (nonce, then an int64 stamp), then float32 data. The weights file holds one vector
// stamped with its step (followed, when it has room for them, by the step's batch indices under the same stamp),
// and in its header the pool counter from which same-host workers claim a step's blocks (the pool's id in the high
// bits, the next block in the low ones); the slot file holds numbered slots, each a 64-byte header (step, first
// shard, shard count) and one gradient vector. A writer clears the stamp, writes the data, then publishes the stamp; a reader checks
// the stamp before (and, for the weights, after) it copies, so a torn or stale vector is never used.
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace DistTrain.Protos;

/// <summary>A shared file could not be created or did not match what Prepare described.</summary>
public sealed class SharedMemoryException(string message) : Exception(message);

/// <summary>A file mapped into memory, starting with a nonce; closed (not deleted) on dispose.</summary>
public sealed unsafe class MappedFile : IDisposable
{
    public const int HeaderBytes = 64;
    public const int NonceBytes = 16;

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;

    private MappedFile(MemoryMappedFile file, MemoryMappedViewAccessor view, long length, string path)
    {
        _file = file;
        _view = view;
        Length = length;
        Path = path;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref _base);
        _base += view.PointerOffset;
    }

    public long Length { get; }
    public string Path { get; }

    /// <summary>
    /// Creates <paramref name="path"/> (which must not exist) readable and writable by this user only, with all its
    /// space allocated now: a write to a page that a full memory file system cannot back would kill the process
    /// (SIGBUS), whereas a failed allocation here is an IOException the caller can fall back from.
    /// </summary>
    public static MappedFile Create(string path, long length, ReadOnlySpan<byte> nonce)
    {
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.ReadWrite, PreallocationSize = length,
        };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        var stream = new FileStream(path, options);
        stream.SetLength(length);
        var mapped = Map(stream, length, path, MemoryMappedFileAccess.ReadWrite);
        nonce.CopyTo(mapped.Bytes(0, NonceBytes));
        return mapped;
    }

    /// <summary>Opens a file another process created; throws SharedMemoryException unless its length and nonce match.</summary>
    public static MappedFile Open(string path, long length, ReadOnlySpan<byte> nonce, bool writable)
    {
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read, FileShare.ReadWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SharedMemoryException($"cannot open {path}: {e.Message}");
        }
        if (stream.Length != length)
        {
            stream.Dispose();
            throw new SharedMemoryException($"{path} has {stream.Length} bytes, expected {length}");
        }
        var mapped = Map(stream, length, path, writable ? MemoryMappedFileAccess.ReadWrite : MemoryMappedFileAccess.Read);
        if (!mapped.Bytes(0, NonceBytes).SequenceEqual(nonce))
        {
            mapped.Dispose();
            throw new SharedMemoryException($"{path} is not the file the coordinator offered (its nonce differs)");
        }
        return mapped;
    }

    private static MappedFile Map(FileStream stream, long length, string path, MemoryMappedFileAccess access)
    {
        try
        {
            var file = MemoryMappedFile.CreateFromFile(stream, null, length, access, HandleInheritability.None, leaveOpen: false);
            return new MappedFile(file, file.CreateViewAccessor(0, length, access), length, path);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    public Span<byte> Bytes(long offset, int length)
    {
        ObjectDisposedException.ThrowIf(_base is null, this);
        if (offset < 0 || length < 0 || offset + length > Length) throw new ArgumentOutOfRangeException(nameof(offset));
        return new Span<byte>(_base + offset, length);
    }

    public Span<float> Floats(long offset, int count) => MemoryMarshal.Cast<byte, float>(Bytes(offset, checked(4 * count)));

    /// <summary>The int64 at <paramref name="offset"/> (8-aligned), for Volatile reads and writes of a stamp.</summary>
    public ref long Stamp(long offset) => ref MemoryMarshal.AsRef<long>(Bytes(offset, sizeof(long)));

    public void Dispose()
    {
        if (_base is null) return;
        _base = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}

/// <summary>The weights of the current step, written by the coordinator, read by every same-host worker.</summary>
public sealed class SharedWeights(MappedFile file, int parameterCount, int indexCapacity = 0) : IDisposable
{
    private const long StampOffset = MappedFile.NonceBytes;
    private const long PoolOffset = StampOffset + 8;
    private const int PoolIndexBits = 24;

    /// <summary>Largest pool id: the protocol's bound, which the counter's 39 bits beside the block index hold.</summary>
    public const long MaxPoolId = Protocol.MaxClaimPool;
    // A compile-time check that they do: a negative constant converted to ulong does not compile.
    private const ulong PoolIdFits = (ulong)((1L << (63 - PoolIndexBits)) - 1 - MaxPoolId);
    /// <summary>Most blocks one pool can hold.</summary>
    public const int MaxPoolBlocks = 1 << PoolIndexBits;

    private static long IndexOffset(int parameterCount) => MappedFile.HeaderBytes + (4L * parameterCount + 63) / 64 * 64;

    public static long FileBytes(int parameterCount, int indexCapacity = 0) => IndexOffset(parameterCount) + 4L * indexCapacity;

    public MappedFile File { get; } = file;
    public int ParameterCount { get; } = parameterCount;
    /// <summary>How many batch indices the file holds after the weights (0: none).</summary>
    public int IndexCapacity { get; } = indexCapacity;

    /// <summary>
    /// Publishes <paramref name="weights"/> (rounded to bfloat16 on the way when <paramref name="roundToBf16"/>) as
    /// the weights of <paramref name="step"/>, with the step's batch <paramref name="indices"/> when given (at most
    /// IndexCapacity).
    /// </summary>
    public void Write(long step, ReadOnlySpan<float> weights, ReadOnlySpan<int> indices = default, bool roundToBf16 = false)
    {
        if (indices.Length > IndexCapacity)
            throw new ArgumentOutOfRangeException(nameof(indices), indices.Length, $"the file holds at most {IndexCapacity} indices");
        ref long stamp = ref File.Stamp(StampOffset);
        Volatile.Write(ref stamp, -1);
        if (roundToBf16) Core.Kernels.BFloat16.Round(weights, File.Floats(MappedFile.HeaderBytes, ParameterCount));
        else weights.CopyTo(File.Floats(MappedFile.HeaderBytes, ParameterCount));
        indices.CopyTo(Indices(0, indices.Length));
        Volatile.Write(ref stamp, step);
    }

    /// <summary>
    /// Copies batch indices [start, start + destination.Length) of <paramref name="step"/>; false when the file holds
    /// another step's (or changed meanwhile).
    /// </summary>
    public bool TryReadIndices(long step, int start, Span<int> destination)
    {
        if (start < 0 || (long)start + destination.Length > IndexCapacity)
            throw new ArgumentOutOfRangeException(nameof(start), start, $"indices [{start}, +{destination.Length}) are outside the file's {IndexCapacity}");
        ref long stamp = ref File.Stamp(StampOffset);
        if (Volatile.Read(ref stamp) != step) return false;
        Indices(start, destination.Length).CopyTo(destination);
        return Volatile.Read(ref stamp) == step;
    }

    private Span<int> Indices(int start, int count) =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(File.Bytes(IndexOffset(ParameterCount) + 4L * start, checked(4 * count)));

    /// <summary>Copies the weights of <paramref name="step"/>; false when the file holds another step's (or changed meanwhile).</summary>
    public bool TryRead(long step, Span<float> destination)
    {
        ref long stamp = ref File.Stamp(StampOffset);
        if (Volatile.Read(ref stamp) != step) return false;
        File.Floats(MappedFile.HeaderBytes, ParameterCount).CopyTo(destination);
        return Volatile.Read(ref stamp) == step;
    }

    /// <summary>
    /// Starts pool <paramref name="pool"/> (1..MaxPoolId, a new id for every pool): its blocks are claimed from 0
    /// on; claims on any earlier pool fail from now on, so a late worker cannot take a block of this one.
    /// </summary>
    public void OpenPool(long pool)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pool, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pool, MaxPoolId);
        Volatile.Write(ref File.Stamp(PoolOffset), pool << PoolIndexBits);
    }

    /// <summary>
    /// Claims the next of <paramref name="blockCount"/> blocks of <paramref name="pool"/> for the caller (atomic across
    /// processes); false when they are all claimed or the counter has moved on to another pool.
    /// </summary>
    public bool TryClaim(long pool, int blockCount, out int block)
    {
        ref long counter = ref File.Stamp(PoolOffset);
        while (true)
        {
            long current = Volatile.Read(ref counter);
            block = (int)(current & (MaxPoolBlocks - 1));
            if (current >> PoolIndexBits != pool || block >= blockCount)
            {
                block = -1;
                return false;
            }
            if (Interlocked.CompareExchange(ref counter, current + 1, current) == current) return true;
        }
    }

    public void Dispose() => File.Dispose();
}

/// <summary>One worker's gradient slots: the worker writes a block's sum into the slot the request named.</summary>
public sealed class SharedSlots(MappedFile file, int parameterCount, int slotCount) : IGradientSlots, IDisposable
{
    public static long Stride(int parameterCount) => MappedFile.HeaderBytes + (4L * parameterCount + 63) / 64 * 64;
    public static long FileBytes(int parameterCount, int slotCount) => MappedFile.HeaderBytes + slotCount * Stride(parameterCount);

    public MappedFile File { get; } = file;
    public int ParameterCount { get; } = parameterCount;
    public int SlotCount { get; } = slotCount;

    private long Offset(int slot) =>
        (uint)slot < (uint)SlotCount ? MappedFile.HeaderBytes + slot * Stride(ParameterCount)
            : throw new ArgumentOutOfRangeException(nameof(slot), slot, $"slots are 0..{SlotCount - 1}");

    /// <summary>Writes the sum of shards [first, first + count) of <paramref name="step"/> into <paramref name="slot"/>.</summary>
    public void Write(int slot, long step, int firstShard, int shardCount, ReadOnlySpan<float> sum)
    {
        long offset = Offset(slot);
        ref long stamp = ref File.Stamp(offset);
        Volatile.Write(ref stamp, -1);
        sum.CopyTo(File.Floats(offset + MappedFile.HeaderBytes, ParameterCount));
        MemoryMarshal.Write(File.Bytes(offset + 8, 8), (long)firstShard << 32 | (uint)shardCount);
        Volatile.Write(ref stamp, step);
    }

    /// <summary>The sum in <paramref name="slot"/> if it is stamped with exactly this step and block; otherwise false.</summary>
    public bool TryRead(int slot, long step, int firstShard, int shardCount, out ReadOnlySpan<float> sum)
    {
        long offset = Offset(slot);
        sum = default;
        if (Volatile.Read(ref File.Stamp(offset)) != step) return false;
        if (MemoryMarshal.Read<long>(File.Bytes(offset + 8, 8)) != ((long)firstShard << 32 | (uint)shardCount)) return false;
        sum = File.Floats(offset + MappedFile.HeaderBytes, ParameterCount);
        return true;
    }

    public void Dispose() => File.Dispose();
}
