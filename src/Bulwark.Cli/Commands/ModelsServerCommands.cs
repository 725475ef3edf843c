using System.CommandLine;
using System.Net;
using System.Text;
using System.Text.Json;

namespace Bulwark.Cli.Commands;

/// <summary>
/// The verbs of <c>bulwark models</c> that act on a running server through its admin API
/// (<c>--url</c> plus an admin key in <c>BULWARK_ADMIN_KEY</c>): <c>load</c>, <c>unload</c>,
/// <c>loaded</c>, and <c>use</c>/<c>rollback</c> when given <c>--url</c>. The server verifies,
/// loads, swaps and audits; these only ask and print what it answered.
/// </summary>
internal static class ModelsServerCommands
{
    public static IEnumerable<Command> All() => [Load(), Unload(), Loaded()];

    private static Command Load()
    {
        var url = UrlOption(required: true);
        var name = new Argument<string>("name") { Description = "A registered model name." };
        var version = new Option<string?>("--version") { Description = "Version to load (default: the registry's serving version)." };
        var command = new Command("load", $"Load a registered model into a running server, verified first (needs --url and ${AdminCommand.AdminKeyVariable}).") { name, version, url };
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            var body = r.GetValue(version) is { } v ? JsonSerializer.Serialize(new { version = v }) : "{}";
            var answer = await PostAsync(r.GetValue(url)!, $"admin/models/{Uri.EscapeDataString(r.GetValue(name)!)}/load", body, ct);
            var loaded = answer.GetProperty("loaded");
            output.WriteLine($"loaded {loaded.GetProperty("id").GetString()} {loaded.GetProperty("version").GetString()}");
            return 0;
        }));
        return command;
    }

    private static Command Unload()
    {
        var url = UrlOption(required: true);
        var name = new Argument<string>("name") { Description = "A loaded model's id." };
        var command = new Command("unload", "Stop serving a model in a running server; requests it is running finish first.") { name, url };
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            var answer = await PostAsync(r.GetValue(url)!, $"admin/models/{Uri.EscapeDataString(r.GetValue(name)!)}/unload", "{}", ct);
            var gone = answer.GetProperty("unloaded");
            output.WriteLine($"unloaded {gone.GetProperty("id").GetString()} ({gone.GetProperty("in_flight").GetInt32()} requests finishing on it)");
            return 0;
        }));
        return command;
    }

    private static Command Loaded()
    {
        var url = UrlOption(required: true);
        var json = new Option<bool>("--json") { Description = "Print the server's JSON answer." };
        var command = new Command("loaded", "List the models a running server has loaded, and the memory they hold.") { url, json };
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            using var http = AdminCommand.AdminClient(r.GetValue(url)!);
            using var response = await http.GetAsync("admin/models", ct);
            var text = await response.Content.ReadAsStringAsync(ct);
            if (response.StatusCode != HttpStatusCode.OK) throw new CliException($"the server answered {(int)response.StatusCode}: {AdminCommand.ErrorMessage(text)}");
            if (r.GetValue(json))
            {
                output.WriteLine(text);
                return 0;
            }
            using var document = JsonDocument.Parse(text);
            var loaded = document.RootElement.GetProperty("loaded");
            if (loaded.GetArrayLength() == 0) output.WriteLine("no model loaded");
            foreach (var m in loaded.EnumerateArray())
                output.WriteLine($"{(m.GetProperty("default").GetBoolean() ? "*" : " ")} {m.GetProperty("id").GetString(),-24} {m.GetProperty("version").GetString() ?? "-",-5} " +
                                 $"{m.GetProperty("in_flight").GetInt32(),4} in flight  {m.GetProperty("memory_bytes").GetInt64(),14} bytes  {m.GetProperty("origin").GetString()}");
            return 0;
        }));
        return command;
    }

    /// <summary><c>models use NAME VERSION --url</c>: the server loads the version verified, records it as serving and swaps it in.</summary>
    public static Task<int> UseAsync(ParseResult r, string url, string name, string version, CancellationToken ct) =>
        CliRun.RunAsync(r, async output =>
        {
            var answer = await PostAsync(url, $"admin/models/{Uri.EscapeDataString(name)}/use", JsonSerializer.Serialize(new { version }), ct);
            output.WriteLine(Switched(name, answer));
            return 0;
        });

    /// <summary><c>models rollback NAME --url</c>: the server goes back to the previous version in one call.</summary>
    public static Task<int> RollbackAsync(ParseResult r, string url, string name, CancellationToken ct) =>
        CliRun.RunAsync(r, async output =>
        {
            var answer = await PostAsync(url, $"admin/models/{Uri.EscapeDataString(name)}/rollback", "{}", ct);
            output.WriteLine(Switched(name, answer));
            return 0;
        });

    public static Option<string?> UrlOption(bool required) => new("--url")
    {
        Description = $"Act on the running server at this URL through its admin API (admin key from ${AdminCommand.AdminKeyVariable}); " +
                      "http only to a loopback address.",
        Required = required,
    };

    private static string Switched(string name, JsonElement answer)
    {
        var serving = answer.GetProperty("serving").GetProperty("version").GetString();
        return answer.GetProperty("replaced") is { ValueKind: JsonValueKind.Object } replaced
            ? $"{name}: serving {serving} (replaced {replaced.GetProperty("version").GetString() ?? replaced.GetProperty("origin").GetString()}, {replaced.GetProperty("in_flight").GetInt32()} requests finishing on it)"
            : $"{name}: serving {serving}";
    }

    private static async Task<JsonElement> PostAsync(string url, string path, string body, CancellationToken ct)
    {
        using var http = AdminCommand.AdminClient(url);
        // Loading a large model takes a while: the server answers once it serves.
        http.Timeout = TimeSpan.FromMinutes(30);
        using var response = await http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"), ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) throw new CliException($"the server answered {(int)response.StatusCode}: {AdminCommand.ErrorMessage(text)}");
        using var document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }
}
