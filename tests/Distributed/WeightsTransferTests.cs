// When a gRPC worker fetches a step's weights instead of receiving them in the request: auto fetches weights of at
// least one default HTTP/2 stream window (768 KiB); fetch and push do as they say.
using DistTrain.Coordinator.Distributed;

namespace DistTrain.Tests.Distributed;

public class WeightsTransferTests
{
    [Theory]
    // The fashion example's float32 weights (918.5 KiB) are fetched; its bfloat16 ones (459 KiB) and the lecture
    // example's (397.5 KiB) go in the request.
    [InlineData(WeightsTransfer.Auto, 4 * 235_146, true)]
    [InlineData(WeightsTransfer.Auto, 2 * 235_146, false)]
    [InlineData(WeightsTransfer.Auto, 4 * 101_770, false)]
    [InlineData(WeightsTransfer.Auto, 768 * 1024, true)]
    [InlineData(WeightsTransfer.Auto, 768 * 1024 - 1, false)]
    [InlineData(WeightsTransfer.Fetch, 400, true)]
    [InlineData(WeightsTransfer.Push, 4 << 20, false)]
    public void AutoFetchesWeightsAboveAStreamWindowAndTheOthersDoAsTheySay(
        WeightsTransfer mode, int bytes, bool fetched) =>
        Assert.Equal(fetched, StepTransport.Fetches(mode, bytes));
}
