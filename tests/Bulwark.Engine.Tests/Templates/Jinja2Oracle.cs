using System.Diagnostics;
using System.Text.Json;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Templates;

/// <summary>
/// Renders <see cref="OracleCases"/> once with Python Jinja2 in the fixtures' own environment
/// (jinja2_oracle.py). If python3, Jinja2 or the fixtures are missing, the constructor throws
/// and every oracle test fails loudly rather than passing.
/// </summary>
public sealed class Jinja2Oracle
{
    public Jinja2Oracle()
    {
        var script = Path.Combine(Fixtures.RepositoryRoot, "tests", "Bulwark.Engine.Tests", "Templates", "jinja2_oracle.py");
        var request = JsonSerializer.Serialize(new
        {
            fixtures = TemplateFixtures.Folder,
            cases = OracleCases.All.Select(c => new { name = c.Name, template = c.Template, variables = JsonDocument.Parse(c.Variables).RootElement }),
        });
        var start = new ProcessStartInfo("python3", [script])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = System.Text.Encoding.UTF8,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("python3 could not be started");
        process.StandardInput.Write(request);
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"the Jinja2 oracle failed (python3 with jinja2 is required): {error}");
        Results = JsonDocument.Parse(output.Result).RootElement.Clone();
    }

    /// <summary>Per case name: {"ok": text} or {"error": type, "message": text}.</summary>
    public JsonElement Results { get; }
}
