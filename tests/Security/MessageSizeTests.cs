// Oversized messages are refused from their 5-byte gRPC prefix, never buffered: a 64 MiB+ Register to a coordinator
// whose limit is 64 KiB, and a 70 MiB ComputeGradients to a worker limited to 1 MiB, get ResourceExhausted while
// the receiving process's peak memory stays flat. Without the token the same messages are refused before any read.
using System.Text.RegularExpressions;
using DistTrain.Tests.Distributed;

namespace DistTrain.Tests.Security;

public sealed partial class MessageSizeTests : IDisposable
{
    private const long AllowedGrowth = 32L << 20;
    private readonly SecureCluster _cluster = new();

    [Fact]
    public async Task OversizedMessagesAreRefusedWithoutBeingAllocated()
    {
        string token = SecureCluster.NewToken();
        var environment = new Dictionary<string, string> { ["DISTTRAIN_TOKEN"] = token };
        int coordinatorPort = ProcessHarness.FreePort(), workerPort = ProcessHarness.FreePort(), nobody = ProcessHarness.FreePort();
        var coordinator = _cluster.Coordinator($"http://127.0.0.1:{coordinatorPort}", _cluster.WriteConfig(), _cluster.File("x.safetensors"), environment);
        var worker = _cluster.Worker("worker", $"http://127.0.0.1:{nobody}", environment,
            "--port", workerPort.ToString(), "--max-message-bytes", (1 << 20).ToString());
        ProcessHarness.WaitForPort(coordinatorPort);
        ProcessHarness.WaitForPort(workerPort);

        // Each body is a Register / ComputeGradients message prefix promising the size, followed by that many bytes.
        foreach (var (process, port, path, size) in new[]
        {
            (coordinator.Process, coordinatorPort, "/disttrain.v1.Coordinator/Register", (64L << 20) + 1),
            (worker.Process, workerPort, "/disttrain.v1.Worker/ComputeGradients", 70L << 20),
        })
        {
            Assert.Equal("16", await SendAsync(port, path, size, authorization: null)); // warms up the server's paths too
            var before = Memory(process.Id);
            ResetPeak(process.Id);
            Assert.Equal("8", await SendAsync(port, path, size, "Bearer " + token)); // ResourceExhausted
            Assert.Equal("16", await SendAsync(port, path, size, authorization: null)); // Unauthenticated, before any read
            var after = Memory(process.Id);
            long ceiling = Math.Max(before.Rss + AllowedGrowth, before.PeakResettable ? 0 : before.Peak);
            Assert.True(after.Peak <= ceiling,
                $"peak resident memory rose from {before.Rss >> 20} MiB to {after.Peak >> 20} MiB (allowed {ceiling >> 20} MiB)");
            Assert.False(process.HasExited);
        }
        _cluster.AssertNeverLogged(token);
    }

    /// <summary>
    /// Streams a gRPC request whose prefix declares <paramref name="size"/> bytes and then sends them, 64 KiB at a
    /// time and never all in memory, until the server answers; returns its grpc-status.
    /// </summary>
    private static async Task<string> SendAsync(int port, string path, long size, string? authorization)
    {
        using var http = new HttpClient(new SocketsHttpHandler()) { Timeout = TimeSpan.FromSeconds(60) };
        using var answered = new CancellationTokenSource();
        var body = new StreamingBody(async stream =>
        {
            var prefix = new byte[5];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(prefix.AsSpan(1), (uint)size);
            await stream.WriteAsync(prefix, answered.Token);
            var chunk = new byte[64 << 10];
            for (long sent = 0; sent < size && !answered.IsCancellationRequested; sent += chunk.Length)
                await stream.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, size - sent)), answered.Token);
        });
        body.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}{path}")
        {
            Version = System.Net.HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact, Content = body,
        };
        request.Headers.TryAddWithoutValidation("te", "trailers");
        if (authorization is not null) request.Headers.TryAddWithoutValidation("authorization", authorization);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        answered.Cancel();
        await response.Content.ReadAsByteArrayAsync();
        string Field(string name) => (response.Headers.TryGetValues(name, out var header) ? header
            : response.TrailingHeaders.TryGetValues(name, out var trailer) ? trailer : ["none"]).First();
        return Field("grpc-status");
    }

    private sealed class StreamingBody(Func<Stream, Task> write) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            try { await write(stream); }
            catch (OperationCanceledException) { }
            catch (IOException) { } // the server reset the stream once it had answered
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    private readonly record struct ResidentMemory(long Rss, long Peak, bool PeakResettable);

    private static ResidentMemory Memory(int pid)
    {
        string status = File.ReadAllText($"/proc/{pid}/status");
        long Field(string name) => long.Parse(Regex.Match(status, $@"^{name}:\s+(\d+) kB", RegexOptions.Multiline).Groups[1].Value) * 1024;
        return new ResidentMemory(Field("VmRSS"), Field("VmHWM"), CanResetPeak);
    }

    private static bool CanResetPeak = true;

    /// <summary>`5` in clear_refs resets the peak (VmHWM) to the current RSS, so the peak measures just this call.</summary>
    private static void ResetPeak(int pid)
    {
        try { File.WriteAllText($"/proc/{pid}/clear_refs", "5"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { CanResetPeak = false; }
    }

    public void Dispose() => _cluster.Dispose();
}
