// Float and int arrays as protobuf `bytes`: sent without a copy (UnsafeByteOperations over the array's memory) and
// read in place (MemoryMarshal.Cast over the received buffer). Both ends are little-endian (see Protocol).
using System.Buffers;
using System.Runtime.InteropServices;
using Google.Protobuf;

namespace DistTrain.Protos;

public static class WireArrays
{
    /// <summary>
    /// Wraps <paramref name="values"/> without copying. The caller must not change the array until the message
    /// carrying it has been serialized.
    /// </summary>
    public static ByteString Wrap(float[] values) =>
        UnsafeByteOperations.UnsafeWrap(new ArrayBytes<float>(values).Memory);

    /// <summary>The first <paramref name="byteLength"/> bytes of <paramref name="values"/>, wrapped as <see cref="Wrap(float[])"/>.</summary>
    public static ByteString Wrap(float[] values, int byteLength) =>
        UnsafeByteOperations.UnsafeWrap(new ArrayBytes<float>(values).Memory[..byteLength]);

    /// <summary>Copies a slice of indices (they are small and the source buffer is reused) into a byte string.</summary>
    public static ByteString Copy(ReadOnlySpan<int> values) =>
        UnsafeByteOperations.UnsafeWrap(MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>The float32 values of <paramref name="bytes"/>, read in place; false when the length is not a multiple of 4.</summary>
    public static bool TryReadFloats(ByteString bytes, out ReadOnlySpan<float> values)
    {
        values = default;
        if (bytes.Length % sizeof(float) != 0) return false;
        values = MemoryMarshal.Cast<byte, float>(bytes.Span);
        return true;
    }

    public static bool TryReadInts(ByteString bytes, out ReadOnlySpan<int> values)
    {
        values = default;
        if (bytes.Length % sizeof(int) != 0) return false;
        values = MemoryMarshal.Cast<byte, int>(bytes.Span);
        return true;
    }

    /// <summary>Exposes an unmanaged array as bytes for UnsafeWrap; pinning goes through a GC handle.</summary>
    internal class ArrayBytes<T>(T[] array) : MemoryManager<byte> where T : unmanaged
    {
        public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(array.AsSpan());

        public override unsafe MemoryHandle Pin(int elementIndex = 0)
        {
            var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
            return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle);
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }
    }
}
