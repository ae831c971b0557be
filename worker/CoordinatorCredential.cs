// Who may call this worker: only the coordinator it registered with. The worker makes one session secret per process
// and sends it only in its Register; every Worker-service call must carry it back, so another holder of the shared
// token (another worker) cannot drive this one. With client certificates the session is also bound to the
// certificate the coordinator's first call after registering presented.
using System.Security.Cryptography;
using DistTrain.Protos.Security;
using Grpc.Core;

namespace DistTrain.Worker;

public sealed class CoordinatorCredential
{
    private readonly object _lock = new();
    private bool _offered;
    private string? _certificate;

    public SessionSecret Secret { get; } = SessionSecret.Generate();

    /// <summary>
    /// Called as the secret goes out in a Register: from now on calls carrying it are accepted. Called before the
    /// answer arrives, because the coordinator may send Prepare before its Register answer reaches this worker.
    /// A new registration may be with a restarted coordinator, so the certificate binding starts over.
    /// </summary>
    public void Offered()
    {
        lock (_lock) (_offered, _certificate) = (true, null);
    }

    /// <summary>Throws Unauthenticated unless the call comes from the coordinator this worker registered with.</summary>
    public void Check(ServerCallContext context)
    {
        lock (_lock)
        {
            if (!_offered)
                throw Refused("this worker has not registered with a coordinator yet and accepts no calls before it has");
        }
        if (!Secret.Matches(context.RequestHeaders.GetValue(SessionSecret.Header)))
            throw Refused($"the call lacks the session secret ({SessionSecret.Header}) this worker gave the coordinator it " +
                          "registered with; only that coordinator may call it");
        // Without client certificates every caller presents none (""), so the binding never refuses.
        string presented = context.GetHttpContext().Connection.ClientCertificate?.GetCertHashString(HashAlgorithmName.SHA256) ?? "";
        lock (_lock)
        {
            _certificate ??= presented;
            if (!CryptographicOperations.FixedTimeEquals(
                    System.Text.Encoding.ASCII.GetBytes(_certificate), System.Text.Encoding.ASCII.GetBytes(presented)))
                throw Refused("the call presented another client certificate than the coordinator this worker registered with");
        }
    }

    private static RpcException Refused(string message) => new(new Status(StatusCode.Unauthenticated, message));
}
