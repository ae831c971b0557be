// A fixed set of long-lived threads that run one body per thread index and wait for all of them. Unlike
// Parallel.For it allocates nothing per call, which keeps the steady-state training step allocation-free.
namespace DistTrain.Core.Training;

public sealed class ParallelRunner : IDisposable
{
    // One monitor for start and completion: Monitor.Wait allocates nothing on the managed heap, whereas the slim
    // events allocate their lock object lazily at the first wait that really blocks (an allocation mid-training).
    private readonly object _gate = new();
    private readonly Thread[] _threads;
    private Action<int>? _body;
    private Exception? _failure;
    private long _generation;
    private int _pending;
    private bool _stopping;
    private long _poolAllocated;
    private Func<int, IReadOnlyList<int>>? _cpus;
    private long _cpusVersion;

    public ParallelRunner(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ThreadCount = threads;
        _threads = new Thread[threads - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int index = i + 1;
            _threads[i] = new Thread(() => Loop(index)) { IsBackground = true, Name = $"disttrain-compute-{index}" };
            _threads[i].Start();
        }
    }

    public int ThreadCount { get; }

    /// <summary>Managed bytes allocated by the pool's own threads inside bodies (the caller's thread not included).</summary>
    public long PoolAllocatedBytes => Interlocked.Read(ref _poolAllocated);

    /// <summary>
    /// Binds pool thread i (1..N-1) to the CPUs <paramref name="cpus"/>(i) before its next body; thread 0 is the
    /// caller's, which binds itself if it is a dedicated thread. Failures are reported to <paramref name="report"/>.
    /// </summary>
    public void BindPoolThreads(Func<int, IReadOnlyList<int>> cpus, Action<string>? report = null)
    {
        lock (_gate)
        {
            _cpus = cpus;
            _bindReport = report;
            _cpusVersion++;
        }
    }

    private Action<string>? _bindReport;

    /// <summary>Runs body(0) on the calling thread and body(1..N-1) on the pool; rethrows the first failure.</summary>
    public void Run(Action<int> body)
    {
        lock (_gate)
        {
            _body = body;
            _failure = null;
            _pending = _threads.Length;
            _generation++;
            Monitor.PulseAll(_gate);
        }
        try { body(0); }
        catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); }
        lock (_gate)
        {
            while (_pending > 0) Monitor.Wait(_gate);
            _body = null;
        }
        if (_failure is { } failure) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
    }

    private void Loop(int index)
    {
        long seen = 0, boundVersion = 0;
        while (true)
        {
            Action<int> body;
            Func<int, IReadOnlyList<int>>? cpus = null;
            Action<string>? report = null;
            lock (_gate)
            {
                while (_generation == seen && !_stopping) Monitor.Wait(_gate);
                if (_stopping) return;
                seen = _generation;
                body = _body!;
                if (_cpusVersion != boundVersion) (cpus, report, boundVersion) = (_cpus, _bindReport, _cpusVersion);
            }
            if (cpus is not null && !CpuAffinity.TryBindCurrentThread(cpus(index), out string error)) report?.Invoke(error);
            long before = GC.GetAllocatedBytesForCurrentThread();
            try { body(index); }
            catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); }
            finally
            {
                Interlocked.Add(ref _poolAllocated, GC.GetAllocatedBytesForCurrentThread() - before);
                lock (_gate)
                {
                    if (--_pending == 0) Monitor.PulseAll(_gate);
                }
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
        foreach (var thread in _threads) thread.Join();
    }
}
