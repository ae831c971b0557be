// What the coordinator does when no worker is ready mid-run: with --wait-for-workers SECONDS it waits for one to
// (re)register, saying so every few seconds; without it, or when the wait runs out, it fails with one line. Never silent.
using System.Diagnostics;

namespace DistTrain.Coordinator.Distributed;

public sealed class WorkerWait(WorkerRegistry registry, TimeSpan limit, TimeSpan noticeInterval, Action<string> log)
{
    /// <summary>Fails at once when no worker is ready (the default: --wait-for-workers 0).</summary>
    public static WorkerWait None(WorkerRegistry registry) => new(registry, TimeSpan.Zero, TimeSpan.FromSeconds(5), _ => { });

    public TimeSpan Limit => limit;

    /// <summary>Returns once a worker is ready; throws WorkersUnavailableException when the limit passes first.</summary>
    public async Task UntilReadyAsync(long step, CancellationToken cancellationToken)
    {
        if (registry.ReadyForPlanning().Count > 0) return;
        if (limit <= TimeSpan.Zero)
            throw new WorkersUnavailableException(
                $"step {step}: no ready workers are left ({registry.DescribeAbsent()}); pass --wait-for-workers SECONDS to wait for them");
        var clock = Stopwatch.StartNew();
        var nextNotice = TimeSpan.Zero;
        while (true)
        {
            var changed = registry.WaitForChangeAsync(cancellationToken);
            int ready = registry.ReadyForPlanning().Count;
            if (ready > 0)
            {
                log($"step {step}: {ready} worker(s) ready after waiting {clock.Elapsed.TotalSeconds:F1}s; continuing");
                return;
            }
            var elapsed = clock.Elapsed;
            if (elapsed >= limit)
                throw new WorkersUnavailableException(
                    $"step {step}: no worker became ready within --wait-for-workers {limit.TotalSeconds:F0}s ({registry.DescribeAbsent()})");
            if (elapsed >= nextNotice)
            {
                log($"step {step}: waiting for workers — none ready; {(limit - elapsed).TotalSeconds:F0}s left of --wait-for-workers {limit.TotalSeconds:F0}s ({registry.DescribeAbsent()})");
                nextNotice = elapsed + noticeInterval;
            }
            var wake = (nextNotice < limit ? nextNotice : limit) - elapsed;
            await Task.WhenAny(changed, Task.Delay(wake, cancellationToken)).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }
}
