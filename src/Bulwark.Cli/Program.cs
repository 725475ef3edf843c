using System.CommandLine;
using Bulwark.Cli;

var root = new RootCommand("Bulwark: a self-hosted LLM server with the controls production needs.");
foreach (var command in CommandCatalog.All())
    root.Subcommands.Add(command);
return await root.Parse(args).InvokeAsync();
