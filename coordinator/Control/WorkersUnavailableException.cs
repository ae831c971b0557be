// The control plane's verdict that the run cannot go on: too few workers at start, none left mid-run (after the
// wait, if any), a block nobody can compute, or the attempt limit. The train command prints it as one error line.
namespace DistTrain.Coordinator.Control;

public sealed class WorkersUnavailableException(string message) : Exception(message);
