// Benchmarks: each subcommand compares Bulwark with an independent implementation in one run.
// One dispatch line per benchmark; each lives in its own file.
if (args is ["tokenizers", ..]) return Bulwark.Bench.TokenizersBenchmark.Run(args[1..]);
Console.Error.WriteLine("usage: dotnet run -c Release --project bench/Bulwark.Bench -- <benchmark> [options]");
Console.Error.WriteLine("benchmarks: tokenizers [--mb N] [--runs N] [--spm tokenizer.model]");
return 2;
