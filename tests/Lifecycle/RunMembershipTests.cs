// The worker's side of the end of a run, without processes: only a well-formed notice for the run the worker
// registered with ends it (FailedPrecondition for another protocol, another run or none; InvalidArgument for a
// malformed one), registering again with the same run keeps an announced end, and leaving makes room for the next run.
using DistTrain.Protos;
using DistTrain.Worker;
using Grpc.Core;

namespace DistTrain.Tests.Lifecycle;

public sealed class RunMembershipTests
{
    private static EndRunRequest Request(string run, RunOutcome outcome = RunOutcome.Finished, string detail = "", uint version = Protocol.Version) =>
        new() { ProtocolVersion = version, CoordinatorRun = run, End = new RunEnd { Outcome = outcome, Detail = detail } };

    private static StatusCode Refusal(RunMembership membership, EndRunRequest request) =>
        Assert.Throws<RpcException>(() => membership.Accept(request)).StatusCode;

    [Fact]
    public async Task OnlyAWellFormedNoticeForTheRunServedEndsIt()
    {
        var membership = new RunMembership();
        Assert.Equal(StatusCode.FailedPrecondition, Refusal(membership, Request("run-a"))); // not registered yet
        membership.Join("run-a");
        Assert.Equal(StatusCode.FailedPrecondition, Refusal(membership, Request("run-a", version: Protocol.Version - 1)));
        Assert.Equal(StatusCode.FailedPrecondition, Refusal(membership, Request("run-old"))); // a stale coordinator's
        Assert.Equal(StatusCode.InvalidArgument, Refusal(membership, Request("")));
        Assert.Equal(StatusCode.InvalidArgument, Refusal(membership, Request(new string('r', RunEndNotice.MaxRunLength + 1))));
        Assert.Equal(StatusCode.InvalidArgument, Refusal(membership, Request("run-a", RunOutcome.Unspecified)));
        Assert.Equal(StatusCode.InvalidArgument, Refusal(membership, Request("run-a", (RunOutcome)7)));
        Assert.Equal(StatusCode.InvalidArgument, Refusal(membership, Request("run-a", detail: new string('d', RunEndNotice.MaxDetailLength + 1))));
        Assert.Equal(StatusCode.InvalidArgument, Refusal(membership, new EndRunRequest { ProtocolVersion = Protocol.Version, CoordinatorRun = "run-a" }));
        Assert.False(membership.Ended.IsCompleted);

        var reply = membership.Accept(Request("run-a", RunOutcome.Interrupted, "SIGTERM"));
        Assert.Equal(Protocol.Version, reply.ProtocolVersion);
        Assert.True(membership.Ended.IsCompletedSuccessfully);
        var end = await membership.Ended;
        Assert.Equal((RunOutcome.Interrupted, "SIGTERM"), (end.Outcome, end.Detail));
        // The heartbeat answer may bring it again: same end, no error.
        Assert.True(membership.End("run-a", RunEndNotice.Create(RunOutcome.Interrupted, "SIGTERM")));
    }

    [Fact]
    public async Task RegisteringAgainWithTheSameRunKeepsItsEndAndLeavingMakesRoomForTheNext()
    {
        var membership = new RunMembership();
        membership.Join("run-a");
        var ended = membership.Ended;
        membership.Join("run-a"); // a heartbeat failed, the worker registered again with the same coordinator
        Assert.Same(ended, membership.Ended);
        Assert.True(membership.End("run-a", RunEndNotice.Create(RunOutcome.Finished, "")));
        membership.Join("run-a");
        Assert.True(membership.Ended.IsCompleted);

        // --serve-forever: the worker forgets the run; the next coordinator's run starts unended, and a late notice of
        // the old run cannot end it.
        membership.Leave();
        Assert.Equal("", membership.Run);
        Assert.False(membership.Ended.IsCompleted);
        membership.Join("run-b");
        Assert.False(membership.End("run-a", RunEndNotice.Create(RunOutcome.Finished, "")));
        Assert.False(membership.Ended.IsCompleted);
        Assert.True(membership.End("run-b", RunEndNotice.Create(RunOutcome.Failed, "no workers")));
        Assert.Equal(RunOutcome.Failed, (await membership.Ended).Outcome);
    }
}
