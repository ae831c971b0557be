// Who may register and heartbeat, and how big the registry may grow. An address is only a claim: while a live worker
// holds it, only a caller with the same session digest (the same worker process) may register it again; heartbeats must
// carry the holder's digest. Lost and refused workers silent past --forget-after are forgotten, and --max-workers caps
// the records, so a flood of registrations neither evicts a live worker nor grows the coordinator without bound.
using System.Security.Cryptography;

namespace DistTrain.Coordinator.Control;

public sealed partial class ClusterStateMachine
{
    private bool _fullLogged;

    private void Register(WorkerRegistering e)
    {
        int cores = Math.Max(1, e.Cores);
        var known = _members.WithAddress(e.Address);
        if (known is { Live: true } && !SameSession(known.SessionDigest, e.SessionDigest))
        {
            // Refused without touching the holder: otherwise anyone who can name its address ends its life.
            string reason = $"{known.Id} holds that address and is {known.State.ToString().ToLowerInvariant()}; " +
                "a registration from another worker session waits until it is lost";
            Emit(new LogLine($"registration from {e.Address} refused: {reason}"));
            Emit(new RegistrationRefused(e.Address, RegistrationRefusal.AddressHeld, reason));
            return;
        }
        WorkerRecord record;
        if (known is not null)
        {
            record = known with
            {
                Generation = known.Generation + 1, Cores = cores, State = WorkerState.Rejoining, LastSeen = _now,
                Reason = known.State == WorkerState.Lost ? $"back after: {known.Reason}" : "registered again (restarted)",
                SameHost = false, ReadyDuringStep = -1, Rejoins = known.Rejoins + 1,
                SessionDigest = e.SessionDigest, MismatchLogged = false,
            };
            _members.Set(record);
            _members.Meter(record.Id).NewLife();
            // Its previous life is over, whatever it had in flight (the new one is not planned before it is prepared).
            if (known.State != WorkerState.Lost)
            {
                Advance(AbandonRequestsOf(known.Id, "registered again (restarted)"));
                Emit(new DisconnectWorker(known.Id, known.Generation));
            }
        }
        else
        {
            // A refused worker trying again replaces its record: one record an address.
            if (_members.RefusedAt(e.Address) is { } refused) _members.Remove(refused.Id);
            if (!MakeRoom())
            {
                string reason = $"the registry holds {_options.MaxWorkers} live worker(s) (--max-workers)";
                if (!_fullLogged) Emit(new LogLine($"registration from {e.Address} refused: {reason}; further ones are refused silently while it is full"));
                _fullLogged = true;
                Emit(new RegistrationRefused(e.Address, RegistrationRefusal.Full, reason));
                return;
            }
            record = _members.Add(e.Address, cores, _now) with { SessionDigest = e.SessionDigest };
            _members.Set(record);
        }
        Version++;
        Emit(new LogLine($"worker {record.Id} registered from {record.Address} with {cores} thread(s)"));
        Emit(new RegistrationAnswer(record.Address, record.Id, record.Generation, RunId, _options.HeartbeatInterval));
        Emit(new PrepareWorker(record.Id, record.Generation, record.Address, cores));
    }

    /// <summary>Room for one more record: there is some, or the longest-silent lost or refused worker is forgotten.</summary>
    private bool MakeRoom()
    {
        if (_members.All.Count < _options.MaxWorkers)
        {
            _fullLogged = false;
            return true;
        }
        if (_members.All.Where(r => !r.Live).MinBy(r => r.LastSeen) is not { } gone) return false;
        _members.Remove(gone.Id);
        return true;
    }

    private void Heartbeat(HeartbeatReceived e)
    {
        var record = _members.Find(e.WorkerId);
        bool known = e.CoordinatorRun == RunId && record is not null && record.State != WorkerState.Lost;
        if (known && !SameSession(record!.SessionDigest, e.SessionDigest) && record.SessionDigest is not null)
        {
            // Not its session: the sender is told it is unknown and the holder's silence still counts.
            known = false;
            if (!record.MismatchLogged)
            {
                _members.Set(record with { MismatchLogged = true });
                Emit(new LogLine($"worker {record.Id} ({record.Address}): a heartbeat from another session was ignored"));
            }
        }
        else if (known) _members.Set(record! with { LastSeen = _now });
        Emit(new HeartbeatAnswer(e.WorkerId, known, Run));
    }

    /// <summary>Lost and refused workers silent past ForgetAfter leave the registry (and the view).</summary>
    private void ForgetLongGone()
    {
        foreach (var record in _members.All.Where(r => !r.Live && _now - r.LastSeen > _options.ForgetAfter).ToList())
        {
            _members.Remove(record.Id);
            Version++;
            Emit(new LogLine($"worker {record.Id} ({record.Address}) forgotten: {record.State.ToString().ToLowerInvariant()} " +
                $"and silent for {Seconds(_now - record.LastSeen, "F0")}s"));
        }
    }

    /// <summary>The same worker session: both digests given and equal (compared in constant time).</summary>
    private static bool SameSession(byte[]? held, byte[]? claimed) =>
        held is { Length: > 0 } && claimed is { Length: > 0 } && CryptographicOperations.FixedTimeEquals(held, claimed);
}
