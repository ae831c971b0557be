// What one unauthenticated peer can make a gRPC server hold: connections, streams per connection, time to send its
// headers, header size, and concurrent grpc.health.v1 Watch streams (the one call that stays open without a token).
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace DistTrain.Protos.Security;

public static class ServerLimits
{
    /// <summary>Concurrent health Watch streams per server; more are refused with ResourceExhausted.</summary>
    public const int MaxHealthWatches = 16;
    public static readonly TimeSpan RequestHeadersTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Bounds a gRPC server's Kestrel: <paramref name="maxConnections"/> at once, each with at most
    /// <paramref name="maxStreamsPerConnection"/> concurrent calls (what one legitimate peer needs, not HTTP/2's 100).
    /// </summary>
    public static void Apply(KestrelServerOptions kestrel, int maxConnections, int maxStreamsPerConnection)
    {
        kestrel.AddServerHeader = false;
        kestrel.Limits.MaxConcurrentConnections = maxConnections;
        kestrel.Limits.Http2.MaxStreamsPerConnection = maxStreamsPerConnection;
        kestrel.Limits.RequestHeadersTimeout = RequestHeadersTimeout;
        kestrel.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
        kestrel.Limits.Http2.MaxRequestHeaderFieldSize = 16 * 1024;
    }
}

/// <summary>
/// Counts open grpc.health.v1 Watch streams (which need no token) and refuses those beyond
/// <see cref="ServerLimits.MaxHealthWatches"/>; registered as a singleton so the count is the server's.
/// </summary>
public sealed class HealthWatchLimit : Interceptor
{
    public const string WatchMethod = "/grpc.health.v1.Health/Watch";
    private int _open;

    public int Open => Volatile.Read(ref _open);

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        if (context.Method != WatchMethod)
        {
            await continuation(request, responseStream, context);
            return;
        }
        if (Interlocked.Increment(ref _open) > ServerLimits.MaxHealthWatches)
        {
            Interlocked.Decrement(ref _open);
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"at most {ServerLimits.MaxHealthWatches} health watches at once; use Check"));
        }
        try
        {
            await continuation(request, responseStream, context);
        }
        finally
        {
            Interlocked.Decrement(ref _open);
        }
    }
}
