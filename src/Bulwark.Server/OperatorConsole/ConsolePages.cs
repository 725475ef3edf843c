using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.OperatorConsole;

/// <summary>The console's pages behind the session: one route family per section.</summary>
public static class ConsolePages
{
    public static void Map(RouteGroupBuilder console)
    {
        OverviewPage.Map(console);
        KeysPage.Map(console);
        ModelsPage.Map(console);
        IncidentsPage.Map(console);
        AuditPage.Map(console);
        GuardPage.Map(console);
        PlaygroundPage.Map(console);
    }
}
