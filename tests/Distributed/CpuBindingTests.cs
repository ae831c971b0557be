// CPU binding of compute threads: the CPU list syntax, the coordinator's disjoint and stable assignment to same-host
// workers, and a real bind of a runner's threads checked through /proc (what the kernel will enforce).
using DistTrain.Coordinator.Distributed;
using DistTrain.Core;
using DistTrain.Core.Training;

namespace DistTrain.Tests.Distributed;

public class CpuBindingTests
{
    [Fact]
    public void CpuListsParseRangesAndRejectNonsenseWithTheFlagNamed()
    {
        Assert.Equal([0, 1, 2, 3, 6], CpuAffinity.Parse("0-3,6", "--cpus"));
        Assert.Equal([5, 2], CpuAffinity.Parse(" 5 , 2,5", "--cpus"));
        foreach (var bad in new[] { "3-1", "x", "-1", "1-", "", "2048" })
        {
            var error = Assert.Throws<UserInputException>(() => CpuAffinity.Parse(bad, "--cpus"));
            Assert.StartsWith("--cpus", error.Message);
        }
    }

    [Fact]
    public void SameHostWorkersGetDisjointCpusThatTheyKeepWhenTheyRejoin()
    {
        var cpus = CpuAffinity.ProcessCpus;
        string root = Directory.CreateTempSubdirectory("disttrain-cpu-test-").FullName;
        try
        {
            using var host = SharedMemoryHost.Create(root, parameterCount: 10, slotCount: 2, _ => { });
            var first = host.ForWorker("w1", 1).Offer.ComputeCpus.ToList();
            Assert.Equal([cpus[0]], first);
            var second = host.ForWorker("w2", 1).Offer.ComputeCpus.ToList();
            if (cpus.Count >= 2) Assert.Equal([cpus[1]], second);
            else Assert.Empty(second);
            Assert.Equal(first, host.ForWorker("w1", 1).Offer.ComputeCpus);
            // More threads than free CPUs: not bound rather than sharing another worker's CPU.
            Assert.Empty(host.ForWorker("w3", cpus.Count).Offer.ComputeCpus);

            using var off = SharedMemoryHost.Create(root, parameterCount: 10, slotCount: 2, _ => { }, bindCpus: false);
            Assert.Empty(off.ForWorker("w1", 1).Offer.ComputeCpus);
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public void BoundPoolThreadsRunOnlyOnTheirCpu()
    {
        Assert.True(CpuAffinity.IsSupported, "the tests run on Linux");
        var cpus = CpuAffinity.ProcessCpus;
        using var runner = new ParallelRunner(3);
        var errors = new List<string>();
        runner.BindPoolThreads(thread => [cpus[thread % cpus.Count]], errors.Add);
        var seen = new IReadOnlyList<int>[3];
        runner.Run(thread => seen[thread] = CpuAffinity.Allowed());
        Assert.Empty(errors);
        Assert.Equal([cpus[1 % cpus.Count]], seen[1]);
        Assert.Equal([cpus[2 % cpus.Count]], seen[2]);
        // The caller's thread (a test-runner thread) is not touched.
        Assert.Equal(cpus, seen[0]);

        // Unbinding: every CPU of the process again.
        runner.BindPoolThreads(_ => CpuAffinity.ProcessCpus, errors.Add);
        runner.Run(thread => seen[thread] = CpuAffinity.Allowed());
        Assert.Equal(cpus, seen[1]);
        Assert.Equal(cpus, seen[2]);
    }
    [Fact]
    public void RequestsToTheWorkerOnTheSendingCpuGoLast()
    {
        var cpus = CpuAffinity.ProcessCpus;
        Assert.True(cpus.Count >= 2, "this test needs two CPUs");
        string[] workers = ["w1", "w2", "w3"];
        var cpusOf = new Dictionary<string, IReadOnlyList<int>?> { ["w1"] = [cpus[0]], ["w2"] = [cpus[1]], ["w3"] = null };
        Exception? failure = null;
        // A thread of its own, bound in turn to each worker's CPU (the test runner's threads are left alone).
        var thread = new Thread(() =>
        {
            try
            {
                Assert.True(CpuAffinity.TryBindCurrentThread([cpus[0]], out string error), error);
                Assert.Equal(["w2", "w3", "w1"], StepTransport.SendOrder(workers, w => cpusOf[w]));
                Assert.True(CpuAffinity.TryBindCurrentThread([cpus[1]], out error), error);
                Assert.Equal(["w1", "w3", "w2"], StepTransport.SendOrder(workers, w => cpusOf[w]));
            }
            catch (Exception e) { failure = e; }
        });
        thread.Start();
        thread.Join();
        if (failure is not null) throw failure;
    }
}
