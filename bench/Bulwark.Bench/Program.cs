// Benchmarks: each subcommand compares Bulwark with an independent implementation in one run.
Console.Error.WriteLine("usage: dotnet run -c Release --project bench/Bulwark.Bench -- <benchmark> [options]");
return 2;
