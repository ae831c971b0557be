// nn.BatchNorm2d over channels-last images: weight γ [C], bias β [C], then the buffers running_mean [C],
// running_var [C] and num_batches_tracked (one value) in the flat buffer, under PyTorch's names.
//
// Training normalises with the statistics of the rows it is given — a shard, whose size the step plan fixes, so a
// "ghost batch" that does not depend on how many workers there are. Its Backward writes, besides dγ and dβ, the
// shard's statistics into the buffers' gradient slots as sums over rows (mean·rows, unbiased variance·rows, rows):
// they travel and are reduced along the same fixed tree as the gradient, and TrainingStep, after dividing by the
// batch size, folds them into the running statistics with PyTorch's momentum rule instead of taking an optimizer step
// on them. Evaluation normalises with the running statistics.
using System.Runtime.InteropServices;
using DistTrain.Core.Model;

namespace DistTrain.Core.Layers;

public sealed class BatchNorm2d(TensorShape shape, double eps, double momentum) : Layer(shape, shape)
{
    public int Channels => InputShape.Channels;
    public double Eps { get; } = eps;
    public double Momentum { get; } = momentum;
    public override int ParameterCount => 4 * Channels + 1;
    public int RunningMeanOffset => ParameterOffset + 2 * Channels;
    public int RunningVarOffset => ParameterOffset + 3 * Channels;
    public int CountOffset => ParameterOffset + 4 * Channels;

    // mean [C], 1/σ [C], the two coefficients of y = a·x + b [2C], and two float64 accumulators [2C doubles = 4C floats].
    public override long ScratchFloats(int maxRows) => 8L * Channels;

    public override (double Forward, double Backward) FlopsPerSample(bool inputGradient) => (4.0 * InputWidth, 8.0 * InputWidth);

    public override void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows,
        in LayerContext context)
    {
        int c = Channels, positions = rows * InputShape.Height * InputShape.Width;
        var gamma = parameters.Slice(ParameterOffset, c);
        var beta = parameters.Slice(ParameterOffset + c, c);
        var scratch = context.Scratch;
        Span<float> mean = scratch[..c], invStd = scratch.Slice(c, c), a = scratch.Slice(2 * c, c), b = scratch.Slice(3 * c, c);
        if (context.Training)
        {
            var sum = MemoryMarshal.Cast<float, double>(scratch.Slice(4 * c, 4 * c))[..c];
            var squares = MemoryMarshal.Cast<float, double>(scratch.Slice(4 * c, 4 * c)).Slice(c, c);
            sum.Clear();
            for (int p = 0; p < positions; p++)
            {
                var x = input.Slice(p * c, c);
                for (int ch = 0; ch < c; ch++) sum[ch] += x[ch];
            }
            for (int ch = 0; ch < c; ch++) sum[ch] /= positions;
            squares.Clear();
            for (int p = 0; p < positions; p++)
            {
                var x = input.Slice(p * c, c);
                for (int ch = 0; ch < c; ch++)
                {
                    double d = x[ch] - sum[ch];
                    squares[ch] += d * d;
                }
            }
            for (int ch = 0; ch < c; ch++)
            {
                double variance = squares[ch] / positions; // biased, as PyTorch normalises with
                mean[ch] = (float)sum[ch];
                invStd[ch] = (float)(1.0 / Math.Sqrt(variance + Eps));
                // Kept for Backward's statistics: the unbiased variance PyTorch's running_var follows.
                squares[ch] = positions > 1 ? squares[ch] / (positions - 1) : 0;
            }
        }
        else
        {
            var runningMean = parameters.Slice(RunningMeanOffset, c);
            var runningVar = parameters.Slice(RunningVarOffset, c);
            for (int ch = 0; ch < c; ch++)
            {
                mean[ch] = runningMean[ch];
                invStd[ch] = (float)(1.0 / Math.Sqrt(runningVar[ch] + Eps));
            }
        }
        for (int ch = 0; ch < c; ch++)
        {
            a[ch] = gamma[ch] * invStd[ch];
            b[ch] = beta[ch] - mean[ch] * a[ch];
        }
        for (int p = 0; p < positions; p++)
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(input.Slice(p * c, c), a, b, output.Slice(p * c, c));
    }

    public override void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows, in LayerContext context)
    {
        int c = Channels, positions = rows * InputShape.Height * InputShape.Width;
        var gamma = parameters.Slice(ParameterOffset, c);
        var scratch = context.Scratch;
        Span<float> mean = scratch[..c], invStd = scratch.Slice(c, c);
        var accumulators = MemoryMarshal.Cast<float, double>(scratch.Slice(4 * c, 4 * c));
        var unbiasedVariance = accumulators.Slice(c, c);
        // The shard's statistics for the running buffers, as sums over its rows (see the file comment).
        for (int ch = 0; ch < c; ch++)
        {
            parameterGradient[RunningMeanOffset + ch] = mean[ch] * rows;
            parameterGradient[RunningVarOffset + ch] = (float)(unbiasedVariance[ch] * rows);
        }
        parameterGradient[CountOffset] = rows;

        // dβ = Σ dy, dγ = Σ dy·x̂ (float64 sums in position order).
        var dBeta = accumulators[..c];
        var gammaGradient = parameterGradient.Slice(ParameterOffset, c);
        var betaGradient = parameterGradient.Slice(ParameterOffset + c, c);
        dBeta.Clear();
        // Reuse the variance slot for dγ once the statistics are written out.
        var dGammaSums = unbiasedVariance;
        dGammaSums.Clear();
        for (int p = 0; p < positions; p++)
        {
            var x = input.Slice(p * c, c);
            var dy = outputGradient.Slice(p * c, c);
            for (int ch = 0; ch < c; ch++)
            {
                dBeta[ch] += dy[ch];
                dGammaSums[ch] += dy[ch] * ((x[ch] - mean[ch]) * invStd[ch]);
            }
        }
        for (int ch = 0; ch < c; ch++)
        {
            betaGradient[ch] = (float)dBeta[ch];
            gammaGradient[ch] = (float)dGammaSums[ch];
        }
        if (inputGradient.IsEmpty) return;
        // dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂)).
        for (int p = 0; p < positions; p++)
        {
            var x = input.Slice(p * c, c);
            var dy = outputGradient.Slice(p * c, c);
            var dx = inputGradient.Slice(p * c, c);
            for (int ch = 0; ch < c; ch++)
            {
                float xHat = (x[ch] - mean[ch]) * invStd[ch];
                dx[ch] = gamma[ch] * invStd[ch] *
                    (float)(dy[ch] - dBeta[ch] / positions - xHat * (dGammaSums[ch] / positions));
            }
        }
    }
}
