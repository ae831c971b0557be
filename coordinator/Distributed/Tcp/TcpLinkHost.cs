// The coordinator's side of the TCP step link (protos/StepLink.cs), for workers that do not share its memory (other
// machines, other containers, or same-host workers with --shared-memory off). Prepare offers each worker this
// listener's port and a random nonce of its own; the worker connects to the host it registered with, proves the nonce
// and its id in a hello, and from then on its ComputeGradients requests and replies travel over that connection
// (StepLink), weights and gradient sums inside the messages, while Prepare, the dataset, heartbeats and the run's end
// stay on gRPC. With TLS on the coordinator (--tls-cert), each connection is TLS with the same certificate, and with
// --tls-mutual the worker's certificate must come from the CA, as for gRPC. Bounds against a peer that lies or
// stalls: a hello is at most 16 + 256 bytes and must arrive (after any TLS handshake) within the hello timeout; at
// most 8 connections from one address and 256 in all wait to say hello at once (more are closed at once); a nonce
// admits only the worker it was made for, compared in constant time; refusals are logged the 1st, 2nd, 4th, 8th…
// time only.
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using DistTrain.Protos;
using Google.Protobuf;

namespace DistTrain.Coordinator.Distributed;

public sealed class TcpLinkHost : IDisposable
{
    public const int NonceBytes = 16;
    private const int MaxWorkerIdBytes = 256;
    private const int MaxPendingHellos = 256;
    private const int MaxPendingPerAddress = 8;
    private readonly Socket _listener;
    private readonly Dictionary<string, byte[]> _nonces = [];
    private readonly Dictionary<string, StepLink> _links = [];
    private readonly int _maxReplyBytes;
    private readonly TimeSpan _helloTimeout;
    private readonly Action<string> _log;
    private readonly CancellationTokenSource _stopping = new();
    private readonly System.Net.Security.SslServerAuthenticationOptions? _tls;
    private int _pendingHellos;
    private readonly Dictionary<IPAddress, int> _pendingByAddress = [];
    private long _refusals;
    private bool _disposed;

