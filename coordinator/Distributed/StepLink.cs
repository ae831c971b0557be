// The coordinator's end of a step link (protos/StepLink.cs): ComputeGradients calls to one worker over a Unix-domain
// socket (same host) or a TCP connection (TcpLinkHost), matched to replies by call id. A dedicated thread reads the replies with blocking calls and
// completes each call on that thread, so the step goes on without waiting for a thread-pool thread to wake.
// While it waits, the thread is bound to the worker's CPUs (when the worker's compute threads are bound): the reply
// wakes it where the worker has just finished, not behind another worker's computation on a busy CPU.
// Sending never blocks the caller (the control plane's driver): a request goes out at once as far as the socket takes
// it, and what is left waits in a backlog that a writer thread sends — a worker that stopped reading (SIGSTOP) fills its
// socket's buffer within a few hundred steps, and a blocking write would then hold up every other worker too. The
// weights go from where the step holds them (StepFrames.RentRequestFrame: no copy per worker); on an idle link the
// whole request usually fits the socket at once, and the worker starts reading it without waiting for the writer to wake.
// Replies are read as the gRPC path reads them (StepWire): each gradient sum lands in a pooled array.
using System.Collections.Concurrent;
using System.Net.Sockets;
using DistTrain.Core.Training;
using DistTrain.Protos;
using Google.Protobuf;
using Grpc.Core;

namespace DistTrain.Coordinator.Distributed;

public sealed class StepLink : IDisposable
{
    private readonly StepConnection _socket;
    private readonly object _sendLock = new();
    // Each entry: the frame's bytes [Sent, Length) of an ArrayPool array, then the tail.
    private readonly Queue<(long Id, byte[] Frame, int Sent, int Length, ReadOnlyMemory<byte> Tail)> _backlog = new();
    private bool _writerSending;
    private Thread? _writer;
    private readonly ConcurrentDictionary<long, TaskCompletionSource<ComputeReply>> _pending = new();
    private readonly int _maxReplyBytes;
    private long _nextId;
    private volatile string? _closed;
    private readonly bool _closeWhenAbandoned;
    private volatile IReadOnlyList<int> _waitCpus = [];

    /// <param name="closeWhenAbandoned">
    /// Close the link when a call is given up (its deadline, or cancelled): the worker would otherwise compute it to
    /// the end before the next request, and a request's weights still being sent could change under it. For TCP
    /// links, where that happens only when something failed; same-host pools cancel requests routinely.
    /// </param>
    public StepLink(StepConnection socket, string workerId, int maxReplyBytes, bool closeWhenAbandoned = false)
    {
        _closeWhenAbandoned = closeWhenAbandoned;
        _socket = socket;
        _maxReplyBytes = maxReplyBytes;
        WorkerId = workerId;
        new Thread(ReadReplies) { IsBackground = true, Name = $"disttrain-link-{workerId}" }.Start();
    }

    public string WorkerId { get; }
    public bool IsOpen => _closed is null;
    /// <summary>Why the link closed; null while it is open.</summary>
    public string? ClosedBecause => _closed;

    /// <summary>The CPUs the worker computes on (empty: unknown or not bound): the reader waits for replies there.</summary>
    public void WaitOnCpus(IReadOnlyList<int> cpus) => _waitCpus = cpus;

