// Float arrays for the big fields of step messages (weights, gradient sums), reused from step to step: a fresh array
// of a million bytes per message would be a large-object allocation whose pages are first touched (and zeroed) every
// step. A pooled array travels inside a ByteString that wraps it; Return(ByteString) hands it back once whoever
// read or wrote the message is done with it (idempotent, and a no-op for any other ByteString). What the pool keeps is
// bounded (per length and in total), so a peer that sends odd sizes can only make it allocate, as a plain parser would.
using System.Buffers;
using System.Runtime.InteropServices;
using Google.Protobuf;

namespace DistTrain.Protos;

public static class WireBuffers
{
    /// <summary>Arrays shorter than this are not pooled: cheap to allocate, and not worth holding.</summary>
    public const int MinPooledFloats = 4096;
    public const int MaxPerLength = 16;
    public const long MaxPooledBytes = 256L << 20;

    private static readonly Dictionary<int, Stack<float[]>> Free = [];
    private static long _pooledBytes;
    [ThreadStatic] private static long t_rented, t_allocated;

    /// <summary>Arrays handed out on this thread, and how many of them had to be allocated (the rest came from the pool).</summary>
    public static (long Rented, long Allocated) Counts => (t_rented, t_allocated);

    /// <summary>A float array of exactly <paramref name="length"/> elements, from the pool when one is free. Not zeroed.</summary>
    public static float[] Rent(int length)
    {
        if (length >= MinPooledFloats)
            lock (Free)
            {
                t_rented++;
                if (Free.TryGetValue(length, out var stack) && stack.TryPop(out var array))
                {
                    _pooledBytes -= 4L * length;
                    return array;
                }
                t_allocated++;
            }
        return GC.AllocateUninitializedArray<float>(length);
    }

    /// <summary>Wraps a rented array as message bytes; Return on the result gives the array back.</summary>
    public static ByteString Wrap(float[] rented) => UnsafeByteOperations.UnsafeWrap(new Pooled(rented).Memory);

    /// <summary>The first <paramref name="byteLength"/> bytes of a rented array (a bfloat16 vector in a float array).</summary>
    public static ByteString Wrap(float[] rented, int byteLength) =>
        UnsafeByteOperations.UnsafeWrap(new Pooled(rented).Memory[..byteLength]);

    /// <summary>
    /// <paramref name="count"/> bfloat16 vectors of <paramref name="length"/> values each (one per shard), encoded from
    /// float vectors already rounded to bfloat16, in a rented array.
    /// </summary>
    public static ByteString EncodeBf16(IReadOnlyList<float[]> vectors, int length)
    {
        long values = (long)vectors.Count * length;
        var array = Rent((int)((values + 1) / 2));
        var bits = MemoryMarshal.Cast<float, ushort>(array.AsSpan());
        for (int k = 0; k < vectors.Count; k++)
            Core.Kernels.BFloat16.Encode(vectors[k].AsSpan(0, length), bits.Slice(k * length, length));
        return Wrap(array, (int)(2 * values));
    }

    /// <summary>
    /// The bytes of <paramref name="source"/> as a ByteString: in a rented array when they are a whole number of
    /// floats, worth pooling; otherwise a plain copy.
    /// </summary>
    public static ByteString Copy(ReadOnlySequence<byte> source)
    {
        if (source.Length % sizeof(float) != 0 || source.Length / sizeof(float) < MinPooledFloats || source.Length > int.MaxValue)
            return ByteString.CopyFrom(source.ToArray());
        var array = Rent((int)(source.Length / sizeof(float)));
        source.CopyTo(MemoryMarshal.AsBytes(array.AsSpan()));
        return Wrap(array);
    }

    /// <summary>Gives back the array a ByteString from Wrap or Copy holds; nothing for any other (or null, or twice).</summary>
    public static void Return(ByteString? bytes)
    {
        if (bytes is null || !MemoryMarshal.TryGetMemoryManager(bytes.Memory, out Pooled? pooled)) return;
        if (pooled.Take() is { } array) Return(array);
    }

    /// <summary>
    /// The rented array that <paramref name="bytes"/> wraps whole, when it holds exactly <paramref name="length"/>
    /// floats: the caller owns it from now on (Return on the ByteString then gives nothing back). Null for any other.
    /// </summary>
    public static float[]? Take(ByteString bytes, int length)
    {
        if (bytes.Length != 4L * length || !MemoryMarshal.TryGetMemoryManager(bytes.Memory, out Pooled? pooled) ||
            pooled.Memory.Length != bytes.Length)
            return null;
        return pooled.Take();
    }

    /// <summary>Gives back a rented array the caller no longer uses (and holds no ByteString of).</summary>
    public static void Return(float[] array)
    {
        if (array.Length < MinPooledFloats) return;
        lock (Free)
        {
            if (_pooledBytes + 4L * array.Length > MaxPooledBytes) return;
            if (!Free.TryGetValue(array.Length, out var stack)) Free[array.Length] = stack = new Stack<float[]>();
            if (stack.Count >= MaxPerLength) return;
            stack.Push(array);
            _pooledBytes += 4L * array.Length;
        }
    }

    /// <summary>One rental's view of its array as bytes; it gives the array back at most once.</summary>
    private sealed class Pooled(float[] array) : WireArrays.ArrayBytes<float>(array)
    {
        private float[]? _array = array;

        public float[]? Take() => Interlocked.Exchange(ref _array, null);
    }
}
