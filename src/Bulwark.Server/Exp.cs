using Microsoft.Extensions.Configuration;
namespace Bulwark.Server;
public static class Exp
{
    public static bool Has(IConfiguration c, string flag) => (c["Bulwark:Exp"] ?? "").Split(',').Contains(flag);
}
