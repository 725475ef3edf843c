namespace Bulwark.Bench;

/// <summary>--name value options of a benchmark command line, with typed reads that name the bad value.</summary>
internal sealed class BenchArgs
{
    private readonly Dictionary<string, string> _values = new();
    private readonly HashSet<string> _flags = new();

    public BenchArgs(string[] args, params string[] flags)
    {
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--")) throw new ArgumentException($"unexpected argument \"{args[i]}\"");
            var name = args[i][2..];
            if (flags.Contains(name)) _flags.Add(name);
            else if (i + 1 < args.Length) _values[name] = args[++i];
            else throw new ArgumentException($"--{name} needs a value");
        }
    }

    public bool Flag(string name) => _flags.Contains(name);

    public string String(string name, string fallback) => _values.GetValueOrDefault(name, fallback);

    public int Int(string name, int fallback, int min, int max)
    {
        if (!_values.TryGetValue(name, out var text)) return fallback;
        if (!int.TryParse(text, out var value) || value < min || value > max)
            throw new ArgumentException($"--{name} must be an integer between {min} and {max}; got \"{text}\"");
        return value;
    }

    public string[] List(string name, string fallback) =>
        String(name, fallback).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