    /// <summary>Listens on <paramref name="endpoint"/> (port 0: any free one); replies larger than <paramref name="maxReplyBytes"/> close a link.</summary>
    /// <param name="tls">With TLS, each connection's handshake (as a server) comes before its hello, within the same timeout.</param>
    public TcpLinkHost(IPEndPoint endpoint, int maxReplyBytes, Action<string> log, TimeSpan? helloTimeout = null,
        System.Net.Security.SslServerAuthenticationOptions? tls = null)
    {
        _tls = tls;
        _maxReplyBytes = maxReplyBytes;
        _log = log;
        _helloTimeout = helloTimeout ?? TimeSpan.FromSeconds(10);
        _listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (endpoint.AddressFamily == AddressFamily.InterNetworkV6 && endpoint.Address.Equals(IPAddress.IPv6Any)) _listener.DualMode = true;
            _listener.Bind(endpoint);
            _listener.Listen(64);
        }
        catch
        {
            _listener.Dispose();
            throw;
        }
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        new Thread(AcceptLinks) { IsBackground = true, Name = "disttrain-tcp-link-accept" }.Start();
    }

    /// <summary>
    /// A listener on the interface the coordinator's gRPC server listens on (<paramref name="listenUrl"/>'s host: an
    /// address, localhost, or any other name for every interface) at <paramref name="port"/>.
    /// </summary>
    public static TcpLinkHost Create(string listenUrl, int port, int maxReplyBytes, Action<string> log,
        System.Net.Security.SslServerAuthenticationOptions? tls = null)
    {
        var host = new Uri(listenUrl).Host.Trim('[', ']');
        // Every interface: both families where the machine has IPv6, else IPv4 (a container may have IPv6 off).
        IPAddress[] candidates = IPAddress.TryParse(host, out var ip) ? [ip]
            : host == "localhost" ? [IPAddress.Loopback]
            : Socket.OSSupportsIPv6 ? [IPAddress.IPv6Any, IPAddress.Any] : [IPAddress.Any];
        for (int i = 0; ; i++)
        {
            try { return new TcpLinkHost(new IPEndPoint(candidates[i], port), maxReplyBytes, log, tls: tls); }
            catch (SocketException e) when (i + 1 < candidates.Length && e.SocketErrorCode != SocketError.AddressAlreadyInUse) { }
            catch (SocketException e)
            {
                throw new Core.UserInputException($"train: cannot listen for TCP step links on {candidates[i]} port {port} (--tcp-link-port): {e.Message}");
            }
        }
    }

    public int Port { get; }

    /// <summary>
    /// The offer for <paramref name="workerId"/>: this port and its nonce — kept while its link is open (the worker
    /// keeps the link when prepared again), new otherwise, so a worker whose link this end closed connects again
    /// even before it has seen the close.
    /// </summary>
    public TcpLinkOffer OfferFor(string workerId)
    {
        lock (_links)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_nonces.TryGetValue(workerId, out var nonce) || !(_links.TryGetValue(workerId, out var link) && link.IsOpen))
                _nonces[workerId] = nonce = RandomNumberGenerator.GetBytes(NonceBytes);
            return new TcpLinkOffer { Port = Port, Nonce = ByteString.CopyFrom(nonce) };
        }
    }

    /// <summary>Closes the link of <paramref name="workerId"/> (its life ended: lost, refused, disconnected).</summary>
    public void Close(string workerId)
    {
        StepLink? link;
        lock (_links) _links.Remove(workerId, out link);
        link?.Dispose();
    }

    /// <summary>The open link of <paramref name="workerId"/>, if it connected.</summary>
    public StepLink? LinkOf(string workerId)
    {
        lock (_links) return _links.TryGetValue(workerId, out var link) && link.IsOpen ? link : null;
    }

    private void AcceptLinks()
    {
        while (true)
        {
            Socket connection;
            try { connection = _listener.Accept(); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { return; }
            var address = (connection.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
            if (!TryStartHello(address))
            {
                Refused(connection.RemoteEndPoint?.ToString(), $"{MaxPendingPerAddress} connections from its address (or {MaxPendingHellos} in all) already wait for their hello");
                connection.Dispose();
                continue;
            }
            // A thread per connection saying hello (at most MaxPendingHellos, each for the hello timeout at most): every
            // call on a link's socket is synchronous (StepConnection says why).
            new Thread(() => Admit(connection, address)) { IsBackground = true, Name = "disttrain-tcp-link-hello" }.Start();
        }
    }

    /// <summary>
    /// Counts a connection waiting for its hello, unless too many do — from its address (a peer flooding the port
    /// cannot crowd out workers elsewhere) or in all.
    /// </summary>
    private bool TryStartHello(IPAddress address)
    {
        lock (_pendingByAddress)
        {
            int fromAddress = _pendingByAddress.GetValueOrDefault(address);
            if (_pendingHellos >= MaxPendingHellos || fromAddress >= MaxPendingPerAddress) return false;
            _pendingHellos++;
            _pendingByAddress[address] = fromAddress + 1;
            return true;
        }
    }

    private void EndHello(IPAddress address)
    {
        lock (_pendingByAddress)
        {
            _pendingHellos--;
            if (_pendingByAddress[address] == 1) _pendingByAddress.Remove(address);
            else _pendingByAddress[address]--;
        }
    }

    /// <summary>Logs a refusal — the 1st, 2nd, 4th, 8th… only, so a peer cannot flood the log through this port.</summary>
    private void Refused(string? endpoint, string why)
    {
        long count = Interlocked.Increment(ref _refusals);
        if ((count & (count - 1)) == 0)
            _log($"a TCP step link from {endpoint ?? "?"} was refused: {why}{(count > 1 ? $" (refusal {count})" : "")}");
    }

    /// <summary>Reads the hello (nonce + worker id) within the timeout, checks both, answers, and keeps the link.</summary>
    private void Admit(Socket connection, IPAddress address)
    {
        string? endpoint = null;
        System.Net.Security.SslStream? tls = null;
        // The timeout closes the socket, which ends a blocking call (a peer sending a byte now and then included) —
        // unless the link was kept first (state 1; 2: closed by the timeout, said before the peer sees the close, or
        // by the host's end).
        int state = 0;
        void Abandon(bool timedOut)
        {
            if (Interlocked.CompareExchange(ref state, 2, 0) != 0) return;
            if (timedOut && !_stopping.IsCancellationRequested) Refused(endpoint, $"no hello within {_helloTimeout.TotalSeconds:0.#} s");
            connection.Dispose();
        }
        try { endpoint = connection.RemoteEndPoint?.ToString(); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        using var timeout = new Timer(_ => Abandon(timedOut: true), null, _helloTimeout, Timeout.InfiniteTimeSpan);
        using var stopping = _stopping.Token.Register(() => Abandon(timedOut: false));
        try
        {
            connection.NoDelay = true;
            StepConnection.KeepAlive(connection);
            // A backstop only: the timer closes the socket first.
            connection.ReceiveTimeout = connection.SendTimeout = (int)Math.Min(int.MaxValue, _helloTimeout.TotalMilliseconds + 1000);
            StepConnection link;
            if (_tls is not null)
            {
                tls = new System.Net.Security.SslStream(new NetworkStream(connection, ownsSocket: false));
                tls.AuthenticateAsServer(_tls);
                link = new StepConnection(connection, tls);
            }
            else link = new StepConnection(connection);
            var header = new byte[StepFrames.HeaderBytes];
            if (!StepFrames.ReceiveAll(link, header, allowEnd: true)) throw new IOException("it closed the connection before its hello");
            int length = BinaryPrimitives.ReadInt32LittleEndian(header);
            if (header[12] != StepFrames.Hello || length <= NonceBytes || length > NonceBytes + MaxWorkerIdBytes)
                throw new IOException($"its first frame is not a hello of {NonceBytes + 1}..{NonceBytes + MaxWorkerIdBytes} bytes");
            var hello = new byte[length];
            StepFrames.ReceiveAll(link, hello, allowEnd: false);
            string workerId = System.Text.Encoding.UTF8.GetString(hello, NonceBytes, length - NonceBytes);
            StepLink? old;
            lock (_links)
            {
                if (_disposed) throw new ObjectDisposedException(nameof(TcpLinkHost));
                if (!_nonces.TryGetValue(workerId, out var nonce) || !CryptographicOperations.FixedTimeEquals(nonce, hello.AsSpan(0, NonceBytes)))
                    throw new IOException($"its hello did not carry the nonce offered to worker '{PeerText.Printable(workerId, 64)}'");
                if (Interlocked.CompareExchange(ref state, 1, 0) != 0) throw new ObjectDisposedException(nameof(Socket));
                connection.ReceiveTimeout = connection.SendTimeout = 0;
                _links.Remove(workerId, out old);
                _links[workerId] = new StepLink(link, workerId, _maxReplyBytes, closeWhenAbandoned: true);
            }
            old?.Dispose();
            StepFrames.Write(link, 0, StepFrames.Hello, ReadOnlySpan<byte>.Empty);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException
            or System.Security.Authentication.AuthenticationException)
        {
            // Closed by the timeout (said there) or the host's end: nothing more to say. Otherwise said here, and the
            // timer, which may still fire before it is disposed, says nothing more.
            if (e is SocketException { SocketErrorCode: SocketError.TimedOut } or IOException { InnerException: SocketException { SocketErrorCode: SocketError.TimedOut } })
                Abandon(timedOut: true);
            else if (Interlocked.Exchange(ref state, 2) != 2 && !_stopping.IsCancellationRequested) Refused(endpoint, e.Message);
            Close(tls, connection);
        }
        catch (Exception e)
        {
            if (Interlocked.Exchange(ref state, 2) != 2) Refused(endpoint, $"{e.GetType().Name}: {e.Message}");
            Close(tls, connection);
        }
        finally { EndHello(address); }
    }

    private static void Close(System.Net.Security.SslStream? tls, Socket connection)
    {
        try { tls?.Dispose(); } catch (Exception d) when (d is IOException or ObjectDisposedException) { }
        connection.Dispose();
    }

    /// <summary>Stops listening and closes every link (their pending calls fail as Unavailable).</summary>
    public void Dispose()
    {
        lock (_links)
        {
            if (_disposed) return;
            _disposed = true;
            _stopping.Cancel();
            _listener.Dispose();
            foreach (var link in _links.Values) link.Dispose();
            _links.Clear();
        }
    }
}
