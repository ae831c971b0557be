// A fixed set of long-lived threads that run one body per thread index and wait for all of them. Unlike
// Parallel.For it allocates nothing per call, which keeps the steady-state training step allocation-free.
namespace DistTrain.Core.Training;

public sealed class ParallelRunner : IDisposable
{
    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _start;
    private readonly CountdownEvent _done;
    private Action<int>? _body;
    private Exception? _failure;
    private volatile bool _stopping;

    public ParallelRunner(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ThreadCount = threads;
        _threads = new Thread[threads - 1];
        _start = new SemaphoreSlim[threads - 1];
        _done = new CountdownEvent(1);
        for (int i = 0; i < _threads.Length; i++)
        {
            int index = i + 1;
            _start[i] = new SemaphoreSlim(0);
            _threads[i] = new Thread(() => Loop(index)) { IsBackground = true, Name = $"disttrain-compute-{index}" };
            _threads[i].Start();
        }
    }

    public int ThreadCount { get; }

    /// <summary>Managed bytes allocated by the pool's own threads inside bodies (the caller's thread not included).</summary>
    public long PoolAllocatedBytes => Interlocked.Read(ref _poolAllocated);

    private long _poolAllocated;

    /// <summary>Runs body(0) on the calling thread and body(1..N-1) on the pool; rethrows the first failure.</summary>
    public void Run(Action<int> body)
    {
        _body = body;
        _failure = null;
        _done.Reset(_threads.Length);
        foreach (var start in _start) start.Release();
        try { body(0); }
        catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); }
        _done.Wait();
        _body = null;
        if (_failure is { } failure) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
    }

    private void Loop(int index)
    {
        while (true)
        {
            _start[index - 1].Wait();
            if (_stopping) return;
            long before = GC.GetAllocatedBytesForCurrentThread();
            try { _body!(index); }
            catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); }
            finally
            {
                Interlocked.Add(ref _poolAllocated, GC.GetAllocatedBytesForCurrentThread() - before);
                _done.Signal();
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (var start in _start) start.Release();
        foreach (var thread in _threads) thread.Join();
        foreach (var start in _start) start.Dispose();
        _done.Dispose();
    }
}
