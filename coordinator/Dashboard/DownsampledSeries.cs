// A bounded history of multi-column points (loss, accuracy, norms … per step): once full, neighbouring points are
// averaged in pairs and the stride doubles, so memory stays fixed however long the run, and the curve keeps its shape.
namespace DistTrain.Coordinator.Dashboard;

public sealed class DownsampledSeries
{
    private readonly long[] _steps;
    private readonly double[] _values; // row-major: point × column
    private readonly double[] _pendingSum;
    private readonly int[] _pendingFinite;
    private int _pendingCount;

    public DownsampledSeries(IReadOnlyList<string> columns, int capacity)
    {
        if (capacity < 4 || capacity % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "capacity must be even and ≥ 4");
        Columns = columns;
        Capacity = capacity;
        _steps = new long[capacity];
        _values = new double[capacity * columns.Count];
        _pendingSum = new double[columns.Count];
        _pendingFinite = new int[columns.Count];
    }

    public IReadOnlyList<string> Columns { get; }
    public int Capacity { get; }
    public int Count { get; private set; }
    /// <summary>Raw points averaged into one stored point.</summary>
    public int Stride { get; private set; } = 1;
    /// <summary>Bumped whenever stored points are rewritten (compaction), so readers know to refetch.</summary>
    public long Generation { get; private set; }

    /// <summary>Adds one raw point; non-finite values are left out of the averages (a skipped step has no loss).</summary>
    public void Add(long step, ReadOnlySpan<double> values)
    {
        for (int c = 0; c < _pendingSum.Length; c++)
        {
            if (!double.IsFinite(values[c])) continue;
            _pendingSum[c] += values[c];
            _pendingFinite[c]++;
        }
        if (++_pendingCount < Stride) return;

        int row = Count * _pendingSum.Length;
        for (int c = 0; c < _pendingSum.Length; c++)
        {
            _values[row + c] = _pendingFinite[c] > 0 ? _pendingSum[c] / _pendingFinite[c] : double.NaN;
            _pendingSum[c] = 0;
            _pendingFinite[c] = 0;
        }
        _steps[Count++] = step;
        _pendingCount = 0;
        if (Count == Capacity) Compact();
    }

    // Pairs are averaged (NaN-aware) and keep the later step, so x stays "steps completed".
    private void Compact()
    {
        int columns = _pendingSum.Length;
        for (int i = 0; i < Count / 2; i++)
        {
            int a = 2 * i * columns, b = a + columns, to = i * columns;
            for (int c = 0; c < columns; c++)
            {
                double x = _values[a + c], y = _values[b + c];
                _values[to + c] = double.IsNaN(x) ? y : double.IsNaN(y) ? x : (x + y) / 2;
            }
            _steps[i] = _steps[2 * i + 1];
        }
        Count /= 2;
        Stride *= 2;
        Generation++;
    }

    /// <summary>Copies points [from, Count) out: steps and one array per column.</summary>
    public SeriesSlice Slice(int from)
    {
        from = Math.Clamp(from, 0, Count);
        int n = Count - from, columns = _pendingSum.Length;
        var steps = _steps.AsSpan(from, n).ToArray();
        var series = new Dictionary<string, double[]>(columns);
        for (int c = 0; c < columns; c++)
        {
            var column = new double[n];
            for (int i = 0; i < n; i++) column[i] = _values[(from + i) * columns + c];
            series[Columns[c]] = column;
        }
        return new SeriesSlice(Generation, Stride, from, steps, series);
    }
}

/// <summary>Points [From, From + Steps.Length) of a series as of <see cref="Generation"/>.</summary>
public sealed record SeriesSlice(long Generation, int Stride, int From, long[] Steps, IReadOnlyDictionary<string, double[]> Series);