    public async Task<ComputeReply> ComputeAsync(ComputeRequest request, DateTime deadline, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var left = deadline - DateTime.UtcNow;
        // As gRPC does: a call whose deadline has passed is not sent.
        if (left <= TimeSpan.Zero)
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"the deadline passed before the call to {WorkerId}"));
        long id = Interlocked.Increment(ref _nextId);
        // No RunContinuationsAsynchronously: the caller's continuation runs on the reader thread, which is the point.
        var done = new TaskCompletionSource<ComputeReply>();
        _pending[id] = done;
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(left);
        await using var registration = limit.Token.Register(() =>
        {
            bool deadline = !cancellationToken.IsCancellationRequested;
            if (Fail(id, deadline
                    ? new RpcException(new Status(StatusCode.DeadlineExceeded, $"no reply from {WorkerId} before the deadline"))
                    : new OperationCanceledException(cancellationToken)) && _closeWhenAbandoned)
                Close($"the step link to {WorkerId} closed: a call was given up ({(deadline ? "deadline" : "cancelled")})");
        });
        if (_closed is { } why) Fail(id, new RpcException(new Status(StatusCode.Unavailable, why)));
        else
        {
            try
            {
                var frame = StepFrames.RentRequestFrame(id, request, out int length, out var tail);
                Send(id, frame, length, tail);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
            {
                Close($"the step link to {WorkerId} failed: {e.Message}");
            }
        }
        return await done.Task.ConfigureAwait(false);
    }

    /// <summary>
    /// Gives the socket what it takes now of the frame and its tail when nothing is queued before them; what is left
    /// goes to the writer thread.
    /// </summary>
    private void Send(long id, byte[] frame, int length, ReadOnlyMemory<byte> tail)
    {
        lock (_sendLock)
        {
            int sent = 0;
            if (_backlog.Count == 0 && !_writerSending)
            {
                sent = _socket.TrySend(frame.AsSpan(0, length));
                if (sent == length)
                    while (!tail.IsEmpty && _socket.TrySend(tail.Span) is var more and > 0) tail = tail[more..];
                if (sent == length && tail.IsEmpty)
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(frame);
                    return;
                }
            }
            _backlog.Enqueue((id, frame, sent, length, tail));
            if (_writer is null)
            {
                _writer = new Thread(WriteBacklog) { IsBackground = true, Name = $"disttrain-link-send-{WorkerId}" };
                _writer.Start();
            }
            else Monitor.Pulse(_sendLock);
        }
    }

    /// <summary>Sends the backlog in order with blocking writes, skipping calls nobody waits for any more.</summary>
    private void WriteBacklog()
    {
        try
        {
            while (true)
            {
                (long Id, byte[] Frame, int Sent, int Length, ReadOnlyMemory<byte> Tail) next;
                lock (_sendLock)
                {
                    _writerSending = false;
                    // A frame begun inline is finished even when nobody waits for it any more: the stream stays whole.
                    while (_closed is null && (_backlog.Count == 0 || (_backlog.Peek().Sent == 0 && !_pending.ContainsKey(_backlog.Peek().Id))))
                    {
                        if (_backlog.Count > 0) System.Buffers.ArrayPool<byte>.Shared.Return(_backlog.Dequeue().Frame);
                        else Monitor.Wait(_sendLock);
                    }
                    if (_closed is not null) return;
                    next = _backlog.Dequeue();
                    _writerSending = true;
                }
                try
                {
                    _socket.Send(next.Frame.AsSpan(next.Sent, next.Length - next.Sent));
                    // The weights, from where the step holds them. (A call given up meanwhile: a TCP link closes,
                    // so the worker never computes a torn copy; a same-host request carries no weights.)
                    _socket.Send(next.Tail.Span);
                }
                finally { System.Buffers.ArrayPool<byte>.Shared.Return(next.Frame); }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
            Close($"the step link to {WorkerId} failed: {e.Message}");
        }
        catch (Exception e)
        {
            Close($"the step link to {WorkerId} failed: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>
    /// Fails a pending call on a pool thread: failures come from timers, cancellation and Dispose (called under other
    /// components' locks), where the caller's continuation — the rest of the step — must not run inline.
    /// </summary>
    private bool Fail(long id, Exception error)
    {
        if (!_pending.TryRemove(id, out var call)) return false;
        ThreadPool.UnsafeQueueUserWorkItem(static state => state.call.TrySetException(state.error), (call, error), preferLocal: false);
        return true;
    }

    private void ReadReplies()
    {
        var buffer = new byte[4096];
        string reason = $"worker {WorkerId} closed its step link";
        try
        {
            while (true)
            {
                // Bound only while waiting: the step that the reply completes runs here and may start threads, which
                // would inherit a narrow binding.
                var cpus = _waitCpus;
                bool bound = cpus.Count > 0 && CpuAffinity.TryBindCurrentThread(cpus, out _);
                bool read = StepFrames.Read(_socket, ref buffer, _maxReplyBytes, out long id, out byte kind, out int length);
                if (bound) CpuAffinity.TryBindCurrentThread(CpuAffinity.ProcessCpus, out _);
                if (!read) break;
                // A reply to a call that timed out or was cancelled: nobody waits for it.
                if (!_pending.TryRemove(id, out var call)) continue;
                if (kind == StepFrames.Reply)
                {
                    ComputeReply reply;
                    try { reply = StepWire.ParseReply(new System.Buffers.ReadOnlySequence<byte>(buffer, 0, length)); }
                    catch (InvalidProtocolBufferException e)
                    {
                        call.TrySetException(new RpcException(new Status(StatusCode.Internal, $"malformed reply: {e.Message}")));
                        continue;
                    }
                    call.TrySetResult(reply);
                }
                else if (kind == StepFrames.Error)
                {
                    var (code, detail) = StepFrames.ReadError(buffer.AsSpan(0, length));
                    call.TrySetException(new RpcException(new Status(code, detail)));
                }
                else call.TrySetException(new RpcException(new Status(StatusCode.Internal, $"unexpected step link frame kind {kind}")));
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            reason = $"the step link to {WorkerId} failed: {e.Message}";
        }
        catch (Exception e)
        {
            // Anything else (a TLS stream disposed under a read, say) ends the link, never the process.
            reason = $"the step link to {WorkerId} failed: {e.GetType().Name}: {e.Message}";
        }
        Close(reason);
    }

    private void Close(string reason)
    {
        _closed ??= reason;
        try { _socket.Dispose(); } catch (ObjectDisposedException) { }
        lock (_sendLock) Monitor.PulseAll(_sendLock);
        foreach (var id in _pending.Keys) Fail(id, new RpcException(new Status(StatusCode.Unavailable, _closed)));
    }

    /// <summary>Closes the socket; the reader thread ends by itself (this may run on it, so it is not joined).</summary>
    public void Dispose() => Close($"the step link to {WorkerId} was closed by the coordinator");
}

/// <summary>
/// A worker with a step link: Prepare and the dataset over gRPC, every step over the link — or, once the link has
/// closed (the worker's end went, a call was given up), as gRPC calls (said once) until a link is connected again:
/// with <paramref name="reconnect"/> (the TCP link: it prepares the worker again, which connects a new link), tried
/// in the background at most once per <paramref name="reconnectInterval"/> while steps need it; else until the worker
/// is prepared again.
/// </summary>
public sealed class LinkedWorkerClient(IWorkerClient grpc, StepLink link, Action<string>? log = null,
    Func<CancellationToken, Task<StepLink?>>? reconnect = null, TimeSpan? reconnectInterval = null) : IWorkerClient
{
    private volatile StepLink _link = link;
    private int _fellBack, _reconnecting, _failedBefore;
    private long _lastAttempt = long.MinValue;
    private readonly long _interval = (long)(reconnectInterval ?? TimeSpan.FromSeconds(5)).TotalMilliseconds;
    private readonly CancellationTokenSource _disposed = new();

    public Task<PrepareReply> PrepareAsync(PrepareRequest request, DateTime deadline, CancellationToken cancellationToken) =>
        grpc.PrepareAsync(request, deadline, cancellationToken);

    public Task<ReceiveDatasetReply> SendDatasetAsync(string fingerprint, ReadOnlyMemory<byte> payload, DateTime deadline,
        CancellationToken cancellationToken) => grpc.SendDatasetAsync(fingerprint, payload, deadline, cancellationToken);

    public Task<ComputeReply> ComputeAsync(ComputeRequest request, DateTime deadline, CancellationToken cancellationToken)
    {
        var current = _link;
        if (current.IsOpen) return current.ComputeAsync(request, deadline, cancellationToken);
        if (Interlocked.Exchange(ref _fellBack, 1) == 0)
            log?.Invoke($"worker {current.WorkerId}: {current.ClosedBecause}; its steps go as gRPC calls until " +
                        (reconnect is null ? "it is prepared again" : "its link is connected again"));
        TryReconnect(current.WorkerId);
        return grpc.ComputeAsync(request, deadline, cancellationToken);
    }

    /// <summary>Starts connecting a new link unless an attempt is running or the last began less than the interval ago.</summary>
    private void TryReconnect(string workerId)
    {
        if (reconnect is null) return;
        long now = Environment.TickCount64;
        long last = Interlocked.Read(ref _lastAttempt);
        if (last != long.MinValue && now - last < _interval) return;
        if (Interlocked.CompareExchange(ref _reconnecting, 1, 0) != 0) return;
        Interlocked.Exchange(ref _lastAttempt, now);
        CancellationToken stop;
        try { stop = _disposed.Token; }
        catch (ObjectDisposedException)
        {
            Volatile.Write(ref _reconnecting, 0);
            return;
        }
        _ = Task.Run(async () =>
        {
            string? failure = null;
            try
            {
                var fresh = await reconnect(stop).ConfigureAwait(false);
                // A life that ended meanwhile takes no link (the host closes a link with the life it belongs to).
                if (stop.IsCancellationRequested) return;
                if (fresh is { IsOpen: true })
                {
                    _link = fresh;
                    Volatile.Write(ref _fellBack, 0);
                    Volatile.Write(ref _failedBefore, 0);
                    log?.Invoke($"worker {workerId}: its step link is connected again; its steps go over it");
                }
                else failure = "the worker did not connect one";
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Nothing escapes the background attempt: the steps go on as gRPC calls, and a later one tries again.
                if (!stop.IsCancellationRequested) failure = e is RpcException rpc ? $"{rpc.StatusCode}: {PeerText.Printable(rpc.Status.Detail)}" : e.Message;
            }
            finally { Volatile.Write(ref _reconnecting, 0); }
            if (failure is not null) Failed(workerId, failure);
        }, CancellationToken.None);
    }

    /// <summary>Said once until a link connects: a worker that cannot connect one is tried again quietly.</summary>
    private void Failed(string workerId, string why)
    {
        if (Interlocked.Exchange(ref _failedBefore, 1) == 0)
            log?.Invoke($"worker {workerId}: its step link could not be connected again ({why}); trying again while its steps need it");
    }

    public void Dispose()
    {
        _disposed.Cancel();
        grpc.Dispose();
    }
}
