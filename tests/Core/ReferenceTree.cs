// The pairwise tree as its definition reads (GradientReduction's header): level by level, node i absorbs node
// i + stride; a node without a partner passes up unchanged. The reference BlockTree and PairwiseTreeReducer are
// checked against.
using System.Numerics.Tensors;

namespace DistTrain.Tests.Core;

public static class ReferenceTree
{
    /// <summary>Reduces nodes[0..count) in place along the tree; the sum ends in nodes[0].</summary>
    public static void ReduceInPlace(IReadOnlyList<float[]> nodes, int count, int length)
    {
        for (int stride = 1; stride < count; stride *= 2)
            for (int i = 0; i + stride < count; i += 2 * stride)
                TensorPrimitives.Add(nodes[i].AsSpan(0, length), nodes[i + stride].AsSpan(0, length), nodes[i].AsSpan(0, length));
    }
}
