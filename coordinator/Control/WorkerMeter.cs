// What the machine measures of one worker from its own timestamps: the latencies of its recent requests, the
// throughput its share of a step is planned by, what it computed, its errors, and since when a request of it has gone
// unanswered. Private to the machine and mutable (it moves with every reply); the published view copies it.
namespace DistTrain.Coordinator.Control;

internal sealed class WorkerMeter(int window)
{
    private readonly double[] _latencies = new double[window];
    private int _count, _next;

    /// <summary>Samples per second, an exponential average over its requests (0 until measured).</summary>
    public double Throughput { get; private set; }
    /// <summary>Wall time of its last request that computed something, in seconds (NaN before the first).</summary>
    public double LastLatency { get; private set; } = double.NaN;
    public long Shards { get; set; }
    public long Errors { get; set; }
    /// <summary>Consecutive steps (of those it answered in) with a block of it rejected.</summary>
    public int RejectedSteps { get; private set; }
    private long _lastRejectedStep = -1;
    /// <summary>
    /// When the oldest request it has not answered was sent (null: it answered all). A request the step no longer needed
    /// (the pool was done without it) stays unanswered: a member that stopped answers nothing, step after step.
    /// </summary>
    public TimeSpan? UnansweredSince { get; private set; }
    /// <summary>The steps it was sent requests in since it last answered.</summary>
    public int UnansweredSteps { get; private set; }
    /// <summary>The request it was sent last, in words (what a hang is named with).</summary>
    public string LastSent { get; private set; } = "";
    private long _lastSentStep = -1;
    public WorkerHealth Health { get; set; }
    public string HealthDetail { get; set; } = "";

    /// <summary>The recent latencies, oldest first (at most the window).</summary>
    public double[] Latencies()
    {
        var recent = new double[_count];
        for (int i = 0; i < _count; i++) recent[i] = _latencies[(_next - _count + i + _latencies.Length) % _latencies.Length];
        return recent;
    }

    public int Measured => _count;

    /// <summary>
    /// A request that computed <paramref name="samples"/> samples took <paramref name="latency"/> seconds of wall time
    /// and counts as <paramref name="seconds"/> for speed. Requests that computed nothing (a pool member that found the
    /// pool empty) say nothing about speed and are not recorded.
    /// </summary>
    public void Record(int samples, double latency, double seconds, double smoothing)
    {
        if (samples <= 0 || !(seconds > 0)) return;
        double measured = samples / seconds;
        Throughput = Throughput > 0 ? smoothing * measured + (1 - smoothing) * Throughput : measured;
        LastLatency = latency;
        _latencies[_next] = latency;
        _next = (_next + 1) % _latencies.Length;
        _count = Math.Min(_count + 1, _latencies.Length);
    }

    /// <summary>A request of step <paramref name="step"/> went to it at <paramref name="now"/>.</summary>
    public void Sent(TimeSpan now, long step, string request)
    {
        UnansweredSince ??= now;
        if (step != _lastSentStep) UnansweredSteps++;
        _lastSentStep = step;
        LastSent = request;
    }

    /// <summary>It answered; <paramref name="stillOpen"/>: when the oldest of its other requests still open was sent.</summary>
    public void Answered(TimeSpan? stillOpen, long step)
    {
        UnansweredSince = stillOpen;
        UnansweredSteps = stillOpen is null ? 0 : 1;
        _lastSentStep = stillOpen is null ? -1 : step;
    }

    /// <summary>It answered in step <paramref name="step"/>, with a block rejected or not; a step counts once.</summary>
    public void Judged(long step, bool rejected)
    {
        if (_lastRejectedStep == step) return;
        if (!rejected)
        {
            RejectedSteps = 0;
            return;
        }
        RejectedSteps++;
        _lastRejectedStep = step;
    }

    /// <summary>
    /// A new life (it registered again): speed is measured afresh — it may be another machine, or the last figure a
    /// stall's — while its counts stay with its id.
    /// </summary>
    public void NewLife()
    {
        Throughput = 0;
        LastLatency = double.NaN;
        _count = _next = 0;
        UnansweredSince = null;
        UnansweredSteps = 0;
        _lastSentStep = -1;
        LastSent = "";
        RejectedSteps = 0;
        _lastRejectedStep = -1;
        Health = WorkerHealth.Ok;
        HealthDetail = "";
    }
}
