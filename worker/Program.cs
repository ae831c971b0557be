// Worker entry point: hosts the gradient service that computes shard gradients with the core.
Console.Error.WriteLine("disttrain-worker: the distributed worker service is not available in this build");
return 2;
